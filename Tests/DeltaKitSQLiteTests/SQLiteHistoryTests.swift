import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// The history keeps one row per batch; whatever the batches' sizes, the orders' disorder and the limits the writer
/// is opened with, it returns what a table of one row per event trimmed to the limit after each batch returned.
@Suite("SQLiteStateStore: the history")
struct SQLiteHistoryTests {
    /// A table of one row per event: each batch's newest `limit` events appended, then the newest `limit` of all kept.
    struct OneRowPerEvent {
        var kept: [(event: ChangeEvent<DemoUser>, applied: Int)] = []
        var applied = 0

        static func newer(_ a: (order: Int64, applied: Int), _ b: (order: Int64, applied: Int)) -> Bool {
            (a.order, a.applied) > (b.order, b.applied)
        }

        mutating func apply(_ batch: [ChangeEvent<DemoUser>], limit: Int) {
            let newest = batch.indices.sorted { (batch[$0].order, $0) > (batch[$1].order, $1) }.prefix(limit).sorted()
            for index in newest {
                applied += 1
                kept.append((batch[index], applied))
            }
            kept = Array(
                kept.sorted { Self.newer(($0.event.order, $0.applied), ($1.event.order, $1.applied)) }.prefix(limit)
            )
        }

        func history(_ count: Int) -> [ChangeEvent<DemoUser>] {
            kept.sorted { Self.newer(($0.event.order, $0.applied), ($1.event.order, $1.applied)) }.prefix(count).map(
                \.event
            )
        }
    }

    static func batch(_ random: inout SeededRandomNumberGenerator, size: Int, base: Int64) -> [ChangeEvent<DemoUser>] {
        // Orders out of order and often equal (a few values around a rising base): ties and overlapping batches.
        (0..<size).map { _ in
            let order = base + Int64.random(in: -20...20, using: &random)
            let id = Int.random(in: 1...30, using: &random)
            return .update(DemoUser(id: id, name: "U\(id)", age: Int(order & 0xFFFF)), order: order)
        }
    }

    @Test(
        "after every batch the history is what a table of one row per event held; its rows stay few",
        arguments: [(1, 50), (7, 50), (40, 50), (400, 50), (3_000, 5_000)]
    )
    func newestEvents(maxBatch: Int, limit: Int) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let store = try SQLiteStateStore<DemoUser>(
            configuration: .init(path: path, source: "user-events", historyLimit: limit)
        )
        var random = SeededRandomNumberGenerator(seed: UInt64(maxBatch))
        var reference = OneRowPerEvent()
        var count = 0
        for _ in 0..<40 {
            let batch = Self.batch(&random, size: Int.random(in: 1...maxBatch, using: &random), base: Int64(count / 3))
            count += batch.count
            try await store.apply(contentsOf: batch)
            reference.apply(batch, limit: limit)
            #expect(try await store.history(limit: limit) == reference.history(limit))
            #expect(try await store.history(limit: 7) == reference.history(7))
            let rows = Int(try SQLiteStateStoreTests.sqlite3(path, "SELECT count(*) FROM deltakit_history;").dropLast())
            #expect(rows.map { $0 <= 66 } == true, "\(String(describing: rows)) history rows")
        }
    }

    @Test("a writer opened with a smaller, then a larger limit: the history is what one row per event held")
    func limitChanges() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        var random = SeededRandomNumberGenerator(seed: 5)
        var reference = OneRowPerEvent()
        var count = 0
        for limit in [50, 10, 100] {
            let store = try SQLiteStateStore<DemoUser>(
                configuration: .init(path: path, source: "user-events", historyLimit: limit)
            )
            // Before its first batch, as one row per event: what the previous writer kept, read under this limit.
            #expect(try await store.history(limit: limit) == reference.history(limit))
            let reader = try SQLiteStateStore<DemoUser>(
                configuration: .init(path: path, source: "user-events", historyLimit: 1_000, readOnly: true)
            )
            for _ in 0..<15 {
                let batch = Self.batch(&random, size: Int.random(in: 1...30, using: &random), base: Int64(count / 3))
                count += batch.count
                try await store.apply(contentsOf: batch)
                reference.apply(batch, limit: limit)
                #expect(try await store.history(limit: limit) == reference.history(limit))
                // A reader that allows more gets what the writer keeps, no more.
                #expect(try await reader.history(limit: 1_000) == reference.history(1_000))
            }
        }
    }
}
