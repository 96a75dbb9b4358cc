import Foundation

extension RecordSchema.FieldType {
    /// `true` when the wire value `lhs` sorts before `rhs` as SQL sorts a column of this type: numbers and
    /// timestamps by value, strings and UUIDs by their UTF-8 bytes, `false` before `true`.
    ///
    /// The tie rule of ``LatestStateMerge`` compares records through their wire JSON with this, so it reads field
    /// values the one way stores do (`ChangeEvent.wireJSONAndFields()`), and orders them as the RisingWave view's
    /// `ORDER BY` does. A decimal may arrive as a JSON number or a JSON string of the number.
    package func precedes(_ lhs: JSONScalar, _ rhs: JSONScalar) -> Bool {
        switch self {
        case .bool:
            guard case .bool(let left) = lhs, case .bool(let right) = rhs else { return Self.textPrecedes(lhs, rhs) }
            return !left && right
        case .int32, .int64:
            if let left = Int64(Self.text(lhs)), let right = Int64(Self.text(rhs)) { return left < right }
            return Self.decimalPrecedes(lhs, rhs)
        case .float, .double:
            if let left = Double(Self.text(lhs)), let right = Double(Self.text(rhs)) { return left < right }
            return Self.textPrecedes(lhs, rhs)
        case .decimal:
            return Self.decimalPrecedes(lhs, rhs)
        case .timestamp:
            if let left = EventTimestamp.parse(Self.text(lhs)), let right = EventTimestamp.parse(Self.text(rhs)) {
                return left < right
            }
            return Self.textPrecedes(lhs, rhs)
        case .string, .uuid:
            return Self.textPrecedes(lhs, rhs)
        }
    }

    /// A scalar's text: a string's content, a number's JSON text, `true`/`false`.
    private static func text(_ value: JSONScalar) -> String {
        switch value {
        case .string(let text), .number(let text, _): text
        case .bool(let flag): flag ? "true" : "false"
        }
    }

    private static func textPrecedes(_ lhs: JSONScalar, _ rhs: JSONScalar) -> Bool {
        text(lhs).utf8.lexicographicallyPrecedes(text(rhs).utf8)
    }

    private static func decimalPrecedes(_ lhs: JSONScalar, _ rhs: JSONScalar) -> Bool {
        let posix = Locale(identifier: "en_US_POSIX")
        guard let left = Decimal(string: text(lhs), locale: posix),
            let right = Decimal(string: text(rhs), locale: posix)
        else { return textPrecedes(lhs, rhs) }
        return left < right
    }
}
