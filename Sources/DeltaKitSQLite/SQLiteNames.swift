import DeltaKit
import Foundation

/// Names and DDL of a state file.
enum SQLiteNames {
    /// The file format this version writes and reads (`deltakit_meta.format_version`).
    static let formatVersion = "1"
    static let meta = "deltakit_meta"
    static let positions = "deltakit_positions"
    static let history = "deltakit_history"
    static let changes = "deltakit_changes"
    /// The last message applied per partition (`MessageFingerprint`), written with the positions.
    static let fingerprints = "deltakit_fingerprints"
    /// The state table's column holding the winning event's wire JSON (exact round trip, whatever the columns).
    static let eventColumn = "deltakit_event"

    /// Names a record field may not take: the state table's own columns.
    static let reservedColumns: Set<String> = [eventColumn]

    static func validateTable(_ name: String) throws {
        let valid =
            (1...63).contains(name.utf8.count)
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
            && !(name.utf8.first.map { $0 >= 0x30 && $0 <= 0x39 } ?? true)
            && !name.hasPrefix("sqlite_") && !name.hasPrefix("deltakit_")
        guard valid else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "SQLiteStateStore.tableName '\(name)' is not allowed; use 1–63 of a-z, 0-9 and _, not starting with a digit, 'sqlite_' or 'deltakit_'"
            )
        }
    }

    /// A quoted identifier (names are validated or come from a record's fields).
    static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The SQLite column type for a field type: what the `sqlite3` shell shows and sorts by. Decimals are
    /// kept as text, which SQLite would otherwise round to a double.
    static func columnType(_ type: RecordSchema.FieldType) -> String {
        switch type {
        case .bool, .int32, .int64: "INTEGER"
        case .float, .double: "REAL"
        default: "TEXT"
        }
    }
}
