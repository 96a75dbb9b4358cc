import DeltaKit
public import Foundation

/// A value that can be sent as a text-format statement parameter (`$1`, `$2`, …).
public protocol SQLEncodable: Sendable {
    /// The value's PostgreSQL text representation.
    var sqlText: String { get }
}

/// A value that can be decoded from a text-format result column.
public protocol SQLDecodable: Sendable {
    /// Parses the PostgreSQL/RisingWave text representation; `nil` if it is not a valid value.
    init?(sqlText: String)
}

extension String: SQLEncodable, SQLDecodable {
    public var sqlText: String { self }
    public init?(sqlText: String) { self = sqlText }
}
extension Int: SQLEncodable, SQLDecodable {
    public var sqlText: String { String(self) }
    public init?(sqlText: String) { self.init(sqlText) }
}
extension Int64: SQLEncodable, SQLDecodable {
    public var sqlText: String { String(self) }
    public init?(sqlText: String) { self.init(sqlText) }
}
extension Int32: SQLEncodable, SQLDecodable {
    public var sqlText: String { String(self) }
    public init?(sqlText: String) { self.init(sqlText) }
}
extension Double: SQLEncodable, SQLDecodable {
    public var sqlText: String { String(self) }
    public init?(sqlText: String) {
        switch sqlText {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default: self.init(sqlText)
        }
    }
}
extension Bool: SQLEncodable, SQLDecodable {
    public var sqlText: String { self ? "t" : "f" }
    public init?(sqlText: String) {
        switch sqlText.lowercased() {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}
extension Date: SQLEncodable, SQLDecodable {
    /// ISO-8601 with microseconds and `+00:00`.
    public var sqlText: String { EventTimestamp.format(self) }
    /// Parses TIMESTAMP (read as UTC) and TIMESTAMPTZ text, with or without fraction and offset.
    public init?(sqlText: String) {
        guard let date = EventTimestamp.parse(sqlText) else { return nil }
        self = date
    }
}

/// One result row in text format.
public struct SQLRow: Sendable {
    /// Column names, in result order.
    public let columns: [String]
    /// Column values as text (`nil` for SQL NULL).
    public let values: [String?]

    /// Creates a row.
    public init(columns: [String], values: [String?]) {
        self.columns = columns
        self.values = values
    }

    /// The raw text of `column`, or `nil` for NULL.
    public subscript(column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { return nil }
        return values[index]
    }

    /// Decodes a non-NULL column.
    ///
    /// - Throws: ``RisingWaveDecodingError`` naming the column and value on NULL, a missing column or bad text.
    public func decode<T: SQLDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let value = try decodeIfPresent(column, as: type) else {
            throw RisingWaveDecodingError(column: column, value: nil, expected: "\(T.self)", reason: "is NULL")
        }
        return value
    }

    /// Decodes a column that may be NULL.
    public func decodeIfPresent<T: SQLDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let index = columns.firstIndex(of: column) else {
            throw RisingWaveDecodingError(
                column: column,
                value: nil,
                expected: "\(T.self)",
                reason: "is not in the result (columns: \(columns.joined(separator: ", ")))"
            )
        }
        guard let text = values[index] else { return nil }
        guard let value = T(sqlText: text) else {
            throw RisingWaveDecodingError(
                column: column,
                value: text,
                expected: "\(T.self)",
                reason: "cannot be parsed"
            )
        }
        return value
    }
}

/// A result column that does not hold the expected type.
public struct RisingWaveDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The column.
    public var column: String
    /// The text received (`nil` for NULL or a missing column).
    public var value: String?
    /// The Swift type expected.
    public var expected: String
    /// What is wrong.
    public var reason: String
    /// The row's key (as text), when the row has one, so the bad row can be found.
    public var key: String?

    /// Creates an error.
    public init(column: String, value: String?, expected: String, reason: String, key: String? = nil) {
        self.column = column
        self.value = value
        self.expected = expected
        self.reason = reason
        self.key = key
    }

    public var description: String {
        let row = key.map { "row with key \($0): " } ?? ""
        return "\(row)column '\(column)'\(value.map { " value '\($0)'" } ?? "") \(reason); expected \(expected)"
    }
}
