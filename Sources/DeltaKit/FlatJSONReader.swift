import Foundation

/// One value of a flat JSON object, as a slice of the input: what the wire decoder works on.
package enum FlatJSONValue {
    case null
    case bool(Bool)
    /// A number's text, validated against JSON's grammar; `isInteger` when it has no fraction or exponent.
    case number(Range<Int>, isInteger: Bool)
    /// A string's decoded text.
    case string(String)
    /// An object or array (not a scalar): its text range, for messages.
    case nested(Range<Int>)

    /// The value as the scalar table reads it; `nil` for `null` and for an object or array.
    func scalar(in bytes: UnsafeRawBufferPointer) -> JSONScalar? {
        switch self {
        case .bool(let flag): .bool(flag)
        case .string(let text): .string(text)
        case .number(let range, let isInteger): .number(FlatJSONReader.text(range, in: bytes), isInteger: isInteger)
        case .null, .nested: nil
        }
    }
}

/// Reads one flat JSON object — the wire shape of a change event — from bytes, without Foundation's
/// `JSONDecoder` or a copy of the input: every field's value as a ``FlatJSONValue``.
///
/// It accepts exactly RFC 8259 JSON (UTF-8, no trailing commas, no comments, no leading zeros, no bare
/// NaN/Infinity) with an object at the top; nested objects and arrays are skipped (and reported as `nested`),
/// up to a depth of 64. A name that appears twice in the object is refused (see ``fields(of:)``). Anything else
/// throws a ``ChangeEventDecodingError`` naming the offset.
package struct FlatJSONReader {
    private let bytes: UnsafeRawBufferPointer
    private var index = 0
    static let maxDepth = 64

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The fields of the object in `bytes`, in input order.
    ///
    /// The names of the object's members are unique: a name that appears twice — compared after decoding its
    /// escapes, so `"id"` and `"\u0069d"` are the same name — throws a ``ChangeEventDecodingError`` naming it.
    /// JSON readers disagree on which of two values counts (`JSONSerialization` takes the last, RisingWave's
    /// simd-json the first), so an event with a repeated name has no one meaning and never changes state.
    /// (Objects nested in a field are only checked for syntax: no field of an event holds one.)
    ///
    /// The check costs no allocation for up to ``WireFields/indexThreshold`` fields (the names read so far are
    /// compared, as the lookup does); a wider object is checked with a set.
    package static func fields(of bytes: UnsafeRawBufferPointer) throws -> [(key: String, value: FlatJSONValue)] {
        var reader = FlatJSONReader(bytes)
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: "{") else {
            if reader.atEnd { throw reader.syntax("empty message") }
            // Valid JSON of another shape, or not JSON at all?
            var probe = reader
            if (try? probe.value()) != nil {
                probe.skipWhitespace()
                if probe.atEnd {
                    throw ChangeEventDecodingError(field: nil, value: nil, reason: "expected a JSON object")
                }
            }
            throw reader.syntax("not an object")
        }
        reader.index += 1
        var fields: [(key: String, value: FlatJSONValue)] = []
        var wideNames: Set<String>?  // the names so far, once the object is wider than the linear scan's limit
        reader.skipWhitespace()
        if reader.peek() == UInt8(ascii: "}") {
            reader.index += 1
        } else {
            while true {
                reader.skipWhitespace()
                guard reader.peek() == UInt8(ascii: "\"") else { throw reader.syntax("expected a field name") }
                let nameOffset = reader.index
                let key = try reader.string()
                if fields.count < WireFields.indexThreshold {
                    for field in fields where field.key == key { throw reader.repeated(key, at: nameOffset) }
                } else {
                    if wideNames == nil { wideNames = Set(fields.lazy.map(\.key)) }
                    guard wideNames!.insert(key).inserted else { throw reader.repeated(key, at: nameOffset) }
                }
                reader.skipWhitespace()
                guard reader.peek() == UInt8(ascii: ":") else { throw reader.syntax("expected ':'") }
                reader.index += 1
                reader.skipWhitespace()
                fields.append((key, try reader.value()))
                reader.skipWhitespace()
                if reader.peek() == UInt8(ascii: ",") {
                    reader.index += 1
                    continue
                }
                guard reader.peek() == UInt8(ascii: "}") else { throw reader.syntax("expected ',' or '}'") }
                reader.index += 1
                break
            }
        }
        reader.skipWhitespace()
        guard reader.atEnd else { throw reader.syntax("unexpected data after the object") }
        return fields
    }

    /// The integer whose JSON text (a number token with `isInteger`) is `range` of `bytes`, or `nil` when it does
    /// not fit 64 bits. Reads the bytes in place: the same result as `Int64(text(range, in: bytes))`.
    package static func integer(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Int64? {
        var index = range.lowerBound
        guard index < range.upperBound else { return nil }
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < range.upperBound else { return nil }
        var value: Int64 = 0
        while index < range.upperBound {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
            // Accumulate negatively for a negative number, so that Int64.min fits.
            let (next, overflowedAgain) =
                negative
                ? shifted.subtractingReportingOverflow(Int64(digit)) : shifted.addingReportingOverflow(Int64(digit))
            guard !overflowed, !overflowedAgain else { return nil }
            value = next
            index += 1
        }
        return value
    }

    /// The text of `range` in the input, for number parsing and messages.
    static func text(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// The scalar JSON value `json` alone (a number, string or boolean, as the scalar table writes one), or `nil`
    /// for `null` or an object or array.
    ///
    /// - Throws: ``ChangeEventDecodingError`` when `json` is not one JSON value.
    static func scalar(_ json: some Collection<UInt8>) throws -> JSONScalar? {
        let object = Array(#"{"v":"#.utf8) + json + [UInt8(ascii: "}")]
        return try object.withUnsafeBytes { bytes in try fields(of: bytes).first?.value.scalar(in: bytes) }
    }

    // MARK: Grammar

    private var atEnd: Bool { index >= bytes.count }
    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private func syntax(_ reason: String) -> ChangeEventDecodingError {
        let snippet = String(decoding: UnsafeRawBufferPointer(rebasing: bytes.prefix(80)), as: UTF8.self)
        return ChangeEventDecodingError(
            field: nil,
            value: "\"\(snippet)\"",
            reason: "not valid JSON (\(reason) at byte \(index))"
        )
    }

    /// A member name that appeared before in the same object.
    private func repeated(_ name: String, at offset: Int) -> ChangeEventDecodingError {
        ChangeEventDecodingError(
            field: name,
            value: nil,
            reason:
                "the name appears twice in the object (again at byte \(offset)); JSON readers disagree on which value counts, so the event is refused — write each field once"
        )
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    private mutating func value() throws -> FlatJSONValue {
        guard let byte = peek() else { throw syntax("expected a value") }
        switch byte {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let start = index
            try skipNested()
            return .nested(start..<index)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number()
        default:
            throw syntax("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count,
            memcmp(bytes.baseAddress! + index, word.utf8Start, count) == 0
        else { throw syntax("invalid literal") }
        index += count
    }

    private mutating func number() throws -> FlatJSONValue {
        let start = index
        var isInteger = true
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
            throw syntax("invalid number")
        }
        index += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if peek() == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard skipDigits() > 0 else { throw syntax("invalid number") }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard skipDigits() > 0 else { throw syntax("invalid number") }
        }
        if let next = peek(), next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") {
            throw syntax("invalid number (leading zero)")
        }
        return .number(start..<index, isInteger: isInteger)
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = index
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    /// A string token; the reader is on its opening quote.
    private mutating func string() throws -> String {
        index += 1
        let start = index
        // Fast path: no escapes.
        var isASCII = true
        while let byte = peek() {
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                // `String(decoding:)` is exact for ASCII; otherwise it repairs invalid UTF-8, which shows as a
                // difference from the input (cheaper than `String(validating:)`, which is not specialized).
                let text = String(decoding: raw, as: UTF8.self)
                guard isASCII || text.utf8.elementsEqual(raw) else { throw syntax("invalid UTF-8") }
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw syntax("control character in a string") }
            if byte >= 0x80 { isASCII = false }
            index += 1
        }
        // Slow path: escapes.
        var out: [UInt8] = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while true {
            guard let byte = peek() else { throw syntax("unterminated string") }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw syntax("invalid UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                guard let escape = peek() else { throw syntax("unterminated string") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count,
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw syntax("unpaired surrogate") }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw syntax("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw syntax("unpaired surrogate")
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default: throw syntax("invalid escape")
                }
            default:
                if byte < 0x20 { throw syntax("control character in a string") }
                out.append(byte)
            }
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw syntax("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw syntax("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// Skips an object or array (iteratively, with a depth limit), validating its JSON.
    private mutating func skipNested() throws {
        var stack: [UInt8] = []  // the closing bracket of each open container
        var afterComma = false
        repeat {
            skipWhitespace()
            guard let byte = peek() else { throw syntax("unterminated object or array") }
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < Self.maxDepth else { throw syntax("nesting deeper than \(Self.maxDepth)") }
                stack.append(byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]"))
                index += 1
                afterComma = false
                skipWhitespace()
                if peek() == stack.last {
                    index += 1
                    stack.removeLast()
                    try afterValue(&stack, &afterComma)
                } else if byte == UInt8(ascii: "{") {
                    try memberKey()
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard byte == stack.last, !afterComma else {
                    throw syntax("unexpected '\(Character(Unicode.Scalar(byte)))'")
                }
                index += 1
                stack.removeLast()
                try afterValue(&stack, &afterComma)
            default:
                _ = try value()  // a scalar: containers are handled above, so this never recurses
                afterComma = false
                try afterValue(&stack, &afterComma)
            }
        } while !stack.isEmpty
    }

    /// After a value inside a container: a ',' (then, in an object, the next key) or the closing bracket.
    private mutating func afterValue(_ stack: inout [UInt8], _ afterComma: inout Bool) throws {
        guard let closing = stack.last else { return }
        skipWhitespace()
        if peek() == UInt8(ascii: ",") {
            index += 1
            afterComma = true
            if closing == UInt8(ascii: "}") { try memberKey() }
        } else if peek() != closing {
            throw syntax("expected ',' or '\(Character(Unicode.Scalar(closing)))'")
        }
    }

    /// `"key":` inside a skipped object.
    private mutating func memberKey() throws {
        skipWhitespace()
        guard peek() == UInt8(ascii: "\"") else { throw syntax("expected a field name") }
        _ = try string()
        skipWhitespace()
        guard peek() == UInt8(ascii: ":") else { throw syntax("expected ':'") }
        index += 1
    }
}
