import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// The history keeps one row per batch; whatever the batches' sizes and the orders' disorder, it returns exactly the
/// newest events by order (ties: the later applied), as a table of one row per event trimmed to the limit would.
@Suite("SQLiteStateStore: the history")
struct SQLiteHistoryTests {
    @Test(
        "after every batch the history is the newest events by order, ties to the later applied; its rows stay few",
        arguments: [1, 7, 40, 400]
    )
    func newestEvents(maxBatch: Int) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let limit = 50
        let store = try SQLiteStateStore<DemoUser>(
            configuration: .init(path: path, source: "user-events", historyLimit: limit)
        )
        var random = SeededRandomNumberGenerator(seed: UInt64(maxBatch))
        var applied: [ChangeEvent<DemoUser>] = []
        for _ in 0..<60 {
            // Orders out of order and often equal (a few values around a rising base): ties and overlapping batches.
            let base = Int64(applied.count / 3)
            let batch: [ChangeEvent<DemoUser>] = (0..<Int.random(in: 1...maxBatch, using: &random)).map { _ in
                let order = base + Int64.random(in: -20...20, using: &random)
                let id = Int.random(in: 1...30, using: &random)
                return .update(DemoUser(id: id, name: "U\(id)", age: Int(order & 0xFFFF)), order: order)
            }
            try await store.apply(contentsOf: batch)
            applied += batch
            let expected = applied.indices.sorted { (applied[$0].order, $0) > (applied[$1].order, $1) }
                .prefix(limit).map { applied[$0] }
            #expect(try await store.history(limit: limit) == expected)
            #expect(try await store.history(limit: 7) == Array(expected.prefix(7)))
            let rows = Int(try SQLiteStateStoreTests.sqlite3(path, "SELECT count(*) FROM deltakit_history;").dropLast())
            #expect(rows.map { $0 <= 65 } == true, "\(String(describing: rows)) history rows")
        }
    }
}
