extension ChangeEvent {
    /// The event's wire JSON and the scalar value of each of its fields (record fields and `op`, `event_order`,
    /// `ts`), for stores that keep both the exact event and one column per field. A field whose value is null
    /// is absent from `fields`.
    package func wireJSONAndFields() throws -> (json: [UInt8], fields: [String: JSONScalar]) {
        var json: [UInt8] = []
        json.reserveCapacity(128)
        try encodeJSON(into: &json)
        let fields = try json.withUnsafeBytes { bytes in
            var fields: [String: JSONScalar] = [:]
            for (name, value) in try FlatJSONReader.fields(of: bytes) {
                switch value {
                case .bool(let flag): fields[name] = .bool(flag)
                case .string(let text): fields[name] = .string(text)
                case .number(let range, let isInteger):
                    fields[name] = .number(FlatJSONReader.text(range, in: bytes), isInteger: isInteger)
                case .null, .nested: break
                }
            }
            return fields
        }
        return (json, fields)
    }
}
