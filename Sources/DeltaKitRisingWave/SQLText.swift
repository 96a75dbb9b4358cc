import DeltaKit
import Foundation

/// Quoting and validation of names and literals in generated SQL: nothing from configuration reaches SQL
/// unchecked.
enum SQLText {
    /// A relation name (source, table, view, subscription): lower-case letters, digits and `_`, starting with a
    /// letter or `_`, at most 63 bytes — so that the quoted name and the unquoted one users type are the same.
    static func validateRelationName(_ name: String, what: String) throws {
        let bytes = Array(name.utf8)
        let valid =
            !bytes.isEmpty && bytes.count <= 63
            && bytes.enumerated().allSatisfy { i, c in
                (c >= 0x61 && c <= 0x7A) || c == 0x5F || (i > 0 && c >= 0x30 && c <= 0x39)
            }
        guard valid else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "invalid \(what) name '\(name)': use 1–63 lower-case letters, digits and '_', starting with a letter or '_'"
            )
        }
    }

    /// `"name"` with embedded quotes doubled; refuses NUL.
    static func identifier(_ name: String) throws -> String {
        guard !name.isEmpty, !name.contains("\0") else {
            throw DeltaKitError(code: .invalidConfiguration, message: "invalid SQL identifier \(name.debugDescription)")
        }
        return "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `'text'` with embedded quotes doubled; refuses NUL and backslashes (no escape-string surprises).
    static func literal(_ text: String) throws -> String {
        guard !text.contains("\0"), !text.contains("\\") else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "invalid SQL string literal \(text.debugDescription)"
            )
        }
        return "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
