/// Reads a record's field values by name through its `Encodable` conformance (for the tie rule, which compares
/// records field by field as SQL does).
enum FieldValues {
    /// The record's values by field name; a `nil` optional is absent.
    static func of(_ record: some Encodable) -> [String: Any] {
        let collector = Collector()
        try? record.encode(to: CollectingEncoder(collector: collector))
        return collector.values
    }
}

private final class Collector {
    var values: [String: Any] = [:]
}

private struct CollectingEncoder: Encoder {
    let collector: Collector
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(CollectingContainer<Key>(collector: collector))
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer { IgnoringContainer() }
    func singleValueContainer() -> any SingleValueEncodingContainer { IgnoringContainer() }
}

private struct CollectingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let collector: Collector
    var codingPath: [any CodingKey] { [] }
    private func put(_ value: Any, _ key: Key) { collector.values[key.stringValue] = value }
    mutating func encodeNil(forKey key: Key) {}
    mutating func encode(_ value: Bool, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: String, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) { put(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) { put(value, key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) { put(value, key) }
    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(CollectingContainer<NestedKey>(collector: Collector()))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { IgnoringContainer() }
    mutating func superEncoder() -> any Encoder { CollectingEncoder(collector: Collector()) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { CollectingEncoder(collector: Collector()) }
}

/// Records only encode keyed fields; anything else was refused at schema discovery.
private struct IgnoringContainer: UnkeyedEncodingContainer, SingleValueEncodingContainer {
    var codingPath: [any CodingKey] { [] }
    var count: Int { 0 }
    mutating func encodeNil() {}
    mutating func encode<T: Encodable>(_ value: T) {}
    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(CollectingContainer<NestedKey>(collector: Collector()))
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { self }
    mutating func superEncoder() -> any Encoder { CollectingEncoder(collector: Collector()) }
}
