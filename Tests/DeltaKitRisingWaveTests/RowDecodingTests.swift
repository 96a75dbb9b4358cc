import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

@Suite("RisingWave row decoding (no server)")
struct RowDecodingTests {
    @Test("text values decode into Swift types; a mismatch names the column and value")
    func decoding() throws {
        let row = SQLRow(
            columns: ["id", "name", "age", "ts", "flag", "score"],
            values: ["7", "Zoë 🚀", nil, "2024-05-01 12:30:45.123456+00", "t", "2.5"]
        )
        #expect(try row.decode("id", as: Int.self) == 7)
        #expect(try row.decode("name", as: String.self) == "Zoë 🚀")
        #expect(try row.decodeIfPresent("age", as: Int.self) == nil)
        #expect(try row.decode("ts", as: Date.self) == Date(timeIntervalSince1970: 1_714_566_645.123456))
        #expect(try row.decode("flag", as: Bool.self))
        #expect(try row.decode("score", as: Double.self) == 2.5)
        let error = #expect(throws: RisingWaveDecodingError.self) { try row.decode("name", as: Int.self) }
        #expect(error?.description == "column 'name' value 'Zoë 🚀' cannot be parsed; expected Int")
        #expect(throws: RisingWaveDecodingError.self) { try row.decode("age", as: Int.self) }
        let record = SQLRow(columns: ["id", "name", "age"], values: ["1", "Alice", "x"])
        let recordError = #expect(throws: RisingWaveDecodingError.self) {
            try DemoUser(from: SQLRowDecoder(row: record))
        }
        #expect(recordError?.column == "age" && recordError?.value == "x")
    }

    @Test("a bad row that still reaches a read names its key and its column")
    func badRowNamesKey() {
        let row = SQLRow(columns: ["id", "name", "age", "event_order", "ts"], values: ["7", "Al", "old", "3", nil])
        #expect {
            _ = try RisingWaveStateStore<DemoUser>.record(from: row)
        } throws: { error in
            guard let error = error as? RisingWaveDecodingError else { return false }
            return error.key == "7" && error.column == "age" && "\(error)".hasPrefix("row with key 7: column 'age'")
        }
    }

    @Test(
        "key text goes through the scalar table both ways: a Date-keyed delete row decodes, an escaped key is sent raw"
    )
    func keyText() throws {
        // A delete row's key is read from its column's text, not re-wrapped as JSON (JSONDecoder would read a Date
        // as a number), and a string-enum key is sent as its raw value, without JSON escapes.
        let row = SQLRow(
            columns: ["at", "value", "event_order", "ts", "op"],
            values: ["2024-05-01 12:30:45.123456+00", nil, "3", "2024-05-01 12:30:46+00", "delete"]
        )
        let event = try RisingWaveStateStore<Reading>.event(from: row)
        #expect(event.key == Date(timeIntervalSince1970: 1_714_566_645.123456))
        #expect(event.operation == .delete && event.order == 3)
        #expect(try RisingWaveStateStore<Regional>.keyText(.quoted) == "q\"u\\o\nte")
        #expect(try RisingWaveStateStore<Regional>.keyText(.plain) == "plain")
        #expect(try RisingWaveStateStore<DemoUser>.keyText(-7) == "-7")
        let deleteRow = SQLRow(
            columns: ["region", "event_order", "ts", "op"],
            values: ["q\"u\\o\nte", "1", "2024-05-01 12:30:46+00", "delete"]
        )
        #expect(try RisingWaveStateStore<Regional>.event(from: deleteRow).key == .quoted)
    }
}

/// A record keyed by a timestamp.
struct Reading: ChangeRecord {
    static let keyField = "at"
    var at: Date
    var value: Double?
    var key: Date { at }
}

/// A record keyed by a string enum whose raw value needs JSON escapes.
struct Regional: ChangeRecord {
    enum Region: String, Codable, CaseIterable, Comparable, Sendable {
        case plain, quoted = "q\"u\\o\nte"
        static func < (lhs: Region, rhs: Region) -> Bool { lhs.rawValue < rhs.rawValue }
    }
    static let keyField = "region"
    var region: Region
    var key: Region { region }
}
