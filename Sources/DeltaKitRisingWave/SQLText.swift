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
    ///
    /// Works on Unicode scalars, as the server reads the text: `String`'s own operations compare grapheme
    /// clusters, and a quote followed by a combining mark (`"\u{598}`) is one cluster that is not `"` — it would
    /// not be doubled and would close the identifier early (found by Fuzz/SQLQuoting).
    static func identifier(_ name: String) throws -> String {
        guard !name.isEmpty, !name.unicodeScalars.contains("\0") else {
            throw DeltaKitError(code: .invalidConfiguration, message: "invalid SQL identifier \(name.debugDescription)")
        }
        return quoted(name, with: "\"")
    }

    /// `'text'` with embedded quotes doubled; refuses NUL and backslashes (no escape-string surprises).
    static func literal(_ text: String) throws -> String {
        guard !text.unicodeScalars.contains("\0"), !text.unicodeScalars.contains("\\") else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "invalid SQL string literal \(text.debugDescription)"
            )
        }
        return quoted(text, with: "'")
    }

    /// `text` between `quote`s, each `quote` scalar inside doubled.
    private static func quoted(_ text: String, with quote: Unicode.Scalar) -> String {
        var out = String.UnicodeScalarView()
        out.append(quote)
        for scalar in text.unicodeScalars {
            out.append(scalar)
            if scalar == quote { out.append(quote) }
        }
        out.append(quote)
        return String(out)
    }
}
