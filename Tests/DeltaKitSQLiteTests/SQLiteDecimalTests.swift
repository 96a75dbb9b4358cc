import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

@Suite("SQLiteStateStore: decimals kept exactly")
struct SQLiteDecimalTests {
    @Test("a 30-significant-digit decimal round-trips exactly; a row whose stored event has it as a JSON number reads")
    func wideDecimal() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("decimals.sqlite")
        let wide = Decimal(string: "123456789012345.678901234567891")!
        let events: [ChangeEvent<ScalarSample>] = [
            .insert(ScalarSample(id: 1, amount: wide), order: 1),
            .insert(ScalarSample(id: 2, amount: -wide), order: 2),
        ]
        do {
            let store = try SQLiteStateStore<ScalarSample>(configuration: .init(path: path, source: "samples"))
            try await store.apply(contentsOf: events)
            #expect(try await store.value(forKey: 1)?.amount == wide)
        }
        // The column holds the exact text, as before decimals were written as strings.
        #expect(
            try SQLiteStateStoreTests.sqlite3(path, "SELECT typeof(amount), amount FROM scalar_samples ORDER BY id;")
                == "text|123456789012345.678901234567891\ntext|-123456789012345.678901234567891\n"
        )
        // A row written when decimals were JSON numbers.
        _ = try SQLiteStateStoreTests.sqlite3(
            path,
            #"UPDATE scalar_samples SET deltakit_event = CAST(replace(CAST(deltakit_event AS TEXT), '"amount":"-123456789012345.678901234567891"', '"amount":-123456789012345.678901234567891') AS BLOB) WHERE id = 2;"#
        )
        #expect(
            try SQLiteStateStoreTests.sqlite3(
                path,
                "SELECT instr(CAST(deltakit_event AS TEXT), '\"amount\":-1') > 0 FROM scalar_samples WHERE id = 2;"
            )
                == "1\n"
        )
        let store = try SQLiteStateStore<ScalarSample>(configuration: .init(path: path, source: "samples"))
        #expect(try await store.snapshot().map(\.amount) == [wide, -wide])
        #expect(try await store.history(limit: 5).map(\.record?.amount) == [-wide, wide])
    }
}
