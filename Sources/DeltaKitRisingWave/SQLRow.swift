import DeltaKit
import Foundation

/// A value sent as a text-format statement parameter (`$1`, `$2`, …). Internal: DeltaKit is not a
/// PostgreSQL driver; its own statements pass keys and test rows through this.
protocol SQLEncodable: Sendable {
    /// The value's PostgreSQL text representation.
    var sqlText: String { get }
}

extension String: SQLEncodable { var sqlText: String { self } }
extension Int: SQLEncodable { var sqlText: String { String(self) } }
extension Int64: SQLEncodable { var sqlText: String { String(self) } }
extension Int32: SQLEncodable { var sqlText: String { String(self) } }
extension Double: SQLEncodable { var sqlText: String { String(self) } }
extension Bool: SQLEncodable { var sqlText: String { self ? "t" : "f" } }
extension Date: SQLEncodable {
    /// ISO-8601 with microseconds and `+00:00`.
    var sqlText: String { EventTimestamp.format(self) }
}

/// One result row in text format. Package API: the outbox (DeltaKitOutbox) reads PostgreSQL through it.
package struct SQLRow: Sendable {
    /// Column names, in result order.
    package let columns: [String]
    /// Column values as text (`nil` for SQL NULL).
    package let values: [String?]

    /// Creates a row.
    init(columns: [String], values: [String?]) {
        self.columns = columns
        self.values = values
    }

    /// The raw text of `column`, or `nil` for NULL.
    package subscript(column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { return nil }
        return values[index]
    }

    /// Decodes a non-NULL column.
    ///
    /// - Throws: ``RisingWaveDecodingError`` naming the column and value on NULL, a missing column or bad text.
    func decode<T>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let value = try decodeIfPresent(column, as: type) else {
            throw RisingWaveDecodingError(column: column, value: nil, expected: "\(T.self)", reason: "is NULL")
        }
        return value
    }

    /// Decodes a column that may be NULL.
    func decodeIfPresent<T>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let index = columns.firstIndex(of: column) else {
            throw RisingWaveDecodingError(
                column: column,
                value: nil,
                expected: "\(T.self)",
                reason: "is not in the result (columns: \(columns.joined(separator: ", ")))"
            )
        }
        guard let text = values[index] else { return nil }
        guard let value = ScalarType.of(T.self)?.parseText(text) as? T else {
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
