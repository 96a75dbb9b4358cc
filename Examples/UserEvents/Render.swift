import DeltaKit
import DeltaKitTesting
import Foundation

/// Tables, CSV and JSON for the reading commands.
enum Render {
    static func table(_ headers: [String], _ rows: [[String]], numeric: Set<Int> = []) -> String {
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
