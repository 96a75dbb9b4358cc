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

    /// The value of `name` as an integer of type `I`, read from the token in place, when it is an integral JSON
    /// number that fits `I` (the table's rule); `nil` for anything else, which ``decode(_:key:)`` then decides.
    /// Keyed by name, not by the caller's `CodingKey` type, so it is specialized for each integer type.
    @inline(__always)
    func integer<I: FixedWidthInteger>(_ type: I.Type, named name: String) -> I? {
        guard case .number(let range, isInteger: true)? = fields[name],
            let wide = FlatJSONReader.integer(range, in: bytes)
        else { return nil }
        return I(exactly: wide)
    }

    /// The value of `name` when it is a JSON string; `nil` for anything else (left to ``decode(_:key:)``).
    func string(named name: String) -> String? {
        if case .string(let text)? = fields[name] { return text }
        return nil
    }

    /// The value of `name` when it is `true` or `false`; `nil` for anything else (left to ``decode(_:key:)``).
    func bool(named name: String) -> Bool? {
        if case .bool(let flag)? = fields[name] { return flag }
        return nil
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
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        try decoder.bool(named: key.stringValue) ?? decoder.decode(type, key: key)
    }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        try decoder.string(named: key.stringValue) ?? decoder.decode(type, key: key)
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decoder.decode(type, key: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decoder.decode(type, key: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(type, key) }

    /// The common integer path, inlined into each `decode` above so that ``WireDecoder/integer(_:named:)`` is
    /// specialized for the integer type (this container is generic over the application's `CodingKey`).
    @inline(__always)
    private func integer<I: FixedWidthInteger>(_ type: I.Type, _ key: Key) throws -> I {
        try decoder.integer(type, named: key.stringValue) ?? decoder.decode(type, key: key)
    }

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
