extension ChangeEvent {
    /// The event's wire JSON and the scalar value of each of its fields (record fields and `op`, `event_order`,
    /// `ts`), in the order the JSON has them (the schema's, then the event's own), for stores that keep both
    /// the exact event and one column per field. A null value is `nil`.
    package func wireJSONAndFields() throws -> (json: [UInt8], fields: [(name: String, value: JSONScalar?)]) {
        var json: [UInt8] = []
        json.reserveCapacity(128)
        try encodeJSON(into: &json)
        let fields = try json.withUnsafeBytes { bytes in
            try FlatJSONReader.fields(of: bytes).map { (name: $0.key, value: $0.value.scalar(in: bytes)) }
        }
        return (json, fields)
    }
}
