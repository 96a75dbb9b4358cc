/// A result column that does not hold the expected type.
public struct RisingWaveDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The column.
    public internal(set) var column: String
    /// The text received (`nil` for NULL or a missing column).
    public internal(set) var value: String?
    /// The Swift type expected.
    public internal(set) var expected: String
    /// What is wrong.
    public internal(set) var reason: String
    /// The row's key (as text), when the row has one, so the bad row can be found.
    public internal(set) var key: String?

    init(column: String, value: String?, expected: String, reason: String, key: String? = nil) {
        self.column = column
        self.value = value
        self.expected = expected
        self.reason = reason
        self.key = key
    }

    /// The row's key when known, the column, the value received, what is wrong and what was expected.
    public var description: String {
        let row = key.map { "row with key \($0): " } ?? ""
        return "\(row)column '\(column)'\(value.map { " value '\($0)'" } ?? "") \(reason); expected \(expected)"
    }
}
