import Foundation
import Synchronization

/// A record type compiled for the hot path: each field's wire name as bytes, how its value is read and checked,
/// and where it goes in an event row (``RowList``). Built once per record type (``of(_:)``), from the schema's
/// discovery, and shared by the wire decoder (``decode(_:into:)``), the latest-state core (``RowState``) and the
/// generic shells that turn rows into records where the application asks for one.
package final class RowLayout: Sendable {
    /// How one field's JSON value is read and checked: the rule of the core's scalar table (`ScalarType`) for the
    /// field's Swift type.
    package enum Kind: Sendable, Equatable {
        /// An integer type: an integral JSON number within `min...max` (unsigned types stop at `Int64.max`).
        case integer(min: Int64, max: Int64)
        case bool
        case double
        case float
        case string
        case timestamp
        case uuid
        /// A URL: a JSON string the table accepts, kept as its text.
        case url
        case decimal
        /// A string enum: one of its cases' raw values, byte for byte.
        case stringEnum([String])
        /// An integer enum: one of its cases' raw values.
        case integerEnum([Int64])
    }

    package struct Field: Sendable {
        package let name: String
        let nameBytes: [UInt8]
        package let kind: Kind
        package let isOptional: Bool
        /// The core's table entry for the field's Swift type.
        let scalar: ScalarType
    }

    /// The record's schema.
    package let schema: RecordSchema
    /// The fields in the schema's order: a row's values.
    package let fields: [Field]
    /// How the one-pass decoder reads each field, in a form that costs no reference counting to read (the
    /// kinds it reads itself; `.other` leaves the field to ``fields``).
    struct FieldCode {
        enum Tag: UInt8 { case integer, bool, double, float, string, timestamp, uuid, other }
        var tag: Tag
        var isOptional: Bool
        /// An integer's range.
        var min: Int64
        var max: Int64
        /// The field's name in ``names``.
        var nameStart: Int
        var nameCount: Int
    }
    let codes: [FieldCode]
    /// Every field's name then the envelope's (`op`, `event_order`, `ts`), UTF-8, one after the other.
    let names: [UInt8]
    /// Where each member name of an event (the fields', then the envelope's) is in ``names``, and whether it is
    /// written in JSON as its bytes (printable ASCII, no quote or backslash), so that its bytes can be matched in
    /// place.
    struct SlotName {
        var start: Int
        var count: Int
        var isPlain: Bool
        /// The name quoted (`"name"`) as two little-endian words and the masks of its bytes, when it is plain and
        /// fits in 16 bytes: compared with the wire's bytes a word at a time (`quotedFits`), not by `memcmp`.
        var quoted: (UInt64, UInt64) = (0, 0)
        var quotedMask: (UInt64, UInt64) = (0, 0)
        var quotedFits = false

        /// Fills ``quoted`` from the name's bytes.
        mutating func quote(_ name: ArraySlice<UInt8>) {
            let text = [UInt8(ascii: "\"")] + name + [UInt8(ascii: "\"")]
            guard isPlain, text.count <= 16 else { return }
            var words: [UInt64] = [0, 0]
            var masks: [UInt64] = [0, 0]
            for (index, byte) in text.enumerated() {
                words[index / 8] |= UInt64(byte) << (UInt64(index % 8) * 8)
                masks[index / 8] |= 0xFF << (UInt64(index % 8) * 8)
            }
            quoted = (words[0], words[1])
            quotedMask = (masks[0], masks[1])
            quotedFits = true
        }
    }
    let slotNames: [SlotName]
    /// The key field's index in ``fields``.
    package let keyIndex: Int
    /// How a message key is the key field's text: an integer's decimal digits, a string's UTF-8, or `nil` when
    /// only the typed event can tell (``isKeyed(_:of:by:)``).
    let keyText: KeyText?
    enum KeyText { case decimal, utf8 }
    /// The indexes of the fields other than the key, in the schema's order (the tie rule compares these).
    package let valueIndexes: [Int]

    /// The number of fields: a row's width.
    package var width: Int { fields.count }

    /// An empty list for rows of this layout.
    package func makeRows() -> RowList { RowList(width: fields.count) }

    private init(schema: RecordSchema, fields: [Field]) {
        self.schema = schema
        self.fields = fields
        var names: [UInt8] = []
        var codes: [FieldCode] = []
        for field in fields {
            var code = FieldCode(
                tag: .other,
                isOptional: field.isOptional,
                min: 0,
                max: 0,
                nameStart: names.count,
                nameCount: field.nameBytes.count
            )
            names += field.nameBytes
            switch field.kind {
            case .integer(let min, let max):
                code.tag = .integer
                code.min = min
                code.max = max
            case .bool: code.tag = .bool
            case .double: code.tag = .double
            case .float: code.tag = .float
            case .string: code.tag = .string
            case .timestamp: code.tag = .timestamp
            case .uuid: code.tag = .uuid
            case .url, .decimal, .stringEnum, .integerEnum: code.tag = .other
            }
            codes.append(code)
        }
        var slotNames = codes.map { SlotName(start: $0.nameStart, count: $0.nameCount, isPlain: false) }
        for name in [ChangeEventField.operation, ChangeEventField.order, ChangeEventField.timestamp] {
            slotNames.append(SlotName(start: names.count, count: name.utf8.count, isPlain: false))
            names += Array(name.utf8)
        }
        for index in slotNames.indices {
            let name = names[slotNames[index].start..<slotNames[index].start + slotNames[index].count]
            slotNames[index].isPlain = name.allSatisfy {
                $0 >= 0x20 && $0 < 0x80 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\")
            }
            slotNames[index].quote(name)
        }
        self.codes = codes
        self.names = names
        self.slotNames = slotNames
        let keyIndex = fields.firstIndex { $0.name == schema.keyField }!
        self.keyIndex = keyIndex
        switch fields[keyIndex].kind {
        case .integer, .integerEnum: self.keyText = .decimal
        case .string: self.keyText = .utf8
        default: self.keyText = nil
        }
        self.valueIndexes = fields.indices.filter { $0 != keyIndex }
    }

    private static let cache = Mutex<[ObjectIdentifier: RowLayout?]>([:])

    /// The layout of `type`, or `nil` when its events keep to typed values: its schema is not the discovered
    /// one, a field or the key has a type rows do not hold, or its `Codable` conformance does not read back what
    /// it writes (``RowLayout/checkFaithful(_:)``).
    package static func of<R: ChangeRecord>(_ type: R.Type) -> RowLayout? {
        if let cached = cache.withLock({ $0[ObjectIdentifier(type)] }) { return cached }
        let layout = make(type)
        cache.withLock { $0[ObjectIdentifier(type)] = layout }
        return layout
    }

    private static func make<R: ChangeRecord>(_ type: R.Type) -> RowLayout? {
        guard let schema = try? R.schema, let types = RecordSchema.discoveredFieldTypes(type),
            let discovered = try? RecordSchema.discover(type), discovered == schema, types.count == schema.fields.count
        else { return nil }
        var fields: [Field] = []
        for (field, swiftType) in zip(schema.fields, types) {
            guard let kind = kind(of: swiftType), let scalar = ScalarType.of(swiftType) else { return nil }
            fields.append(
                Field(
                    name: field.name,
                    nameBytes: Array(field.name.utf8),
                    kind: kind,
                    isOptional: field.isOptional,
                    scalar: scalar
                )
            )
        }
        let layout = RowLayout(schema: schema, fields: fields)
        switch layout.fields[layout.keyIndex].kind {
        case .url, .decimal: return nil  // a key's equality is the typed value's, which their text does not give
        default: break
        }
        guard layout.checkFaithful(R.self) else { return nil }
        return layout
    }

    /// How a field of Swift type `type` is read, or `nil` for a type rows do not hold.
    private static func kind(of type: any Any.Type) -> Kind? {
        if type == Bool.self { return .bool }
        if type == String.self { return .string }
        if type == Double.self { return .double }
        if type == Float.self { return .float }
        if type == Date.self { return .timestamp }
        if type == UUID.self { return .uuid }
        if type == URL.self { return .url }
        if type == Decimal.self { return .decimal }
        if let integer = type as? any FixedWidthInteger.Type { return integerKind(integer) }
        if let cases = type as? any CaseIterable.Type, type is any RawRepresentable.Type {
            return enumKind(cases)
        }
        return nil
    }

    private static func integerKind<I: FixedWidthInteger>(_ type: I.Type) -> Kind {
        .integer(min: Int64(I.min), max: I.bitWidth < 64 || I.isSigned ? Int64(I.max) : Int64.max)
    }

    private static func enumKind<C: CaseIterable>(_ type: C.Type) -> Kind? {
        var strings: [String] = []
        var integers: [Int64] = []
        for value in type.allCases {
            guard let raw = (value as? any RawRepresentable)?.rawValue else { return nil }
            if let text = raw as? String {
                strings.append(text)
            } else if let number = raw as? any FixedWidthInteger, let wide = Int64(exactly: number) {
                integers.append(wide)
            } else {
                return nil
            }
        }
        if integers.isEmpty { return .stringEnum(strings) }
        return strings.isEmpty ? .integerEnum(integers) : nil
    }

    /// Whether `R`'s `Codable` conformance and rows agree: a handful of events made of edge values and of distinct
    /// values of every field (and `null` in every optional one) decode through `Codable` to the events their rows
    /// give back, their records write back the rows' values, and records of different rows are different. A record whose `init(from:)` refuses or changes values (a
    /// validating or normalizing decoder) fails it and keeps to typed events.
    private func checkFaithful<R: ChangeRecord>(_ type: R.Type) -> Bool {
        var samples: [[UInt8]] = []
        // Edge values of every field (a decoder that trims, changes case or clamps shows here).
        var edges: [UInt8] = [UInt8(ascii: "{")]
        for (index, field) in fields.enumerated() {
            if index > 0 { edges.append(UInt8(ascii: ",")) }
            FlatJSONWriter.appendString(field.name, to: &edges)
            edges.append(UInt8(ascii: ":"))
            let value: String
            switch field.kind {
            case .integer(let min, let max): value = index == keyIndex ? "\(max)" : "\(min)"
            case .bool: value = "false"
            case .double, .float: value = "-0.25"
            case .string: value = #"" Mixed Case \u00e9 ""#
            case .timestamp: value = #""2024-02-29T23:59:59.999999+00:00""#
            case .uuid: value = #""0123ABCD-89AB-CDEF-0123-456789ABCDEF""#
            case .url: value = #""https://example.com/A?b=1""#
            case .decimal: value = "-1.25"
            case .stringEnum(let cases):
                var json: [UInt8] = []
                FlatJSONWriter.appendString(cases.last ?? "", to: &json)
                value = String(decoding: json, as: UTF8.self)
            case .integerEnum(let cases): value = "\(cases.last ?? 0)"
            }
            edges += Array(value.utf8)
        }
        edges += Array(#","op":"insert","event_order":-1,"ts":"1999-12-31T23:59:59Z"}"#.utf8)
        samples.append(edges)
        for seed in [3, 8] {
            var json: [UInt8] = [UInt8(ascii: "{")]
            for (index, field) in fields.enumerated() {
                if index > 0 { json.append(UInt8(ascii: ",")) }
                FlatJSONWriter.appendString(field.name, to: &json)
                json.append(UInt8(ascii: ":"))
                if seed == 8, field.isOptional, index != keyIndex {
                    FlatJSONWriter.appendLiteral("null", to: &json)
                } else {
                    guard let value = field.scalar.probe(seed + index),
                        (try? field.scalar.writeJSON(value, &json, field.name)) != nil
                    else { return false }
                }
            }
            json += Array(#","op":"update","event_order":7,"ts":"2024-05-01T12:30:45.123456+00:00"}"#.utf8)
            samples.append(json)
        }
        var rows = makeRows()
        var events: [ChangeEvent<R>] = []
        for sample in samples {
            let decoded = sample.withUnsafeBytes { bytes -> ChangeEvent<R>? in
                guard let event = try? ChangeEvent<R>.decodeWire(bytes, schema: schema),
                    (try? appendRow(decoding: bytes, R.self, into: &rows)) != nil
                else { return nil }
                return event
            }
            // The record reads the row's values and writes them back unchanged.
            var again = makeRows()
            guard let decoded, let rebuilt = try? ChangeEvent<R>(row: rows.count - 1, of: rows, layout: self),
                rebuilt == decoded, (try? appendRow(from: decoded, into: &again)) != nil,
                again.valuesEqual(0, rows, rows.count - 1)
            else { return false }
            events.append(decoded)
        }
        return rows.valuesEqual(1, rows, 2) == (events[1].record == events[2].record)
    }

    // MARK: Keys

    /// The row value of a typed key, as a row of its record holds it.
    package func keyValue<K>(_ key: K) -> RowValue? {
        let field = fields[keyIndex]
        var json: [UInt8] = []
        guard (try? field.scalar.writeJSON(key, &json, field.name)) != nil,
            let scalar = try? FlatJSONReader.scalar(json)
        else { return nil }
        return value(of: scalar, kind: field.kind, scalar: field.scalar)
    }

    // MARK: Converting checked values

    /// The row value of a JSON scalar the table accepted for a field (the general path: a typed event's own wire
    /// text, or one that the `Codable` path decoded).
    func value(of json: JSONScalar, kind: Kind, scalar: ScalarType) -> RowValue? {
        guard let typed = scalar.readJSON(json) else { return nil }
        switch kind {
        case .integer:
            guard case .number(let text, true) = json else { return nil }
            return Int64(text).map(RowValue.integer)
        case .bool: return (typed as? Bool).map(RowValue.bool)
        case .double: return (typed as? Double).map(RowValue.double)
        case .float: return (typed as? Float).map { .double(Double($0)) }
        case .string: return (typed as? String).map(RowValue.string)
        case .url: return (typed as? URL).map { .string($0.absoluteString) }
        case .timestamp:
            guard case .string(var text) = json else { return nil }
            return text.withUTF8 { EventTimestamp.parseMicroseconds(UnsafeRawBufferPointer($0)) }.map {
                .timestamp(EventTimestamp.canonicalMicroseconds($0))
            }
        case .uuid: return (typed as? UUID).map(Self.uuidValue)
        case .decimal: return (typed as? Decimal).map { .decimal($0.description) }
        case .stringEnum(let cases):
            guard let raw = (typed as? any RawRepresentable)?.rawValue as? String else { return nil }
            return cases.first { $0.utf8.elementsEqual(raw.utf8) }.map(RowValue.string)
        case .integerEnum:
            guard case .number(let text, true) = json else { return nil }
            return Int64(text).map(RowValue.integer)
        }
    }

    static func uuidValue(_ uuid: UUID) -> RowValue {
        let u = uuid.uuid
        let high =
            UInt64(u.0) << 56 | UInt64(u.1) << 48 | UInt64(u.2) << 40 | UInt64(u.3) << 32 | UInt64(u.4) << 24
            | UInt64(u.5) << 16 | UInt64(u.6) << 8 | UInt64(u.7)
        let low =
            UInt64(u.8) << 56 | UInt64(u.9) << 48 | UInt64(u.10) << 40 | UInt64(u.11) << 32 | UInt64(u.12) << 24
            | UInt64(u.13) << 16 | UInt64(u.14) << 8 | UInt64(u.15)
        return .uuid(high, low)
    }

    static func uuid(_ high: UInt64, _ low: UInt64) -> UUID {
        func byte(_ word: UInt64, _ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: word >> (56 - 8 * index)) }
        return UUID(
            uuid: (
                byte(high, 0), byte(high, 1), byte(high, 2), byte(high, 3), byte(high, 4), byte(high, 5),
                byte(high, 6), byte(high, 7), byte(low, 0), byte(low, 1), byte(low, 2), byte(low, 3), byte(low, 4),
                byte(low, 5), byte(low, 6), byte(low, 7)
            )
        )
    }

    /// The JSON scalar a row value stands for (the table then reads it into the field's Swift type).
    func json(of value: RowValue) -> JSONScalar? {
        switch value {
        case .null: return nil
        case .integer(let number): return .number(String(number), isInteger: true)
        case .bool(let flag): return .bool(flag)
        case .double(let number): return .number(String(number), isInteger: false)
        case .string(let text): return .string(text)
        case .timestamp(let micros):
            return .string(EventTimestamp.format(EventTimestamp.date(fromMicroseconds: micros)))
        case .uuid(let high, let low): return .string(Self.uuid(high, low).uuidString.lowercased())
        case .decimal(let text): return .number(text, isInteger: false)
        }
    }
}

/// Decimal text compared by value (the tie rule's order for a `Decimal` field).
enum DecimalText {
    /// -1, 0 or 1 as `lhs` is below, equal to or above `rhs`; `nil` when either is not a number.
    static func compare(_ lhs: String, _ rhs: String) -> Int? {
        let posix = Locale(identifier: "en_US_POSIX")
        guard let left = Decimal(string: lhs, locale: posix), let right = Decimal(string: rhs, locale: posix) else {
            return nil
        }
        return left < right ? -1 : left == right ? 0 : 1
    }
}

extension RowLayout {
    /// Whether `bytes` are the Kafka message key of row `row` (``ChangeEvent/keyBytes``), when that can be told
    /// from the row alone — an integer key's decimal text, a `String` key's UTF-8 — without allocating; `nil` for
    /// other key types (the caller then asks the typed event).
    @inline(__always)
    package func isKeyed(_ row: Int, of rows: RowList, by bytes: UnsafeRawBufferPointer) -> Bool? {
        // By the key's precomputed form: reading the field's kind would copy (and retain) its payload per message.
        switch keyText {
        case .decimal?:
            guard case .integer(let value) = rows.value(row, keyIndex) else { return nil }
            return MessageKeyText.isDecimalText(bytes, of: value)
        case .utf8?:
            guard case .string(var text) = rows.value(row, keyIndex) else { return nil }
            return text.withUTF8 { $0.elementsEqual(bytes) }
        case nil:
            return nil
        }
    }
}
