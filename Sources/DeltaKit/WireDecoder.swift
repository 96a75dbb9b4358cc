/// The fields of one decoded flat JSON object, looked up by name: a linear scan for objects of up to
/// ``indexThreshold`` fields (a change event's fields are few and come in the order the decoder asks for them,
/// so a scan beats hashing every name), a dictionary beyond that.
struct WireFields {
    let fields: [(key: String, value: FlatJSONValue)]
    private let index: [String: Int]?
    static let indexThreshold = 16

    init(_ fields: [(key: String, value: FlatJSONValue)]) {
        self.fields = fields
        if fields.count > Self.indexThreshold {
            var index: [String: Int] = [:]
            index.reserveCapacity(fields.count)
            for (position, field) in fields.enumerated() { index[field.key] = position }
            self.index = index
        } else {
            self.index = nil
        }
    }

    /// The field names, in input order.
    var names: [String] { fields.map(\.key) }

    subscript(name: String) -> FlatJSONValue? {
        if let index { return index[name].map { fields[$0].value } }
        return fields.first { $0.key == name }?.value
    }
}

/// A `Decoder` over the fields of one flat JSON object (``FlatJSONReader``): scalars are converted by the
/// core's table of scalar types (``ScalarType/readJSON``), so the wire decoder accepts exactly what the
/// encoder writes and what a column can hold. Lives only for one decode, on one thread.
///
/// The common scalar types (`String`, `Bool` and the integers) are read straight from the field's token; each of
/// those fast paths accepts exactly what the table accepts and leaves everything else (and every error) to it.
struct WireDecoder: Decoder {
    let fields: WireFields
    let bytes: UnsafeRawBufferPointer
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(WireKeyedContainer<Key>(decoder: self))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self,
            .init(codingPath: [], debugDescription: "a change event is a flat JSON object")
        )
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(
            Any.self,
            .init(codingPath: [], debugDescription: "a change event is a flat JSON object")
        )
    }

    /// The value of `key` as `T`.
    func decode<T>(_ type: T.Type, key: some CodingKey) throws -> T {
        let name = key.stringValue
        guard let value = fields[name] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: [key], debugDescription: "missing"))
        }
        guard let scalar = value.scalar(in: bytes) else {
            if case .null = value {
                throw DecodingError.valueNotFound(T.self, .init(codingPath: [key], debugDescription: "null"))
            }
            throw DecodingError.typeMismatch(T.self, .init(codingPath: [key], debugDescription: "not a scalar"))
        }
        guard let description = ScalarType.of(T.self) else {
            throw ScalarType.unsupported(T.self, field: name)
        }
        guard let result = description.readJSON(scalar) as? T else {
            throw DecodingError.typeMismatch(T.self, .init(codingPath: [key], debugDescription: "wrong type"))
        }
        return result
    }

    /// The value of `key` as an integer of type `I`, read from the token in place; the table's rule (an integral
    /// JSON number that fits `I`); anything else, errors included, goes through ``decode(_:key:)``.
    func decodeInteger<I: FixedWidthInteger>(_ type: I.Type, key: some CodingKey) throws -> I {
        if case .number(let range, isInteger: true)? = fields[key.stringValue],
            let wide = FlatJSONReader.integer(range, in: bytes), let value = I(exactly: wide)
        {
            return value
        }
        return try decode(type, key: key)
    }

    /// The value of `key` as a `String` (a JSON string); anything else goes through ``decode(_:key:)``.
    func decodeString(key: some CodingKey) throws -> String {
        if case .string(let text)? = fields[key.stringValue] { return text }
        return try decode(String.self, key: key)
    }

    /// The value of `key` as a `Bool` (`true` or `false`); anything else goes through ``decode(_:key:)``.
    func decodeBool(key: some CodingKey) throws -> Bool {
        if case .bool(let flag)? = fields[key.stringValue] { return flag }
        return try decode(Bool.self, key: key)
    }

    /// The value of `name` as JSON-ish text, for error messages.
    func rawText(_ name: String) -> String? {
        switch fields[name] {
        case nil: return nil
        case .null: return "null"
        case .bool(let flag): return String(flag)
        case .string(let text): return "\"\(text)\""
        case .number(let range, _): return FlatJSONReader.text(range, in: bytes)
        case .nested(let range):
            let text = FlatJSONReader.text(range, in: bytes)
            return text.count > 40 ? String(text.prefix(40)) + "…" : text
        }
    }
}

private struct WireKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: WireDecoder
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { decoder.fields.names.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { decoder.fields[key.stringValue] != nil }
    func decodeNil(forKey key: Key) throws -> Bool {
        guard let value = decoder.fields[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: [key], debugDescription: "missing"))
        }
        if case .null = value { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decoder.decode(T.self, key: key) }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        switch decoder.fields[key.stringValue] {
        case nil, .null?: return nil
        default: return try decoder.decode(T.self, key: key)
        }
    }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decoder.decodeBool(key: key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decoder.decodeString(key: key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decoder.decode(type, key: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decoder.decode(type, key: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decoder.decodeInteger(type, key: key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decoder.decodeInteger(type, key: key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: [key], debugDescription: "not a scalar"))
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: [key], debugDescription: "not a scalar"))
    }
    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder { decoder }
}
