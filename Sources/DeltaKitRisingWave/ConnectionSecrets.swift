import Foundation

/// Finds and hides passwords in connection strings and in messages that quote them. No libpq here, so the
/// redaction fuzz target (Fuzz/Redaction) builds without it.
///
/// Everything works on Unicode scalars, never on `Character`s: a combining mark would otherwise glue a separator
/// or a quote to its neighbour, and Foundation's `replacingOccurrences` trapped on Linux for some inputs (both
/// found by Fuzz/Redaction).
enum ConnectionSecrets {
    /// `text` with every password replaced by `***`, whatever its shape: a URL (also a mistyped one such as
    /// `postgres//user:SECRET@host` or `postgresql+psycopg://…`, and passwords containing `/`, `:` or `@`), a libpq
    /// `key=value` string, or a message that quotes either.
    static func redact(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var tokenStart = 0
        for index in 0...scalars.count {
            if index == scalars.count || isSeparator(scalars[index]) {
                out.append(contentsOf: redactToken(scalars[tokenStart..<index]))
                if index < scalars.count { out.append(scalars[index]) }
                tokenStart = index + 1
            }
        }
        // password=value and password='value with spaces' (libpq's key=value form, also inside messages).
        return String(out).replacing(keyValuePattern) { match in "\(match.output.1)***" }
    }

    /// The passwords in `url` (raw, percent-decoded, and the parts libpq may quote on their own when an
    /// unencoded `@`, `/` or `:` splits them), longest first.
    static func secrets(in url: String) -> [String] {
        let scalars = Array(url.unicodeScalars)
        var passwords: [String] = []
        var tokenStart = 0
        for index in 0...scalars.count where index == scalars.count || isSeparator(scalars[index]) {
            if let range = passwordRange(in: scalars[tokenStart..<index]) {
                passwords.append(String(String.UnicodeScalarView(scalars[range])))
            }
            tokenStart = index + 1
        }
        for match in url.matches(of: keyValueSecretPattern) {
            // The whole value up to the next space, and its parts between quotes (a stray quote inside).
            let value = String(match.output.1)
            passwords.append(value)
            passwords += value.unicodeScalars.split(separator: "'").map { String(String.UnicodeScalarView($0)) }
        }
        var found: [String] = []
        for raw in passwords {
            found.append(raw)
            if let decoded = raw.removingPercentEncoding { found.append(decoded) }
            let parts = raw.unicodeScalars.split(whereSeparator: { $0 == "@" || $0 == "/" || $0 == ":" })
            found += parts.filter { $0.count >= 3 }.map { String(String.UnicodeScalarView($0)) }
        }
        return Array(Set(found.filter { !$0.isEmpty })).sorted { $0.unicodeScalars.count > $1.unicodeScalars.count }
    }

    /// `message` redacted, and with each of `secrets` removed wherever it appears.
    static func scrub(_ message: String, secrets: [String]) -> String {
        var result = redact(message)
        for secret in secrets where !secret.isEmpty { result = replacing(secret, in: result) }
        return result
    }

    /// `text` with every occurrence of `secret` replaced by `***`, comparing Unicode scalars.
    static func replacing(_ secret: String, in text: String) -> String {
        let needle = Array(secret.unicodeScalars)
        let haystack = Array(text.unicodeScalars)
        guard !needle.isEmpty, haystack.count >= needle.count else { return text }
        var out = String.UnicodeScalarView()
        var index = 0
        while index < haystack.count {
            if index + needle.count <= haystack.count, haystack[index..<index + needle.count].elementsEqual(needle) {
                out.append(contentsOf: "***".unicodeScalars)
                index += needle.count
            } else {
                out.append(haystack[index])
                index += 1
            }
        }
        return String(out)
    }

    private static func isSeparator(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || scalar == "\"" || scalar == "'"
    }

    /// Where the password of a URL-ish token is, read conservatively: after a leading `postgres://` or
    /// `postgresql://`, everything between the first `:` and the token's last `@` (a user name cannot contain
    /// `:`; a password may contain `/`, `:` and `@`). With any other prefix — a mistyped or foreign scheme — the
    /// first `:` of the whole token starts it, so the scheme's text may be hidden too, but never the password.
    private static func passwordRange(in token: ArraySlice<Unicode.Scalar>) -> Range<Int>? {
        guard let at = token.lastIndex(of: "@") else { return nil }
        var start = token.startIndex
        let lowered = String(String.UnicodeScalarView(token)).lowercased()
        for scheme in ["postgres://", "postgresql://"] where lowered.hasPrefix(scheme) {
            start = token.startIndex + scheme.unicodeScalars.count
        }
        guard start <= at, let colon = token[start..<at].firstIndex(of: ":"), colon + 1 < at else { return nil }
        return (colon + 1)..<at
    }

    private static func redactToken(_ token: ArraySlice<Unicode.Scalar>) -> String.UnicodeScalarView {
        var out = String.UnicodeScalarView()
        guard let range = passwordRange(in: token) else {
            out.append(contentsOf: token)
            return out
        }
        out.append(contentsOf: token[token.startIndex..<range.lowerBound])
        out.append(contentsOf: "***".unicodeScalars)
        out.append(contentsOf: token[range.upperBound...])
        return out
    }

    nonisolated(unsafe) private static let keyValuePattern = try! Regex<(Substring, Substring)>(
        #"((?i:password)\s*=\s*)(?:'(?:[^'\\]|\\.)*'\S*|[^\s]+)"#
    ).matchingSemantics(.unicodeScalar)
    nonisolated(unsafe) private static let keyValueSecretPattern = try! Regex<(Substring, Substring)>(
        #"(?i:password)\s*=\s*(\S+)"#
    ).matchingSemantics(.unicodeScalar)
}
