import Foundation

/// Writes one flat JSON object of scalar fields straight into a byte buffer.
///
/// Used by ``ChangeEvent/encodeJSON(into:)``: it keeps the record's declaration order (the demo's
/// `id,name,age,…`), writes `nil` optionals as explicit `null`, and avoids `JSONEncoder`'s
/// intermediate tree. A `final class` so the containers the `Encoder` API hands out share one buffer;
/// it lives for one encode call, or for a batch of them (``WireEventWriter``), on one thread.
///
/// With a ``WireLayout`` it is driven by the record's schema: while the record writes its fields in the schema's
/// order (what a synthesized `encode(to:)` does) each name is appended from the layout's precomputed bytes
/// instead of being escaped again, and each value can be captured as a column (``WireColumn``) for stores that
/// keep one column per field; anything else takes the general path, which writes the same bytes.
final class FlatJSONWriter {
    // `@exclusivity(unchecked)`: a writer is used by one encode call at a time on one thread and no method of it
    // calls another while holding an access to these properties, so no access can overlap; the dynamic checks
    // cost about a tenth of encoding an event.
    @exclusivity(unchecked) var buffer: [UInt8]
    /// Field names written, collected only when `recordsNames` is set (the slow path for records that skip fields).
    @exclusivity(unchecked) var written: [String] = []
    var recordsNames = false
    @exclusivity(unchecked) var fieldCount = 0
    @exclusivity(unchecked) private var needsComma = false
    /// The schema's names and their bytes, when the writer writes records of one schema.
    let layout: WireLayout?
    /// Whether every name so far was the schema's next field (so `fieldCount` fields, in the schema's order).
    @exclusivity(unchecked) private(set) var inSchemaOrder = true
    /// The schema index of the field whose value is written next; -1 when none (an envelope field, a name the
    /// schema does not have, or a name out of the schema's order).
    @exclusivity(unchecked) private var current = -1
    /// Whether values are captured into ``columns``.
    let capturesColumns: Bool
    /// The values written, one per schema field (`.null` where none was written): valid when the record wrote
    /// exactly the schema's fields in its order (``capturedEveryColumn``).
    @exclusivity(unchecked) var columns: [WireColumn]

    init(buffer: [UInt8], recordsNames: Bool = false, layout: WireLayout? = nil, capturesColumns: Bool = false) {
        self.buffer = buffer
        self.recordsNames = recordsNames
        self.layout = layout
        self.capturesColumns = capturesColumns && layout != nil
        self.columns = self.capturesColumns ? Array(repeating: .null, count: layout!.fieldCount) : []
    }

    /// Makes the writer ready for the next record (the buffer is the caller's to move in).
    func reset(recordsNames: Bool) {
        self.recordsNames = recordsNames
        written.removeAll()
        fieldCount = 0
        needsComma = false
        inSchemaOrder = true
        current = -1
        if capturesColumns {
            for index in columns.indices { columns[index] = .null }
        }
    }

    /// Whether ``columns`` holds the record's values: it wrote exactly the schema's fields, in its order.
    var capturedEveryColumn: Bool {
        guard let layout, capturesColumns else { return false }
        return inSchemaOrder && fieldCount == layout.fieldCount
    }

    // Each method touches `buffer` through one inout access: class-property exclusivity checks per byte
    // would cost more than the encoding itself.

    func key(_ name: String) {
        let index = fieldCount
        fieldCount += 1
        if recordsNames { written.append(name) }
        if inSchemaOrder, let layout, index < layout.fieldCount, layout.names[index] == name {
            // The schema's next field: its name's bytes (with the comma before all but the first) are ready.
            layout.appendKey(index, to: &buffer)
            needsComma = true
            current = index
            return
        }
        inSchemaOrder = false
        current = -1
        let comma = needsComma
        needsComma = true
        Self.appendKey(name, comma: comma, to: &buffer)
    }

    /// Makes the next value written field `index`'s (a value written without its name: a delete's key).
    func expectValue(ofField index: Int) { current = index }

    /// Records the value just written for the current field.
    @inline(__always)
    private func capture(_ value: WireColumn) {
        if capturesColumns, current >= 0 { columns[current] = value }
        current = -1
    }

    func null() {
        Self.appendLiteral("null", to: &buffer)
        capture(.null)
    }

    func bool(_ value: Bool) {
        Self.appendLiteral(value ? "true" : "false", to: &buffer)
        capture(.bool(value))
    }

    /// Writes an integer of a type that always fits 64 signed bits (`UInt` and `UInt64` go through their
    /// `ScalarType`, which refuses what does not). Not generic: unspecialized generic integer code costs more than
    /// the rest of a field.
    func integer(_ value: Int64) {
        Self.appendInteger(value, to: &buffer)
        capture(.integer(value))
    }

    func string(_ value: String) {
        let start = buffer.count + 1
        Self.appendString(value, to: &buffer)
        let end = buffer.count - 1
        // Every escape makes the text longer than the string's UTF-8.
        capture(.text(start..<end, escaped: end - start != value.utf8.count))
    }

    static func appendKey(_ name: String, comma: Bool, to buffer: inout [UInt8]) {
        if comma { buffer.append(UInt8(ascii: ",")) }
        appendString(name, to: &buffer)
        buffer.append(UInt8(ascii: ":"))
    }

    static func appendLiteral(_ literal: StaticString, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    static func appendInteger(_ value: Int64, to buffer: inout [UInt8]) {
        var magnitude = value.magnitude
        // Up to 20 characters, written backwards two digits at a time into a stack buffer, then appended at once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var index = 20
            while magnitude >= 100 {
                let pair = Int(magnitude % 100) &* 2
                magnitude /= 100
                index -= 2
                digits[index] = digitPairs[pair]
                digits[index + 1] = digitPairs[pair + 1]
            }
            if magnitude >= 10 {
                let pair = Int(magnitude) &* 2
                index -= 2
                digits[index] = digitPairs[pair]
                digits[index + 1] = digitPairs[pair + 1]
            } else {
                index -= 1
                digits[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude)
            }
            if value < 0 {
                index -= 1
                digits[index] = UInt8(ascii: "-")
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: digits[index..<20]))
        }
    }

    /// "00", "01", … "99", one after the other.
    static let digitPairs: [UInt8] = (0..<100).flatMap {
        [UInt8(ascii: "0") + UInt8($0 / 10), UInt8(ascii: "0") + UInt8($0 % 10)]
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
        let start = buffer.count
        try scalar.writeJSON(value, &buffer, field)
        capture(.json(start..<buffer.count))
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
    mutating func encode(_ value: Int, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try viaTable(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try int(Int64(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try viaTable(value, key) }

    private func int(_ value: Int64, _ key: Key) throws {
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
    mutating func encode(_ value: Int) throws { try int(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try int(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try int(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try int(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try int(Int64(value)) }
    mutating func encode(_ value: UInt) throws { try viaTable(value) }
    mutating func encode(_ value: UInt8) throws { try int(Int64(value)) }
    mutating func encode(_ value: UInt16) throws { try int(Int64(value)) }
    mutating func encode(_ value: UInt32) throws { try int(Int64(value)) }
    mutating func encode(_ value: UInt64) throws { try viaTable(value) }
    private func int(_ value: Int64) throws {
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
