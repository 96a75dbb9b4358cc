import Foundation

/// RisingWave's restrictions on the SQL a client sends (risingwave.md §4, §5 and its pitfalls), as a check
/// over text. DeltaKit's tests run it over every statement the package can send, so that the PostgreSQL
/// stand-in — which accepts all of these — cannot hide such a bug.
enum RisingWaveSQLRules {
    /// The rules `sql` breaks, one line each; empty when it is fine. `extended`: sent through the extended
    /// protocol (`PQexecParams`), where one statement per call is allowed.
    static func violations(_ sql: String, extended: Bool) -> [String] {
        var problems: [String] = []
        let code = stripQuoted(sql)
        let upper = code.uppercased()
        let words = upper.split(whereSeparator: { $0.isWhitespace || $0 == "(" || $0 == ")" || $0 == "," })
            .map(String.init)
        for (index, word) in words.enumerated() where word == "LIMIT" || word == "OFFSET" {
            if index + 1 < words.count, words[index + 1].hasPrefix("$") {
                problems.append("\(word) takes a parameter; RisingWave's binder needs a constant (inline it)")
            }
        }
        let statements = code.split(separator: ";").filter { !$0.allSatisfy(\.isWhitespace) }
        if extended, statements.count > 1 {
            problems.append("\(statements.count) statements in one extended-protocol call; RisingWave allows one")
        }
        for statement in statements {
            let s = statement.uppercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
            if s.hasPrefix("BEGIN"), !s.contains("READ ONLY") {
                problems.append("plain BEGIN starts no transaction on RisingWave")
            }
            if s.hasPrefix("PREPARE ") || s.hasPrefix("EXECUTE ") || s.hasPrefix("DEALLOCATE ") {
                problems.append("SQL-level PREPARE/EXECUTE are no-ops on RisingWave; use the protocol")
            }
            if s.hasPrefix("DECLARE "), s.contains(" SUBSCRIPTION CURSOR "), !s.hasSuffix(" FULL"),
                !s.contains(" SINCE ")
            {
                problems.append("a subscription cursor without FULL or SINCE skips the changes of the open epoch")
            }
            if s.hasPrefix("FETCH "), s.contains("TIMEOUT"), !sql.uppercased().contains(fetchTimeoutInWholeSeconds: ())
            {
                problems.append("a FETCH timeout must be whole seconds ('5s'); RisingWave truncates '500ms' to 0")
            }
            if s.hasPrefix("CREATE SOURCE") || s.hasPrefix("CREATE TABLE") {
                let tokens = s.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "(" || $0 == ")" })
                let bare = tokens.indices.contains { i in
                    tokens[i] == "TIMESTAMP"
                        && !(i + 2 < tokens.count && tokens[i + 1] == "WITH" && tokens[i + 2] == "TIME")
                }
                if bare {
                    problems.append("a TIMESTAMP column drops the offset (and NULLs a trailing Z); use TIMESTAMPTZ")
                }
            }
            if s.hasPrefix("CREATE "), !s.hasPrefix("CREATE OR "), !s.contains(" IF NOT EXISTS ") {
                problems.append("CREATE without IF NOT EXISTS is not idempotent")
            }
            if s.hasPrefix("DROP "), !s.contains(" IF EXISTS ") {
                problems.append("DROP without IF EXISTS is not idempotent")
            }
            if s.hasPrefix("CREATE MATERIALIZED VIEW"), s.contains("ROW_NUMBER()") {
                let outer = s.components(separatedBy: " FROM ").first ?? s
                if outer.range(of: #"\bRN\b"#, options: .regularExpression) != nil || outer.contains("SELECT *") {
                    problems.append("a Top-N view must not output rn (it adds an OverWindow)")
                }
            }
        }
        return problems
    }

    /// `sql` with the contents of '…' and "…" blanked out, so that a `;` or keyword inside a literal or an
    /// identifier does not count.
    static func stripQuoted(_ sql: String) -> String {
        var out = ""
        var quote: Character?
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                out.append(character == open ? character : "_")
            } else {
                if character == "'" || character == "\"" { quote = character }
                out.append(character)
            }
        }
        return out
    }
}

extension String {
    /// `true` when a `timeout = '…'` option names whole seconds (`'5s'`).
    fileprivate func contains(fetchTimeoutInWholeSeconds: Void) -> Bool {
        range(of: #"TIMEOUT = '\d+S'"#, options: .regularExpression) != nil
    }
}
