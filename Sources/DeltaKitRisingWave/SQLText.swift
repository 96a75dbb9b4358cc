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
            && bytes.enumerated().allSatisfy { index, byte in
                (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || (index > 0 && byte >= 0x30 && byte <= 0x39)
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
    /// not be doubled and would close the identifier early.
    static func identifier(_ name: String) throws -> String {
        guard !name.isEmpty, !name.unicodeScalars.contains("\0") else {
            throw DeltaKitError(code: .invalidConfiguration, message: "invalid SQL identifier \(name.debugDescription)")
        }
        return quoted(name, with: "\"")
    }

    /// Each of `names` quoted (``identifier(_:)``), joined by `, `: a column list.
    static func identifiers(_ names: [String]) throws -> String {
        try names.map(identifier).joined(separator: ", ")
    }

    /// `'text'` with embedded quotes doubled; refuses NUL and backslashes (no escape-string surprises).
    static func literal(_ text: String) throws -> String {
        guard isLiteral(text) else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "invalid SQL string literal \(text.debugDescription)"
            )
        }
        return quoted(text, with: "'")
    }

    /// ``literal(_:)`` for a value that may be a secret (a Kafka password): a refusal names `setting`, never the
    /// value.
    static func literal(_ text: String, secretValueOf setting: String) throws -> String {
        guard isLiteral(text) else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "the value of \(setting) cannot be written into SQL: it contains a backslash or NUL"
            )
        }
        return quoted(text, with: "'")
    }

    /// Whether `text` can be a plain string literal: no NUL, no backslash.
    private static func isLiteral(_ text: String) -> Bool {
        !text.unicodeScalars.contains("\0") && !text.unicodeScalars.contains("\\")
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
