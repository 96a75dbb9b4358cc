import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

/// The RisingWave change feed — the real `RisingWaveChangeFeed`, its SQL rewritten only for `DECLARE` and `FETCH` —
/// against RisingWave's subscription protocol emulated on PostgreSQL (``PostgresEmulation/subscribed(_:retention:cancellableFetch:)``):
/// coalescing checkpoints, sessions that drop, cursor errors in RisingWave's words, a `FETCH` that ignores cancel.
@Suite("RisingWave change feed on PostgreSQL (emulated subscription)", .requiresPostgres, .timeLimit(.minutes(5)))
struct RisingWaveOnPostgresChangeFeedTests {
    static let alice = DemoUser(id: 1, name: "Alice", age: 25)
    static let bob = DemoUser(id: 2, name: "Bob", age: 30)

    /// The next element within `limit`, or a recorded issue naming what came instead.
    func next(
        _ feed: FeedReader<ChangeFeedElement<DemoUser>>,
        within limit: Duration = .seconds(30),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> ChangeFeedElement<DemoUser>? {
        switch await feed.next(before: .now + limit) {
        case .element(let element): return element
        case .end: Issue.record("the feed ended", sourceLocation: sourceLocation)
        case .failure(let error): Issue.record("the feed threw \(error)", sourceLocation: sourceLocation)
        case .timedOut: Issue.record("no element within \(limit)", sourceLocation: sourceLocation)
        }
        return nil
    }

    /// The backend process of the feed's session (its application name), once it exists.
    func backend(_ emulation: PostgresEmulation, application: String) async throws -> Int {
        let rows = try await emulation.connection.query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            [application]
        )
        return try #require(try rows.first?.decode("pid", as: Int.self), "no session named \(application)")
    }

    /// Ends the session of process `pid` as a dropped connection would, and waits until it is gone (observed).
    func terminate(_ pid: Int, _ emulation: PostgresEmulation) async throws {
        _ = try await emulation.connection.query("SELECT pg_terminate_backend($1)", [pid])
        let clock = ContinuousClock()
        let start = clock.now
        while clock.now - start < .seconds(30) {
            let rows = try await emulation.connection.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1",
                [pid]
            )
            if try rows[0].decode("n", as: Int.self) == 0 { return }
        }
        Issue.record("backend \(pid) did not end")
    }

    @Test("the emulated RisingWave feed passes the change-feed contract (it coalesces, so not every-change)")
    func conformance() async throws {
        let url = try TestEnvironment.requirePostgres()
        let passed = try await ChangeFeedConformance(
            makeStore: { EmulatedRisingWaveStore(try await PostgresEmulation.subscribed(url)) },
            apply: { store, events in try await store.apply(events) }
        ).run()
        #expect(passed.count == 4)
        // The every-change mode fails it: the checkpoint keeps one net change per key.
        let strict = await #expect(throws: ConformanceFailure.self) {
            try await ChangeFeedConformance(
                makeStore: { EmulatedRisingWaveStore(try await PostgresEmulation.subscribed(url)) },
                apply: { store, events in try await store.apply(events) },
                everyChange: true,
                waitLimit: .seconds(10)
            ).run()
        }
        #expect(strict?.failures.contains { $0.hasPrefix("every change is delivered once") } == true)
    }

    @Test("ten updates of one key between two checkpoints arrive as one, the latest")
    func coalesces() async throws {
        var emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        try await emulation.load([.insert(Self.alice, order: 1)])
        let feed = FeedReader(try await emulation.changes(from: .now))
        defer { feed.stop() }
        let updates: [ChangeEvent<DemoUser>] = (1...10).map {
            .update(DemoUser(id: 1, name: "Alice", age: 25 + $0), order: 1 + Int64($0))
        }
        try await emulation.load(updates + [.insert(Self.bob, order: 20)])
        let first = await next(feed)
        let second = await next(feed)
        // One checkpoint's rows come ordered by key.
        #expect(first?.change == StateChange(kind: .update, key: 1, record: DemoUser(id: 1, name: "Alice", age: 35)))
        #expect(second?.change == StateChange(kind: .insert, key: 2, record: Self.bob))
    }

    @Test("a .now feed whose session drops before its first change row delivers the changes committed meanwhile")
    func nowSurvivesDropBeforeFirstRow() async throws {
        var emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        try await emulation.load([.insert(Self.alice, order: 1)])
        // Dropped right after the DECLARE, before any FETCH.
        let application = "feed-\(UUID().uuidString.prefix(8))"
        let changes = try await emulation.changes(from: .now, applicationName: application)
        try await terminate(try await backend(emulation, application: application), emulation)
        let older = DemoUser(id: 1, name: "Alice", age: 26)
        try await emulation.load([.update(older, order: 2), .insert(Self.bob, order: 3)])
        let feed = FeedReader(changes)
        defer { feed.stop() }
        let first = await next(feed)
        let second = await next(feed)
        #expect(first?.change == StateChange(kind: .update, key: 1, record: older))
        #expect(second?.change == StateChange(kind: .insert, key: 2, record: Self.bob))
    }

    @Test("a .now feed whose waiting FETCH is killed before any row delivers the changes committed meanwhile")
    func nowSurvivesDropDuringWait() async throws {
        var emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        try await emulation.load([.insert(Self.alice, order: 1)])
        let application = "feed-\(UUID().uuidString.prefix(8))"
        let feed = FeedReader(
            try await emulation.changes(from: .now, fetchTimeout: .seconds(5), applicationName: application)
        )
        defer { feed.stop() }
        // The first FETCH is waiting (observed), then its session goes.
        let clock = ContinuousClock()
        let start = clock.now
        var waiting = false
        while !waiting, clock.now - start < .seconds(30) {
            let rows = try await emulation.connection.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE '%rw_emul.fetch_cursor%'",
                [application]
            )
            waiting = try rows[0].decode("n", as: Int.self) == 1
        }
        #expect(waiting)
        try await terminate(try await backend(emulation, application: application), emulation)
        try await emulation.load([.insert(Self.bob, order: 2)])
        let element = await next(feed)
        #expect(element?.change == StateChange(kind: .insert, key: 2, record: Self.bob))
    }

    @Test("a session dropped in the middle of an epoch resumes after the last row received: no gap, no duplicate")
    func dropMidEpoch() async throws {
        var emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        let application = "feed-\(UUID().uuidString.prefix(8))"
        // Two rows per FETCH: the three-row epoch below is split across fetches.
        var feed = try await emulation.changes(from: .now, fetchCount: 2, applicationName: application)
            .makeAsyncIterator()
        func user(_ id: Int) -> ChangeEvent<DemoUser> {
            .insert(DemoUser(id: id, name: "U\(id)", age: id), order: Int64(id))
        }
        try await emulation.load((1...3).map(user))
        var keys: [Int] = []
        for _ in 0..<2 { keys.append(try #require(try await feed.next()).change.key) }
        try await terminate(try await backend(emulation, application: application), emulation)
        try await emulation.load((4...5).map(user))
        for _ in 0..<3 { keys.append(try #require(try await feed.next()).change.key) }
        #expect(keys == [1, 2, 3, 4, 5])
    }

    @Test(
        "a cursor RisingWave no longer has (its words) is declared again from the position: no gap, no duplicate",
        arguments: [
            "internal error: The cursor has exceeded its maximum lifetime, please recreate it (close then declare cursor).",
            "internal error: Cannot find cursor `deltakit_feed_0badc0de`",
            "internal error: Cursor is in invalid state. Please close and re-create the cursor.",
        ]
    )
    func cursorGone(message: String) async throws {
        var emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        let feed = FeedReader(try await emulation.changes(from: .now))
        defer { feed.stop() }
        try await emulation.load([.insert(Self.alice, order: 1)])
        #expect(await next(feed)?.change.key == 1)
        try await emulation.failNextFetch(message)
        try await emulation.load([.insert(Self.bob, order: 2)])
        let element = await next(feed)
        #expect(element?.change == StateChange(kind: .insert, key: 2, record: Self.bob))
        // Nothing repeated: the next change is the next one.
        try await emulation.load([.delete(key: 1, order: 3)])
        #expect(await next(feed)?.change == StateChange(kind: .delete, key: 1, record: Self.alice))
    }

    @Test("changes the subscription no longer retains end the feed with changesUnavailable, never skipped")
    func changesGone() async throws {
        let url = try TestEnvironment.requirePostgres()
        var emulation = try await PostgresEmulation.subscribed(url, retention: .seconds(3_600))
        // A position older than the retention: RisingWave refuses the DECLARE ("rw_timestamp is too small").
        let old = ChangeFeedPosition("\(Int64(Date().timeIntervalSince1970 * 1_000) - 7_200_000):1")
        let refused = await #expect(throws: DeltaKitError.self) { _ = try await emulation.changes(from: .after(old)) }
        #expect(refused?.code == .changesUnavailable)
        #expect((refused?.underlying as? DeltaKitError)?.message.contains("rw_timestamp is too small") == true)
        // A live feed whose next epoch was recycled under it ("No data found for rw_timestamp").
        let feed = FeedReader(try await emulation.changes(from: .now))
        defer { feed.stop() }
        try await emulation.load([.insert(Self.alice, order: 1)])
        #expect(await next(feed)?.change.key == 1)
        try await emulation.failNextFetch(
            "Catalog error:  No data found for rw_timestamp 1715669376304, data may have been recycled, please recreate cursor"
        )
        switch await feed.next(before: .now + .seconds(30)) {
        case .failure(let error): #expect((error as? DeltaKitError)?.code == .changesUnavailable, "\(error)")
        case let other: Issue.record("expected changesUnavailable, got \(other)")
        }
    }

    @Test("a position ahead of RisingWave's clock is retried briefly, then refused as not this feed's")
    func positionAhead() async throws {
        let emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        let ahead = ChangeFeedPosition("\(Int64(Date().timeIntervalSince1970 * 1_000) + 3_600_000):0")
        let error = await #expect(throws: DeltaKitError.self) { _ = try await emulation.changes(from: .after(ahead)) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("ahead of RisingWave's clock") == true)
    }

    @Test("cancelling a feed whose FETCH ignores the cancel request (v3.0.3) ends it within fetchTimeout")
    func cancellationBound() async throws {
        let emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        let application = "feed-\(UUID().uuidString.prefix(8))"
        let changes = try await emulation.changes(from: .now, fetchTimeout: .seconds(2), applicationName: application)
        let consumer = Task { for try await _ in changes {} }
        let clock = ContinuousClock()
        var waiting = false
        let start = clock.now
        while !waiting, clock.now - start < .seconds(30) {
            let rows = try await emulation.connection.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE '%rw_emul.fetch_cursor%'",
                [application]
            )
            waiting = try rows[0].decode("n", as: Int.self) == 1
        }
        #expect(waiting)
        let cancelled = clock.now
        consumer.cancel()
        await #expect(throws: CancellationError.self) { try await consumer.value }
        // The FETCH runs out its 2 s; a loaded machine may add some, never an unbounded wait.
        #expect(clock.now - cancelled < .seconds(20))
        // A longer fetchTimeout is refused: cancellation would wait that long.
        let refused = await #expect(throws: DeltaKitError.self) {
            _ = try await emulation.store.changes(
                from: .now,
                connection: emulation.connection.configuration,
                fetchTimeout: .seconds(61)
            )
        }
        #expect(refused?.code == .invalidConfiguration)
    }

    @Test("a snapshot start declares FULL: the committed state, then the changes after it")
    func snapshotStart() async throws {
        var emulation = try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        try await emulation.load([.insert(Self.alice, order: 1), .insert(Self.bob, order: 2)])
        let feed = FeedReader(try await emulation.changes(from: .snapshot))
        defer { feed.stop() }
        let snapshot = [await next(feed), await next(feed)]
        #expect(snapshot.map { $0?.isSnapshot } == [true, true])
        #expect(snapshot.map { $0?.change.record } == [Self.alice, Self.bob])
        try await emulation.load([.delete(key: 2, order: 3)])
        let delete = await next(feed)
        #expect(delete?.change == StateChange(kind: .delete, key: 2, record: Self.bob))
        #expect(delete?.position != nil)
    }
}
