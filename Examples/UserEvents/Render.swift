import DeltaKit
import Foundation

/// Tables, CSV and JSON for the reading commands.
enum Render {
    /// `text` with control characters (ANSI escapes, newlines, tabs, DEL, C1) shown as `\u{…}`, so a
    /// value can never move the cursor, recolor the terminal or break the table.
    static func terminalSafe(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The widest cell a table shows, in characters; a longer value is cut to this width, ending in `…`
    /// (CSV and JSON keep every value whole).
    static let maximumCellWidth = 64

    /// `text` for a table cell: ``terminalSafe(_:)``, cut to ``maximumCellWidth`` with a final `…`, so one long
    /// value cannot widen every row of its column.
    static func cell(_ text: String) -> String {
        let safe = terminalSafe(text)
        guard safe.count > maximumCellWidth else { return safe }
        return safe.prefix(maximumCellWidth - 1) + "…"
    }

    static func table(_ headers: [String], _ rows: [[String]], numeric: Set<Int> = []) -> String {
        let rows = rows.map { $0.map(cell) }
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return numeric.contains(i) ? pad + cell : cell + pad
            }.joined(separator: " | ")
        }
        var out = [line(headers), widths.map { String(repeating: "-", count: $0) }.joined(separator: "-+-")]
        out += rows.map(line)
        if rows.isEmpty { out.append("(no rows)") }
        return out.joined(separator: "\n")
    }

    static func snapshotTable(_ users: [DemoUser]) -> String {
        table(["id", "name", "age"], users.map { ["\($0.id)", $0.name, "\($0.age)"] }, numeric: [0, 2])
    }

    static func historyTable(_ events: [ChangeEvent<DemoUser>]) -> String {
        table(
            ["event_order", "op", "id", "name", "age", "ts"],
            events.map { e in
                [
                    "\(e.order)", e.operation.rawValue, "\(e.key)", e.record?.name ?? "NULL",
                    e.record.map { "\($0.age)" } ?? "NULL", EventTimestamp.format(e.timestamp),
                ]
            },
            numeric: [0, 2, 4]
        )
    }

    /// `id,name,age` lines sorted by id, NULL as an empty field, no header (RFC 4180 quoting).
    static func csv(_ users: [DemoUser]) -> [String] {
        users.sorted { $0.id < $1.id }.map { "\($0.id),\(csvField($0.name)),\($0.age)" }
    }

    /// `text` as a JSON string literal, quotes included.
    static func jsonString(_ text: String) -> String {
        String(decoding: (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }

    static func csvField(_ text: String?) -> String {
        guard let text else { return "" }
        if text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return text
    }

    static func json(_ users: [DemoUser]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(users), as: UTF8.self)
    }

    static func json(_ events: [ChangeEvent<DemoUser>]) throws -> String {
        "[" + (try events.map { String(decoding: try $0.jsonData(), as: UTF8.self) }).joined(separator: ",") + "]"
    }
}
