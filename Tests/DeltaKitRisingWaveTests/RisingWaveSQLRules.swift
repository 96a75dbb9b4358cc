import Foundation

/// RisingWave's restrictions on the SQL a client sends (risingwave.md §4, §5 and its pitfalls), as a check
/// over text. ``SQLRulesTests`` run it over every statement the package can send, so that the PostgreSQL
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
            let normalized = statement.uppercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
            if normalized.hasPrefix("BEGIN"), !normalized.contains("READ ONLY") {
                problems.append("plain BEGIN starts no transaction on RisingWave")
            }
            if normalized.hasPrefix("PREPARE ") || normalized.hasPrefix("EXECUTE ")
                || normalized.hasPrefix("DEALLOCATE ")
            {
                problems.append("SQL-level PREPARE/EXECUTE are no-ops on RisingWave; use the protocol")
            }
            if normalized.hasPrefix("DECLARE "), normalized.contains(" SUBSCRIPTION CURSOR "),
                !normalized.hasSuffix(" FULL"),
                !normalized.contains(" SINCE ")
            {
                problems.append("a subscription cursor without FULL or SINCE skips the changes of the open epoch")
            }
            if normalized.hasPrefix("FETCH "), normalized.contains("TIMEOUT"),
                !sql.uppercased().contains(fetchTimeoutInWholeSeconds: ())
            {
                problems.append("a FETCH timeout must be whole seconds ('5s'); RisingWave truncates '500ms' to 0")
            }
            if normalized.hasPrefix("CREATE SOURCE") || normalized.hasPrefix("CREATE TABLE") {
                let tokens = normalized.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "(" || $0 == ")" })
                let bare = tokens.indices.contains { index in
                    tokens[index] == "TIMESTAMP"
                        && !(index + 2 < tokens.count && tokens[index + 1] == "WITH" && tokens[index + 2] == "TIME")
                }
                if bare {
                    problems.append("a TIMESTAMP column drops the offset (and NULLs a trailing Z); use TIMESTAMPTZ")
                }
            }
            if normalized.hasPrefix("CREATE "), !normalized.hasPrefix("CREATE OR "),
                !normalized.contains(" IF NOT EXISTS ")
            {
                problems.append("CREATE without IF NOT EXISTS is not idempotent")
            }
            if normalized.hasPrefix("DROP "), !normalized.contains(" IF EXISTS ") {
                problems.append("DROP without IF EXISTS is not idempotent")
            }
            if normalized.hasPrefix("CREATE MATERIALIZED VIEW"), normalized.contains("ROW_NUMBER()") {
                let outer = normalized.components(separatedBy: " FROM ").first ?? normalized
                if outer.range(of: #"\bRN\b"#, options: .regularExpression) != nil || outer.contains("SELECT *") {
                    problems.append("a Top-N view must not output rn (it adds an OverWindow)")
                }
            }
        }
        return problems
    }

    /// The rules that need the producer's side too: `createSource` is a `FORMAT PLAIN ENCODE JSON` source's DDL,
    /// `views` the views over it, `sample` one event as DeltaKit's producer writes it (risingwave.md, "Second
    /// review": JSON numbers go through f64, default JSON access is lax).
    ///
    /// - A DECIMAL column must arrive as a JSON string: RisingWave reads a JSON number through a 64-bit float and
    ///   rounds past ~15 significant digits, where it parses a string into DECIMAL exactly.
    /// - The source must keep the message (`INCLUDE payload AS kafka_payload`), and each view must check every
    ///   column's JSON type there (`jsonb_typeof(kafka_payload -> 'column')`), a DECIMAL's string against JSON's
    ///   number grammar: RisingWave's parser reads numeric strings into numbers, numbers and booleans into text,
    ///   integers into timestamps and names case-insensitively, so the columns alone admit events the core refuses.
    static func jsonSourceViolations(createSource: String, views: [String], sample: [UInt8]) -> [String] {
        var problems: [String] = []
        let columns = declaredColumns(createSource)
        let event = (try? JSONSerialization.jsonObject(with: Data(sample))) as? [String: Any] ?? [:]
        for (name, type) in columns where type == "DECIMAL" || type.hasPrefix("NUMERIC") {
            if let value = event[name], !(value is String), !(value is NSNull) {
                problems.append(
                    "the DECIMAL column \"\(name)\" is read from a JSON number (\(value)): RisingWave parses it through f64; write it as a string"
                )
            }
        }
        if !createSource.contains("INCLUDE payload AS kafka_payload") {
            problems.append("the source does not keep the message (INCLUDE payload AS kafka_payload)")
        }
        for view in views {
            for (name, type) in columns {
                let key = "'" + name.replacingOccurrences(of: "'", with: "''") + "'"
                if !view.contains("jsonb_typeof(kafka_payload -> \(key))") {
                    problems.append("a view reads \"\(name)\" without checking its JSON type in the payload")
                }
                if type == "DECIMAL", !view.contains("kafka_payload ->> \(key) ~ '") {
                    problems.append("a view reads the DECIMAL \"\(name)\" from a string without checking its grammar")
                }
            }
        }
        return problems
    }

    /// `(name, type)` of each column a `CREATE SOURCE` declares, one per line as DeltaKit writes them.
    static func declaredColumns(_ createSource: String) -> [(name: String, type: String)] {
        guard let open = createSource.firstIndex(of: "("), let close = createSource.range(of: "\n)")?.lowerBound
        else { return [] }
        return createSource[createSource.index(after: open)..<close].split(separator: "\n").compactMap { line in
            let text = line.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ","))
            guard text.hasPrefix("\""), let end = text.dropFirst().firstIndex(of: "\"") else { return nil }
            let name = String(text[text.index(after: text.startIndex)..<end])
            return (name, text[text.index(after: end)...].trimmingCharacters(in: .whitespaces))
        }
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
