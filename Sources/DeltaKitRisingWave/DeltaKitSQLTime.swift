import DeltaKit
import Foundation

/// Timestamp text for SQL: shares the core's ISO-8601 parser and formatter.
enum DeltaKitSQLTime {
    static func format(_ date: Date) -> String { EventTimestamp.format(date) }
    static func parse(_ text: String) -> Date? { EventTimestamp.parse(text) }
}
