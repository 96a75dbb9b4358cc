import Foundation
import Synchronization

/// A scalar JSON value as the wire decoder hands it to ``ScalarType/readJSON``.
package enum JSONScalar {
    case bool(Bool)
    case string(String)
    /// A number's text (valid JSON); `isInteger` when it has no fraction and no exponent.
    case number(String, isInteger: Bool)
}

/// How one supported Swift scalar type maps to DeltaKit's schema, wire JSON and text form.
///
/// This is the single table every path uses — schema discovery, the JSON encoder, the JSON decoder's
/// messages, the SQL text parser and row decoders in the backends — so they cannot drift apart.
/// Supported: `Bool`, every fixed-width integer, `Float`, `Double`, `Decimal`, `String`, `Date`, `UUID`,
/// `URL`, and enums whose raw value is a `String` or an integer (they must also be `CaseIterable`, so
/// that schema discovery can make a value).
package struct ScalarType: Sendable {
    /// The schema type (and so the SQL column type).
    package let fieldType: RecordSchema.FieldType
    /// The Swift type's name, for messages.
    package let swiftName: String
    /// What the JSON value must be, for decoding errors ("an integer", "a string", …).
    package let expectation: String
    /// A value of the type, distinct for distinct `seed`s where the type allows, for schema discovery.
    package let probe: @Sendable (_ seed: Int) -> Any?
    /// Appends the value's JSON to a buffer; throws when the value cannot be represented
    /// (a non-finite number, an unsigned integer beyond a signed 64-bit column).
    package let writeJSON: @Sendable (_ value: Any, _ buffer: inout [UInt8], _ field: String) throws -> Void
    /// Parses the value's text form: PostgreSQL/RisingWave result text, or the JSON string content of a
    /// `Date`, `UUID` or `URL`. `nil` when the text is not a valid value.
    package let parseText: @Sendable (_ text: String) -> Any?
    /// The value of a JSON scalar, or `nil` when it is not one of this type (a wrong JSON type, a fraction or
    /// an out-of-range integer, a non-finite float, an unparsable date, UUID or URL, an unknown enum value).
    package let readJSON: @Sendable (_ value: JSONScalar) -> Any?
    /// `true` when the first value sorts before the second as SQL sorts the column: numbers and dates by value,
    /// strings (and UUIDs, URLs, string enums) by their UTF-8 bytes, `false` before `true`.
    package let precedes: @Sendable (_ lhs: Any, _ rhs: Any) -> Bool

    /// The value's text form: what ``parseText`` reads back to the same value — a string's content unescaped,
    /// a number's or boolean's JSON text. Backends use it for keys in query parameters.
    /// Throws when the value has no JSON form (see ``writeJSON``).
    package func textForm(of value: Any, field: String) throws -> String {
        var json: [UInt8] = []
        try writeJSON(value, &json, field)
        switch try FlatJSONReader.scalar(json) {
        case .string(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let text, _): return text
        case nil:
            throw DeltaKitError(
                code: .serializationFailed,
                message: "field '\(field)' (\(swiftName)) has no scalar JSON form"
            )
        }
    }

    /// The description of `type`, or `nil` when DeltaKit does not support it as a field.
    package static func of(_ type: Any.Type) -> ScalarType? {
        if let builtin = builtins[ObjectIdentifier(type)] { return builtin }
        if let cached = derived.withLock({ $0[ObjectIdentifier(type)] }) { return cached }
        guard let made = rawRepresentable(type) else { return nil }
        derived.withLock { $0[ObjectIdentifier(type)] = made }
        return made
    }

    /// Like ``of(_:)``, but throws an error naming the field when the type is not supported.
    package static func require(_ type: Any.Type, field: String) throws -> ScalarType {
        guard let scalar = of(type) else { throw unsupported(type, field: field) }
        return scalar
    }

    /// The error for a field whose type is not supported.
    package static func unsupported(_ type: Any.Type, field: String) -> DeltaKitError {
        DeltaKitError(
            code: .invalidConfiguration,
            message:
                "field '\(field)' has type \(type), which is not a supported scalar; a ChangeRecord's fields map to columns and must be \(supportedList) or optionals of these"
        )
    }

    /// The supported types, for messages and docs.
    package static let supportedList =
        "Bool, an integer, Float, Double, Decimal, String, Date, UUID, URL, a CaseIterable enum with String or integer raw values"

    // MARK: The table

    private static let builtins: [ObjectIdentifier: ScalarType] = {
        var table: [ObjectIdentifier: ScalarType] = [:]
        func add(_ type: Any.Type, _ scalar: ScalarType) { table[ObjectIdentifier(type)] = scalar }
        add(
            Bool.self,
            .make(
                .bool,
                "Bool",
                "a boolean",
                probe: { $0 % 2 == 1 },
                write: { v, b, _ in
                    FlatJSONWriter.appendLiteral(v ? "true" : "false", to: &b)
                },
                parse: { text in
                    switch text.lowercased() {
                    case "t", "true": return true
                    case "f", "false": return false
                    default: return nil
                    }
                },
                read: { if case .bool(let value) = $0 { value } else { nil } },
                precedes: { !$0 && $1 }
            )
        )
        add(
            String.self,
            .make(
                .string,
                "String",
                "a string",
                probe: { "p\($0)" },
                write: { v, b, _ in
                    FlatJSONWriter.appendString(v, to: &b)
                },
                parse: { $0 },
                precedes: { bytesPrecede($0, $1) }
            )
        )
        add(Double.self, floating(Double.self, .double, "Double"))
        add(Float.self, floating(Float.self, .float, "Float"))
        add(Int.self, integer(Int.self, .int64))
        add(Int64.self, integer(Int64.self, .int64))
        add(Int32.self, integer(Int32.self, .int32))
        add(Int16.self, integer(Int16.self, .int32))
        add(Int8.self, integer(Int8.self, .int32))
        add(UInt.self, integer(UInt.self, .int64))
        add(UInt64.self, integer(UInt64.self, .int64))
        add(UInt32.self, integer(UInt32.self, .int64))
        add(UInt16.self, integer(UInt16.self, .int32))
        add(UInt8.self, integer(UInt8.self, .int32))
        add(
            Date.self,
            .make(
                .timestamp,
                "Date",
                "an ISO-8601 timestamp",
                probe: {
                    Date(timeIntervalSince1970: Double($0))
                },
                write: { v, b, _ in
                    b.append(UInt8(ascii: "\""))
                    EventTimestamp.format(v, into: &b)
                    b.append(UInt8(ascii: "\""))
                },
                parse: EventTimestamp.parse,
                precedes: { $0 < $1 }
            )
        )
        add(
            Decimal.self,
            .make(
                .decimal,
                "Decimal",
                "a number, or a string holding one",
                probe: { Decimal($0) },
                // A JSON string of the exact decimal text: readers that parse JSON numbers as binary floating
                // point (RisingWave's JSON parser does) round past ~15 significant digits, where every backend
                // reads a string into a decimal exactly.
                write: { v, b, field in
                    guard !v.isNaN else {
                        throw DeltaKitError(
                            code: .serializationFailed,
                            message: "field '\(field)' is NaN; JSON and SQL have no representation for it"
                        )
                    }
                    FlatJSONWriter.appendString(v.description, to: &b)
                },
                // Result text (PostgreSQL's and RisingWave's NUMERIC print a JSON-shaped number) must be a number
                // as a whole: `Decimal(string:)` reads a prefix (".050e" as 0.050, a value whose text is not what
                // it was read from).
                parse: { text in
                    guard isJSONNumber(text) else { return nil }
                    return Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
                },
                // Both forms: a JSON number (other producers, and events written before decimals were strings) or
                // a string whose whole content is a JSON number. `Decimal(string:)` alone accepts a prefix
                // ("12abc" is 12), so a string is checked against JSON's number grammar first.
                read: { value in
                    let text: String
                    switch value {
                    case .number(let number, _): text = number
                    case .string(let string) where isJSONNumber(string): text = string
                    default: return nil
                    }
                    guard let decimal = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")),
                        !decimal.isNaN
                    else { return nil }
                    return decimal
                },
                precedes: { $0 < $1 }
            )
        )
        add(
            UUID.self,
            .make(
                .uuid,
                "UUID",
                "a UUID string",
                probe: { seed in
                    UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, UInt8(truncatingIfNeeded: seed)))
                },
                write: { v, b, _ in
                    FlatJSONWriter.appendString(v.uuidString.lowercased(), to: &b)
                },
                parse: { UUID(uuidString: $0) },
                precedes: { bytesPrecede($0.uuidString.lowercased(), $1.uuidString.lowercased()) }
            )
        )
        add(
            URL.self,
            .make(
                .string,
                "URL",
                "a URL string",
                probe: { URL(string: "https://example.com/\($0)") },
                write: { v, b, _ in
                    FlatJSONWriter.appendString(v.absoluteString, to: &b)
                },
                parse: { URL(string: $0) },
                precedes: { bytesPrecede($0.absoluteString, $1.absoluteString) }
            )
        )
        return table
    }()

    private static let derived = Mutex<[ObjectIdentifier: ScalarType]>([:])

    private static func make<T>(
        _ fieldType: RecordSchema.FieldType,
        _ name: String,
        _ expectation: String,
        probe: @escaping @Sendable (Int) -> T?,
        write: @escaping @Sendable (T, inout [UInt8], String) throws -> Void,
        parse: @escaping @Sendable (String) -> T?,
        read: (@Sendable (JSONScalar) -> T?)? = nil,
        precedes: @escaping @Sendable (T, T) -> Bool
    ) -> ScalarType {
        ScalarType(
            fieldType: fieldType,
            swiftName: name,
            expectation: expectation,
            probe: { probe($0) },
            writeJSON: { value, buffer, field in try write(value as! T, &buffer, field) },
            parseText: { parse($0) },
            // By default a JSON string holding the text form (dates, UUIDs, URLs, strings).
            readJSON: read ?? { if case .string(let text) = $0 { parse(text) } else { nil } },
            precedes: { precedes($0 as! T, $1 as! T) }
        )
    }

    /// `true` when `text` is exactly one JSON number (RFC 8259: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`),
    /// the content a decimal's JSON string may have. The RisingWave view checks the same pattern.
    package static func isJSONNumber(_ text: String) -> Bool {
        var bytes = text.utf8[...]
        func digits() -> Int {
            let count = bytes.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }.count
            bytes = bytes.dropFirst(count)
            return count
        }
        if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        if bytes.first == UInt8(ascii: "0") {
            bytes = bytes.dropFirst()
        } else if digits() == 0 {
            return false
        }
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            guard digits() > 0 else { return false }
        }
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }

    private static func bytesPrecede(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }

    private static func integer<I: FixedWidthInteger & Sendable>(
        _ type: I.Type,
        _ fieldType: RecordSchema.FieldType
    ) -> ScalarType {
        .make(
            fieldType,
            "\(I.self)",
            "an integer",
            probe: { I(exactly: $0) },
            write: { value, buffer, field in
                // A column is signed (INT or BIGINT): an unsigned value above Int64.max has no column to go to.
                guard I.bitWidth < 64 || I.isSigned || value <= Int64.max else {
                    throw DeltaKitError(
                        code: .serializationFailed,
                        message:
                            "field '\(field)' is \(value), above the largest 64-bit signed integer (\(Int64.max)) that a BIGINT column holds"
                    )
                }
                FlatJSONWriter.appendInteger(value, to: &buffer)
            },
            parse: { I($0) },
            // Only an integral JSON number in range: "25", 25.0 and 2.5e1 are not integers (RisingWave NULLs them).
            read: { value in
                guard case .number(let text, isInteger: true) = value, let number = I(text),
                    I.bitWidth < 64 || I.isSigned || number <= Int64.max
                else { return nil }
                return number
            },
            precedes: { $0 < $1 }
        )
    }

    private static func floating<F: BinaryFloatingPoint & LosslessStringConvertible & Sendable>(
        _ type: F.Type,
        _ fieldType: RecordSchema.FieldType,
        _ name: String
    ) -> ScalarType {
        .make(
            fieldType,
            name,
            "a number",
            probe: { F($0) },
            write: { value, buffer, field in
                guard value.isFinite else {
                    throw DeltaKitError(
                        code: .serializationFailed,
                        message: "field '\(field)' is \(value); JSON has no representation for non-finite numbers"
                    )
                }
                buffer.append(contentsOf: String(value).utf8)
            },
            parse: { text in
                switch text {
                case "NaN": return F.nan
                case "Infinity": return F.infinity
                case "-Infinity": return -F.infinity
                default: return F(text)
                }
            },
            read: { value in
                guard case .number(let text, _) = value, let number = F(text), number.isFinite else { return nil }
                return number
            },
            precedes: { $0 < $1 }
        )
    }

    // MARK: Enums with raw values

    private static func rawRepresentable(_ type: Any.Type) -> ScalarType? {
        guard let type = type as? any RawRepresentable.Type else { return nil }
        return rawRepresentableScalar(type)
    }

    private static func rawRepresentableScalar<R: RawRepresentable>(_ type: R.Type) -> ScalarType? {
        guard let raw = builtins[ObjectIdentifier(R.RawValue.self)],
            raw.fieldType == .string || raw.fieldType == .int32 || raw.fieldType == .int64,
            raw.swiftName != "URL"
        else { return nil }
        // The enum's cases with the JSON of their raw values, immutable after this line. A ChangeRecord is
        // Sendable, so an enum stored in one is Sendable too; `Any` only hides that from the compiler.
        /// The JSON of a raw value, the key cases are found by.
        let jsonOf: @Sendable (Any?) -> [UInt8]? = { rawValue in
            var json: [UInt8] = []
            guard let rawValue, (try? raw.writeJSON(rawValue, &json, "")) != nil else { return nil }
            return json
        }
        let all: [Any] = (R.self as? any CaseIterable.Type).map { allCases($0) } ?? []
        nonisolated(unsafe) let cases: [(json: [UInt8], value: Any)] = all.compactMap { value in
            jsonOf((value as! any RawRepresentable).rawValue).map { ($0, value) }
        }
        let caseFor: @Sendable (Any?) -> Any? = { rawValue in
            guard let json = jsonOf(rawValue) else { return nil }
            return cases.first { $0.json == json }?.value
        }
        let name = "\(R.self)"
        return ScalarType(
            fieldType: raw.fieldType,
            swiftName: name,
            expectation: "one of the raw values of \(name)",
            probe: { seed in cases.isEmpty ? nil : cases[seed % cases.count].value },
            writeJSON: { value, buffer, field in
                try raw.writeJSON((value as! any RawRepresentable).rawValue, &buffer, field)
            },
            parseText: { text in caseFor(raw.parseText(text)) },
            readJSON: { scalar in caseFor(raw.readJSON(scalar)) },
            precedes: { lhs, rhs in
                raw.precedes((lhs as! any RawRepresentable).rawValue, (rhs as! any RawRepresentable).rawValue)
            }
        )
    }

    private static func allCases<C: CaseIterable>(_ type: C.Type) -> [Any] { type.allCases.map { $0 } }
}
