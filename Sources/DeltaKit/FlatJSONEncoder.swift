import Foundation

/// Writes one flat JSON object of scalar fields straight into a byte buffer.
///
/// Used by ``ChangeEvent/encodeJSON(into:)``: it keeps the record's declaration order (the demo's
/// `id,name,age,…`), writes `nil` optionals as explicit `null`, and avoids `JSONEncoder`'s
/// intermediate tree. A `final class` so the containers the `Encoder` API hands out share one buffer;
/// it lives only for the duration of one encode call on one thread.
final class FlatJSONWriter {
    // `@exclusivity(unchecked)`: a writer lives for one encode call on one thread and no method of it calls
    // another while holding an access to these properties, so no access can overlap; the dynamic checks cost about
    // a tenth of encoding an event.
    @exclusivity(unchecked) var buffer: [UInt8]
    /// Field names written, collected only when `recordsNames` is set (the slow path for records that skip fields).
    @exclusivity(unchecked) var written: [String] = []
    var recordsNames = false
    @exclusivity(unchecked) var fieldCount = 0
    @exclusivity(unchecked) private var needsComma = false

    init(buffer: [UInt8], recordsNames: Bool = false) {
        self.buffer = buffer
        self.recordsNames = recordsNames
    }

    // Each method touches `buffer` through one inout access: class-property exclusivity checks per byte
    // would cost more than the encoding itself.

    func key(_ name: String) {
        fieldCount += 1
        if recordsNames { written.append(name) }
        let comma = needsComma
        needsComma = true
        Self.appendKey(name, comma: comma, to: &buffer)
    }

    func null() { Self.appendLiteral("null", to: &buffer) }

    func bool(_ value: Bool) { Self.appendLiteral(value ? "true" : "false", to: &buffer) }

    func integer<T: BinaryInteger>(_ value: T) { Self.appendInteger(value, to: &buffer) }

    func string(_ value: String) { Self.appendString(value, to: &buffer) }

    static func appendKey(_ name: String, comma: Bool, to buffer: inout [UInt8]) {
        if comma { buffer.append(UInt8(ascii: ",")) }
        appendString(name, to: &buffer)
        buffer.append(UInt8(ascii: ":"))
    }

    static func appendLiteral(_ literal: StaticString, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    static func appendInteger<T: BinaryInteger>(_ value: T, to buffer: inout [UInt8]) {
        if value == 0 {
            buffer.append(UInt8(ascii: "0"))
            return
        }
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var magnitude = UInt64(value.magnitude)
        // Up to 20 digits, written backwards into a stack buffer, then appended at once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var index = 20
            while magnitude > 0 {
                index -= 1
                digits[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: digits[index..<20]))
        }
    }

    static func appendString(_ value: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        var value = value
        let clean = value.withUTF8 { bytes in
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                return false
            }
            buffer.append(contentsOf: bytes)
            return true
        }
        if !clean {
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\""): buffer.append(contentsOf: [92, 34])
                case UInt8(ascii: "\\"): buffer.append(contentsOf: [92, 92])
                case 0x0A: buffer.append(contentsOf: [92, 110])
                case 0x0D: buffer.append(contentsOf: [92, 114])
                case 0x09: buffer.append(contentsOf: [92, 116])
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    buffer.append(contentsOf: [92, 117, 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                default: buffer.append(byte)
                }
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// Writes any supported scalar through its ``ScalarType`` (the single table of scalar types).
    func scalar<T>(_ value: T, field: String) throws {
        guard let scalar = ScalarType.of(T.self) else {
            throw notScalar(field)
        }
        try scalar.writeJSON(value, &buffer, field)
    }
}

struct FlatJSONEncoder: Encoder {
    let writer: FlatJSONWriter
    /// Set when this encoder encodes the value of one field (its key is already written).
    var singleValueKey: String? = nil
    var codingPath: [any CodingKey] { singleValueKey.map { [AnyCodingKey($0)] } ?? [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(FlatKeyedContainer<Key>(writer: writer, nestedField: singleValueKey))
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        FailingUnkeyedContainer(field: singleValueKey ?? "<record>")
    }
    func singleValueContainer() -> any SingleValueEncodingContainer {
        FlatSingleValueContainer(writer: writer, field: singleValueKey)
    }
}

private func notScalar(_ field: String) -> DeltaKitError {
    DeltaKitError(
        code: .serializationFailed,
        message:
            "field '\(field)' is not a scalar; a ChangeRecord's fields must be \(ScalarType.supportedList), or optionals of these"
    )
}

private struct FlatKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: FlatJSONWriter
    /// Non-nil when a field's value tried to encode itself as an object.
    let nestedField: String?
    var codingPath: [any CodingKey] { [] }

    private func check() throws { if let nestedField { throw notScalar(nestedField) } }

    mutating func encodeNil(forKey key: Key) throws {
        try check()
        writer.key(key.stringValue)
        writer.null()
    }
    mutating func encode(_ value: Bool, forKey key: Key) throws {
        try check()
        writer.key(key.stringValue)
        writer.bool(value)
    }
    mutating func encode(_ value: String, forKey key: Key) throws {
        try check()
        writer.key(key.stringValue)
        writer.string(value)
    }
    mutating func encode(_ value: Double, forKey key: Key) throws { try viaTable(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try viaTable(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try viaTable(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try int(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try viaTable(value, key) }

    private func int(_ value: some BinaryInteger, _ key: Key) throws {
        try check()
        writer.key(key.stringValue)
        writer.integer(value)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try viaTable(value, key) }

    private func viaTable<T>(_ value: T, _ key: Key) throws {
        try check()
        writer.key(key.stringValue)
        try writer.scalar(value, field: key.stringValue)
    }

    // Optionals are written as explicit null so every event carries every field.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try opt(value, key) }

    private mutating func opt<T: Encodable>(_ value: T?, _ key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(FlatKeyedContainer<NestedKey>(writer: writer, nestedField: key.stringValue))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        FailingUnkeyedContainer(field: key.stringValue)
    }
    mutating func superEncoder() -> any Encoder { FlatJSONEncoder(writer: writer, singleValueKey: "super") }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        FlatJSONEncoder(writer: writer, singleValueKey: key.stringValue)
    }
}

private struct FlatSingleValueContainer: SingleValueEncodingContainer {
    let writer: FlatJSONWriter
    let field: String?
    var codingPath: [any CodingKey] { [] }

    private func check() throws {
        guard field != nil else {
            throw DeltaKitError(
                code: .serializationFailed,
                message: "a ChangeRecord must encode itself as an object of fields (a keyed container)"
            )
        }
    }
    mutating func encodeNil() throws {
        try check()
        writer.null()
    }
    mutating func encode(_ value: Bool) throws {
        try check()
        writer.bool(value)
    }
    mutating func encode(_ value: String) throws {
        try check()
        writer.string(value)
    }
    mutating func encode(_ value: Double) throws { try viaTable(value) }
    mutating func encode(_ value: Float) throws { try viaTable(value) }
    mutating func encode(_ value: Int) throws { try int(value) }
    mutating func encode(_ value: Int8) throws { try int(value) }
    mutating func encode(_ value: Int16) throws { try int(value) }
    mutating func encode(_ value: Int32) throws { try int(value) }
    mutating func encode(_ value: Int64) throws { try int(value) }
    mutating func encode(_ value: UInt) throws { try viaTable(value) }
    mutating func encode(_ value: UInt8) throws { try int(value) }
    mutating func encode(_ value: UInt16) throws { try int(value) }
    mutating func encode(_ value: UInt32) throws { try int(value) }
    mutating func encode(_ value: UInt64) throws { try viaTable(value) }
    private func int(_ value: some BinaryInteger) throws {
        try check()
        writer.integer(value)
    }
    mutating func encode<T: Encodable>(_ value: T) throws { try viaTable(value) }

    private func viaTable<T>(_ value: T) throws {
        try check()
        try writer.scalar(value, field: field ?? "")
    }
}

private struct FailingUnkeyedContainer: UnkeyedEncodingContainer {
    let field: String
    var codingPath: [any CodingKey] { [] }
    var count: Int { 0 }
    mutating func encodeNil() throws { throw notScalar(field) }
    mutating func encode<T: Encodable>(_ value: T) throws { throw notScalar(field) }
    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(FlatKeyedContainer<NestedKey>(writer: FlatJSONWriter(buffer: []), nestedField: field))
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { self }
    mutating func superEncoder() -> any Encoder {
        FlatJSONEncoder(writer: FlatJSONWriter(buffer: []), singleValueKey: field)
    }
}
