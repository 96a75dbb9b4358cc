import Foundation

extension RowLayout {
    /// Appends the event in the wire bytes to `rows` when it is valid and plain; returns `false` (with `rows`
    /// unchanged) otherwise — then the `Codable` path decides and explains (``appendRow(decoding:_:into:)``).
    ///
    /// One pass over the bytes: member names are matched against the schema's bytes (the next field first, as
    /// events come in the schema's order), each value is read by its field's rule of the core's scalar table and
    /// checked in place, and nothing is allocated for integers, booleans, timestamps, UUIDs and strings of up to
    /// 15 bytes. It accepts only what `ChangeEvent(jsonData:)` accepts, as that decodes it (the `EventDecoder` fuzz
    /// target checks both ways); it leaves to the `Codable` path what is rare and costly to get exactly right
    /// here: a member name with an escape or a non-ASCII byte, a nested object or array, more than 8 members not in
    /// the schema, a record wider than 60 fields.
    package func decode(_ bytes: UnsafeRawBufferPointer, into rows: inout RowList) -> Bool {
        guard fields.count <= 60 else { return false }
        // The row is read into a buffer on the stack and appended whole once it is valid.
        return withUnsafeTemporaryAllocation(of: RowValue.self, capacity: fields.count) { values in
            values.initialize(repeating: .null)
            return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: Self.unknownNameLimit) { unknown in
                var reader = WireRowReader(bytes: bytes)
                guard let header = reader.read(self, into: values, unknownNames: unknown) else {
                    values.deinitialize()
                    return false
                }
                rows.append(moving: values, header: header)  // leaves `values` uninitialized
                return true
            }
        }
    }

    /// The most members not in the schema that ``decode(_:into:)`` checks for repeats itself.
    static let unknownNameLimit = 8

    /// Appends the event in the wire bytes to `rows`: by ``decode(_:into:)``, or else through the `Codable` path
    /// (which throws the ``ChangeEventDecodingError`` that explains a refused event).
    package func appendRow<R: ChangeRecord>(
        decoding bytes: UnsafeRawBufferPointer,
        _ type: R.Type,
        into rows: inout RowList
    ) throws {
        if decode(bytes, into: &rows) { return }
        try appendRow(from: ChangeEvent<R>.decodeWire(bytes, schema: schema), into: &rows)
    }

    /// Appends the row of a typed event, as it reads back from its wire form (canonical).
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``) when the event is invalid.
    package func appendRow<R: ChangeRecord>(from event: ChangeEvent<R>, into rows: inout RowList) throws {
        var json: [UInt8] = []
        json.reserveCapacity(128)
        try event.encodeJSON(into: &json)
        let decoded = json.withUnsafeBytes { decode($0, into: &rows) }
        if decoded { return }
        // The general path: the event's own wire text, read by the flat-JSON reader and the scalar table.
        let members = try json.withUnsafeBytes { bytes in
            try FlatJSONReader.fields(of: bytes).map { (name: $0.key, value: $0.value.scalar(in: bytes)) }
        }
        let base = rows.beginRow()
        for (index, field) in fields.enumerated() {
            guard let member = members.first(where: { $0.name == field.name }) else { continue }
            guard let json = member.value else { continue }
            guard let value = value(of: json, kind: field.kind, scalar: field.scalar) else {
                rows.abandonRow()
                throw DeltaKitError(
                    code: .serializationFailed,
                    message: "field '\(field.name)' of \(R.self) with key \(event.key) does not read back from its JSON"
                )
            }
            rows.set(base, index, value)
        }
        rows.finishRow(
            RowHeader(
                order: event.order,
                micros: EventTimestamp.microseconds(event.timestamp),
                operation: event.operation
            )
        )
    }
}

/// The one-pass reader behind ``RowLayout/decode(_:into:)``: `nil` from any step means "not on the fast path".
private struct WireRowReader {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inline(__always)
    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    @inline(__always)
    private mutating func skipWhitespace() {
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
            index &+= 1
        }
    }

    @inline(__always)
    private mutating func expect(_ byte: UInt8) -> Bool {
        guard current == byte else { return false }
        index &+= 1
        return true
    }

    // Envelope slots after the record's fields.
    private static let operationSlot = 0
    private static let orderSlot = 1
    private static let timestampSlot = 2

    mutating func read(
        _ layout: RowLayout,
        into values: UnsafeMutableBufferPointer<RowValue>,
        unknownNames: UnsafeMutableBufferPointer<Range<Int>>
    ) -> RowHeader? {
        let codes = layout.codes
        let names = layout.names
        let slotNames = layout.slotNames
        let width = codes.count
        var seen: UInt64 = 0
        var nonNull: UInt64 = 0
        var unknownCount = 0
        var operation: ChangeOperation?
        var order: Int64 = 0
        var micros: Int64 = 0
        var next = 0  // the field expected next
        skipWhitespace()
        guard expect(UInt8(ascii: "{")) else { return nil }
        skipWhitespace()
        if !expect(UInt8(ascii: "}")) {
            while true {
                skipWhitespace()
                let name: Range<Int>
                let slot: Int?
                if next < slotNames.count, let matched = expectedName(slotNames[next], names) {
                    // The member the schema's order says comes next, matched in place.
                    name = matched
                    slot = next
                } else {
                    guard let scanned = memberName() else { return nil }
                    name = scanned
                    slot = Self.slot(of: scanned, in: bytes, slotNames: slotNames, names: names)
                }
                skipWhitespace()
                guard expect(UInt8(ascii: ":")) else { return nil }
                skipWhitespace()
                if let slot {
                    next = slot &+ 1
                    let bit: UInt64 = 1 << UInt64(slot)
                    guard seen & bit == 0 else { return nil }
                    seen |= bit
                    if slot < width {
                        if current == UInt8(ascii: "n") {
                            guard literal("null") else { return nil }
                        } else {
                            guard let value = fieldValue(codes[slot], slot, layout) else { return nil }
                            values[slot] = value
                            nonNull |= bit
                        }
                    } else {
                        switch slot &- width {
                        case Self.operationSlot:
                            guard let op = stringValue({ Self.operation($0) }) else { return nil }
                            operation = op
                        case Self.orderSlot:
                            guard let value = integerToken() else { return nil }
                            order = value
                        default:
                            guard let value = stringValue({ EventTimestamp.parseMicroseconds($0) }) else { return nil }
                            micros = EventTimestamp.canonicalMicroseconds(value)
                        }
                    }
                } else {
                    // Not in the schema: checked for a repeat, its value for JSON, then ignored.
                    let range = name
                    for earlier in unknownNames.prefix(unknownCount)
                    where Self.equal(earlier, range, in: bytes) {
                        return nil
                    }
                    guard unknownCount < unknownNames.count, skipScalar() else { return nil }
                    unknownNames[unknownCount] = range
                    unknownCount &+= 1
                }
                skipWhitespace()
                if expect(UInt8(ascii: ",")) { continue }
                guard expect(UInt8(ascii: "}")) else { return nil }
                break
            }
        }
        skipWhitespace()
        guard index == bytes.count, let operation else { return nil }
        let envelope: UInt64 = 0b111 << UInt64(width)
        guard seen & envelope == envelope else { return nil }
        let keyBit: UInt64 = 1 << UInt64(layout.keyIndex)
        guard nonNull & keyBit != 0 else { return nil }
        if operation == .delete {
            // A delete carries only the key.
            guard nonNull == keyBit else { return nil }
        } else {
            for slot in 0..<width where !codes[slot].isOptional && nonNull & (1 << UInt64(slot)) == 0 {
                return nil
            }
        }
        return RowHeader(order: order, micros: micros, operation: operation)
    }

    /// The slot of a member name: a field's index, `width +` an envelope slot, or `nil` for a name not in the
    /// schema.
    @inline(__always)
    private static func slot(
        of name: Range<Int>,
        in bytes: UnsafeRawBufferPointer,
        slotNames: [RowLayout.SlotName],
        names: [UInt8]
    ) -> Int? {
        let length = name.count
        let start = bytes.baseAddress! + name.lowerBound
        return names.withUnsafeBytes { names -> Int? in
            for index in 0..<slotNames.count {
                let slotName = slotNames[index]
                if slotName.count == length, memcmp(start, names.baseAddress! + slotName.start, length) == 0 {
                    return index
                }
            }
            return nil
        }
    }

    /// The name `slotName` at the reader's position, written plainly and closed by its quote: its range (the
    /// reader then after the quote), or `nil` (the reader unmoved).
    @inline(__always)
    private mutating func expectedName(_ slotName: RowLayout.SlotName, _ names: [UInt8]) -> Range<Int>? {
        let start = index &+ 1
        let end = start &+ slotName.count
        if slotName.quotedFits, index &+ 16 <= bytes.count {
            // Two words compared under the quoted name's masks.
            let first = UInt64(littleEndian: bytes.baseAddress!.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            let second = UInt64(
                littleEndian: bytes.baseAddress!.loadUnaligned(fromByteOffset: index &+ 8, as: UInt64.self)
            )
            guard first & slotName.quotedMask.0 == slotName.quoted.0,
                second & slotName.quotedMask.1 == slotName.quoted.1
            else { return nil }
            index = end &+ 1
            return start..<end
        }
        guard slotName.isPlain, end < bytes.count, bytes[index] == UInt8(ascii: "\""),
            bytes[end] == UInt8(ascii: "\""),
            names.withUnsafeBytes({
                memcmp(bytes.baseAddress! + start, $0.baseAddress! + slotName.start, slotName.count) == 0
            })
        else { return nil }
        index = end &+ 1
        return start..<end
    }

    private static func equal(_ a: Range<Int>, _ b: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && memcmp(bytes.baseAddress! + a.lowerBound, bytes.baseAddress! + b.lowerBound, a.count) == 0
    }

    private static func operation(_ text: UnsafeRawBufferPointer) -> ChangeOperation? {
        func equals(_ word: StaticString) -> Bool {
            text.count == word.utf8CodeUnitCount && memcmp(text.baseAddress!, word.utf8Start, text.count) == 0
        }
        guard text.count == 6 else { return nil }
        if equals("insert") { return .insert }
        if equals("update") { return .update }
        if equals("delete") { return .delete }
        return nil
    }

    /// A member name without escapes and of ASCII bytes only (so its bytes are its identity, as for the
    /// `String` comparison the `Codable` path makes); the reader is on its opening quote.
    @inline(__always)
    private mutating func memberName() -> Range<Int>? {
        guard expect(UInt8(ascii: "\"")) else { return nil }
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index &+= 1
                return start..<index &- 1
            }
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { return nil }
            index &+= 1
        }
        return nil
    }

    // MARK: Values

    /// The value of field `slot` (not `null`) by its kind's rule, or `nil` when it is not one.
    @inline(__always)
    private mutating func fieldValue(_ code: RowLayout.FieldCode, _ slot: Int, _ layout: RowLayout) -> RowValue? {
        switch code.tag {
        case .integer:
            guard let value = integerToken(), value >= code.min, value <= code.max else { return nil }
            return .integer(value)
        case .string:
            return stringValue { .string(String(decoding: $0, as: UTF8.self)) }
        case .bool:
            if current == UInt8(ascii: "t") { return literal("true") ? .bool(true) : nil }
            return literal("false") ? .bool(false) : nil
        case .double:
            guard let (range, _) = number(), let value = Double(text(range)), value.isFinite else { return nil }
            return .double(value)
        case .float:
            guard let (range, _) = number(), let value = Float(text(range)), value.isFinite else { return nil }
            return .double(Double(value))
        case .timestamp:
            return stringValue { text in
                EventTimestamp.parseMicroseconds(text).map { .timestamp(EventTimestamp.canonicalMicroseconds($0)) }
            }
        case .uuid:
            return stringValue(Self.uuid)
        case .other:
            return otherValue(layout.fields[slot], layout)
        }
    }

    /// The value of a field of a kind that needs its ``RowLayout/Field``: enums, decimals, URLs.
    private mutating func otherValue(_ field: RowLayout.Field, _ layout: RowLayout) -> RowValue? {
        switch field.kind {
        case .stringEnum(let cases):
            return stringValue { text in
                cases.first { $0.utf8.elementsEqual(text) }.map(RowValue.string)
            }
        case .integerEnum(let cases):
            guard let (range, isInteger) = number(), isInteger, let value = FlatJSONReader.integer(range, in: bytes),
                cases.contains(value)
            else { return nil }
            return .integer(value)
        default:
            // Rare and costly either way: the table reads them (a decimal from whatever JSON it accepts).
            let json: JSONScalar
            if current == UInt8(ascii: "\"") {
                guard let text = stringValue({ String(decoding: $0, as: UTF8.self) }) else { return nil }
                json = .string(text)
            } else {
                guard let (range, isInteger) = number() else { return nil }
                json = .number(text(range), isInteger: isInteger)
            }
            return layout.value(of: json, kind: field.kind, scalar: field.scalar)
        }
    }

    @inline(__always)
    private func text(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// A `UUID` in its 8-4-4-4-12 hexadecimal form, either case.
    private static func uuid(_ text: UnsafeRawBufferPointer) -> RowValue? {
        guard text.count == 36 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        for position in 0..<36 {
            let byte = text[position]
            if position == 8 || position == 13 || position == 18 || position == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let digit: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(byte &- UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt64(byte &- UInt8(ascii: "a") &+ 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt64(byte &- UInt8(ascii: "A") &+ 10)
            default: return nil
            }
            if digits < 16 { high = high << 4 | digit } else { low = low << 4 | digit }
            digits &+= 1
        }
        return .uuid(high, low)
    }

    @inline(__always)
    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index &+ count <= bytes.count, memcmp(bytes.baseAddress! + index, word.utf8Start, count) == 0 else {
            return false
        }
        index &+= count
        return true
    }

    /// An integral number token (JSON's grammar, no fraction or exponent) read and converted in one pass: the
    /// same value as `FlatJSONReader.integer` of the token; `nil` for any other token or one beyond 64 bits.
    @inline(__always)
    private mutating func integerToken() -> Int64? {
        let negative = current == UInt8(ascii: "-")
        if negative { index &+= 1 }
        guard index < bytes.count else { return nil }
        let first = bytes[index] &- UInt8(ascii: "0")
        guard first < 10 else { return nil }
        index &+= 1
        var value = negative ? -Int64(first) : Int64(first)
        if first != 0 {
            // Eight digits at a time while the value stays within 18 digits (no overflow to check), then one by one.
            var digits = 1
            while digits &+ 8 <= 18, index &+ 8 <= bytes.count {
                let word = UInt64(
                    littleEndian: bytes.baseAddress!.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                )
                guard let eight = Self.eightDigits(word) else { break }
                value = value &* 100_000_000 &+ (negative ? -eight : eight)
                digits &+= 8
                index &+= 8
            }
            while index < bytes.count {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { break }
                // Accumulated negatively for a negative number, so that Int64.min fits.
                let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
                let (next, overflowedAgain) =
                    negative
                    ? shifted.subtractingReportingOverflow(Int64(digit))
                    : shifted.addingReportingOverflow(Int64(digit))
                guard !overflowed, !overflowedAgain else { return nil }
                value = next
                index &+= 1
            }
        }
        if index < bytes.count {
            let next = bytes[index]
            guard next != UInt8(ascii: "."), next != UInt8(ascii: "e"), next != UInt8(ascii: "E"),
                next &- UInt8(ascii: "0") >= 10
            else { return nil }
        }
        return value
    }

    /// The value of eight ASCII digits in a little-endian word (the first digit in its lowest byte), or `nil` when
    /// a byte is not a digit.
    @inline(__always)
    private static func eightDigits(_ word: UInt64) -> Int64? {
        // Every byte's high nibble 3, and still 3 with 6 added (so its low nibble is at most 9).
        let highs = word & 0xF0F0_F0F0_F0F0_F0F0
        let carried = (word &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0
        guard highs | (carried >> 4) == 0x3333_3333_3333_3333 else { return nil }
        // Pairs, then quadruples, then the eight: each step multiplies the higher half in and shifts.
        // (Parenthesized: Swift's shifts bind tighter than its multiplications.)
        var value = ((word & 0x0F0F_0F0F_0F0F_0F0F) &* 2561) >> 8
        value = ((value & 0x00FF_00FF_00FF_00FF) &* 6_553_601) >> 16
        value = ((value & 0x0000_FFFF_0000_FFFF) &* 42_949_672_960_001) >> 32
        return Int64(value & 0xFFFF_FFFF)
    }

    /// A number token by JSON's grammar: its range, and whether it has neither fraction nor exponent.
    @inline(__always)
    private mutating func number() -> (Range<Int>, Bool)? {
        let start = index
        var isInteger = true
        if current == UInt8(ascii: "-") { index &+= 1 }
        guard let first = current, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { return nil }
        index &+= 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if current == UInt8(ascii: ".") {
            isInteger = false
            index &+= 1
            guard skipDigits() > 0 else { return nil }
        }
        if let e = current, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            isInteger = false
            index &+= 1
            if let sign = current, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index &+= 1 }
            guard skipDigits() > 0 else { return nil }
        }
        if let next = current, next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") { return nil }
        return (start..<index, isInteger)
    }

    @inline(__always)
    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = index
        while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index &+= 1 }
        return index &- start
    }

    /// A scalar value of a member not in the schema, checked as JSON (a nested value is left to the slow path).
    private mutating func skipScalar() -> Bool {
        switch current {
        case UInt8(ascii: "\""): return stringValue { _ in true } != nil
        case UInt8(ascii: "n"): return literal("null")
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        default: return number() != nil
        }
    }

    /// A JSON string's decoded bytes handed to `body` (in place when it has no escape, else in a temporary
    /// buffer), checked as the flat-JSON reader checks strings: no control character, valid escapes and
    /// surrogate pairs, valid UTF-8. `nil` when it is not such a string or `body` returns `nil`.
    @inline(__always)
    private mutating func stringValue<T>(_ body: (UnsafeRawBufferPointer) -> T?) -> T? {
        guard expect(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var isASCII = true
        // Eight bytes at a time while none ends the string, starts an escape, is a control byte or is not ASCII;
        // the loop below reads the rest.
        while index &+ 8 <= bytes.count {
            let word = bytes.baseAddress!.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            guard !Self.mayEndPlainText(word) else { break }
            index &+= 8
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                index &+= 1
                guard isASCII || Self.isValidUTF8(raw) else { return nil }
                return body(raw)
            }
            if byte == UInt8(ascii: "\\") { return escapedString(from: start, body) }
            guard byte >= 0x20 else { return nil }
            if byte >= 0x80 { isASCII = false }
            index &+= 1
        }
        return nil
    }

    /// Whether any byte of `word` is a quote, a backslash, below 0x20 or above 0x7F (exact: no false negative; a
    /// false positive only makes the caller read those bytes one by one).
    @inline(__always)
    private static func mayEndPlainText(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZeroByte(_ x: UInt64) -> UInt64 { (x &- ones) & ~x & high }
        let quote = hasZeroByte(word ^ (ones &* 0x22))
        let backslash = hasZeroByte(word ^ (ones &* 0x5C))
        let control = (word &- ones &* 0x20) & ~word & high  // a byte below 0x20 (with none above 0x7F)
        return quote | backslash | control | (word & high) != 0
    }

    /// The slow part of ``stringValue(_:)``: a string with escapes, decoded into a temporary buffer (no longer
    /// than the escaped text).
    private mutating func escapedString<T>(from start: Int, _ body: (UnsafeRawBufferPointer) -> T?) -> T? {
        // Find the closing quote first, for the buffer's size.
        var end = index
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
            end &+= bytes[end] == UInt8(ascii: "\\") ? 2 : 1
        }
        guard end < bytes.count else { return nil }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: end &- start) { out -> T? in
            var count = 0
            var position = start
            func put(_ byte: UInt8) {
                out[count] = byte
                count &+= 1
            }
            func hex4(_ at: Int) -> UInt32? {
                guard at &+ 4 <= end else { return nil }
                var value: UInt32 = 0
                for offset in 0..<4 {
                    let byte = bytes[at &+ offset]
                    let digit: UInt32
                    switch byte {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte &- UInt8(ascii: "0"))
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte &- UInt8(ascii: "a") &+ 10)
                    case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte &- UInt8(ascii: "A") &+ 10)
                    default: return nil
                    }
                    value = value << 4 | digit
                }
                return value
            }
            while position < end {
                let byte = bytes[position]
                if byte != UInt8(ascii: "\\") {
                    guard byte >= 0x20 else { return nil }
                    put(byte)
                    position &+= 1
                    continue
                }
                guard position &+ 1 < end else { return nil }
                let escape = bytes[position &+ 1]
                position &+= 2
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): put(escape)
                case UInt8(ascii: "b"): put(0x08)
                case UInt8(ascii: "f"): put(0x0C)
                case UInt8(ascii: "n"): put(0x0A)
                case UInt8(ascii: "r"): put(0x0D)
                case UInt8(ascii: "t"): put(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4(position) else { return nil }
                    position &+= 4
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard position &+ 1 < end, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position &+ 1] == UInt8(ascii: "u"), let low = hex4(position &+ 2),
                            (0xDC00..<0xE000).contains(low)
                        else { return nil }
                        position &+= 6
                        scalar = 0x10000 &+ ((scalar &- 0xD800) << 10) &+ (low &- 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        return nil
                    }
                    for unit in UTF8.encode(Unicode.Scalar(scalar)!)! { put(unit) }
                default: return nil
                }
            }
            index = end &+ 1
            let decoded = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: out[0..<count]))
            guard Self.isValidUTF8(decoded) else { return nil }
            return body(decoded)
        }
    }

    /// Whether `bytes` are well-formed UTF-8 (what `String(validating:)` accepts), without making a string.
    private static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
