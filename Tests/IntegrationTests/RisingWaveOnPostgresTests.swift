import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

@Suite("RisingWave state store on real PostgreSQL", .requiresPostgres, .timeLimit(.minutes(5)))
struct RisingWaveOnPostgresTests {
    @Test("seeded random streams — shuffled, duplicated, with deletes — snapshot equals the in-memory reference")
    func seededStreams() async throws {
        let url = try TestEnvironment.requirePostgres()
        for seed: UInt64 in [1, 2, 3, 4, 5] {
            var emulation = try await PostgresEmulation.make(url)
            var generator = DemoEventGenerator(seed: seed, users: 200)
            let events = generator.next(3_000)
            var random = SeededRandomNumberGenerator(seed: seed)
            let arrival = (events + events.prefix(500) + events.suffix(300)).shuffled(using: &random)
            try await emulation.load(arrival)
            let store = emulation.store
            var reference = LatestState<DemoUser>()
            for e in events { reference.apply(e) }
            #expect(try await store.snapshot() == reference.snapshot(), "seed \(seed)")
            #expect(try await store.count() == reference.liveCount)
            #expect(try await store.maxIngestedOrder() == events.map(\.order).max())
            let history = try await store.history(limit: 20)
            #expect(history.map(\.order) == Array(arrival.map(\.order).sorted(by: >).prefix(20)))
            // Paged reads (the limit inlined, the key a parameter) give the same records in the same order.
            var pages: [DemoUser] = []
            var after: Int?
            while case let page = try await store.snapshot(after: after, limit: 17), !page.isEmpty {
                pages += page
                after = page.last?.id
            }
            #expect(pages == reference.snapshot(), "paged, seed \(seed)")
        }
    }

    @Test("RisingWaveStateStore passes the StateStore conformance suite")
    func conformance() async throws {
        let url = try TestEnvironment.requirePostgres()
        try await StateStoreConformance(
            load: { events in
                var emulation = try await PostgresEmulation.make(url)
                try await emulation.load(events)
                return emulation.store
            },
            loadWire: { messages in
                var emulation = try await PostgresEmulation.make(url)
                try await emulation.loadWire(messages)
                return emulation.store
            }
        ).run()
    }

    @Test("value(forKey:) and history decode records, deletes and unicode")
    func reads() async throws {
        let url = try TestEnvironment.requirePostgres()
        var emulation = try await PostgresEmulation.make(url)
        let zoe = DemoUser(id: 5, name: "Zoë 🚀 'quoted' \"double\"", age: 31)
        let at = Date(timeIntervalSince1970: 1_704_067_200.123456)
        let events: [ChangeEvent<DemoUser>] = [
            .insert(zoe, order: 1, timestamp: at),
            .insert(DemoUser(id: 6, name: "Bob", age: 30), order: 2, timestamp: at),
            .delete(key: 6, order: 3, timestamp: at),
        ]
        try await emulation.load(events)
        let store = emulation.store
        #expect(try await store.value(forKey: 5) == zoe)
        #expect(try await store.value(forKey: 6) == nil)
        // Every field of every event, the timestamp included, reads back as it was sent.
        #expect(try await store.history(limit: 20) == events.reversed())
        #expect(try await store.history(limit: 1) == [events[2]])
        #expect(try await store.history(limit: 0).isEmpty)
        await #expect(throws: DeltaKitError.self) { try await store.history(limit: -1) }
    }

    @Test("history: equal orders list the later Kafka offset first, compared as numbers (offset 10 after 9)")
    func historyTie() async throws {
        let url = try TestEnvironment.requirePostgres()
        var emulation = try await PostgresEmulation.make(url)
        let at = Date(timeIntervalSince1970: 1_704_067_200)
        // Key 5 goes to one partition: offsets 0…8 for orders 1…9, then two upserts at order 50: offsets 9 and 10.
        var events: [ChangeEvent<DemoUser>] = (1...9).map {
            .update(DemoUser(id: 5, name: "E", age: $0), order: Int64($0), timestamp: at)
        }
        let nine = ChangeEvent.update(DemoUser(id: 5, name: "E", age: 90), order: 50, timestamp: at)
        let ten = ChangeEvent.update(DemoUser(id: 5, name: "E", age: 10), order: 50, timestamp: at)
        events += [nine, ten]
        try await emulation.load(events)
        // As text, '9' > '10' would put offset 9 first.
        #expect(try await emulation.store.history(limit: 2) == [ten, nine])
    }

    @Test("history is served from a bounded view of the newest valid events")
    func historyBounded() async throws {
        let url = try TestEnvironment.requirePostgres()
        let suffix = UUID().uuidString.prefix(8).lowercased()
        var emulation = try await PostgresEmulation.make(
            url,
            configuration: .init(topic: "t", sourceName: "ev_\(suffix)", viewName: "st_\(suffix)", historySize: 5)
        )
        var generator = DemoEventGenerator(seed: 9, users: 4)
        let events = generator.next(40)
        try await emulation.load(events)
        try await emulation.connection.execute(
            "INSERT INTO \"ev_\(suffix)\" VALUES (1, 'Mallory', 1, 'upsert', 999, now(), '0', '99')"
        )
        let history = try await emulation.store.history(limit: 100)
        #expect(history == Array(events.sorted { $0.order > $1.order }.prefix(5)))
    }

    @Test("an event with NULL in a non-optional column reaches neither the state nor the history")
    func nullColumn() async throws {
        let url = try TestEnvironment.requirePostgres()
        var emulation = try await PostgresEmulation.make(url)
        let alice = ChangeEvent.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1)
        let bob = ChangeEvent.insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2)
        try await emulation.load([alice, bob])
        let table = emulation.pipeline.sourceName
        // What RisingWave makes of {"id":1,"name":"Mallory","age":"old",…}: an unconvertible value becomes NULL.
        try await emulation.connection.execute(
            "INSERT INTO \"\(table)\" VALUES (1, 'Mallory', NULL, 'update', 3, now(), '1', '9')"
        )
        #expect(try await emulation.store.snapshot() == [alice.record!, bob.record!])
        #expect(try await emulation.store.history(limit: 5) == [bob, alice])
        // The seed's query on the source still shows the raw row (and still runs).
        let raw = try await emulation.connection.query("SELECT * FROM \"\(table)\" ORDER BY event_order DESC LIMIT 20")
        #expect(raw.count == 3)
    }

    @Test("a 100,000-row snapshot is streamed and correct")
    func largeSnapshot() async throws {
        let url = try TestEnvironment.requirePostgres()
        let emulation = try await PostgresEmulation.make(url)
        let table = emulation.pipeline.sourceName
        try await emulation.connection.execute(
            """
            INSERT INTO "\(table)"
            SELECT g, 'user ' || g, 20 + g % 50, 'insert', g, now(), '0', g::text,
              jsonb_build_object('id', g, 'name', 'user ' || g, 'age', 20 + g % 50, 'op', 'insert', 'event_order', g,
                'ts', '2024-01-01T00:00:00.000000+00:00')
            FROM generate_series(1, 100000) AS g
            """
        )
        var count = 0
        var last = 0
        for try await user in emulation.store.snapshotRecords() {
            count += 1
            #expect(user.id == last + 1)
            last = user.id
            if user.id == 99_999 { #expect(user == DemoUser(id: 99_999, name: "user 99999", age: 20 + 99_999 % 50)) }
        }
        #expect(count == 100_000)
        #expect(try await emulation.store.count() == 100_000)
    }

    @Test("an abandoned stream does not wedge the connection")
    func abandonedStream() async throws {
        let url = try TestEnvironment.requirePostgres()
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        var seen = 0
        for try await _ in connection.rows("SELECT g FROM generate_series(1, 50000) AS g") {
            seen += 1
            if seen == 10 { break }
        }
        let rows = try await connection.query("SELECT 42 AS answer")
        #expect(try rows[0].decode("answer", as: Int.self) == 42)
    }

    @Test("read-your-writes: waitUntilVisible waits for every partition in the receipt, not just the highest order")
    func freshness() async throws {
        let url = try TestEnvironment.requirePostgres()
        var emulation = try await PostgresEmulation.make(url)
        // Key 4 lands on partition 0 with the highest order; key 1 on partition 1 is not ingested yet.
        let receipt = try await emulation.load([.insert(DemoUser(id: 4, name: "D", age: 4), order: 100)])
        #expect(receipt == EventReceipt(partition: 0, offset: 0))
        let store = emulation.store
        let both = receipt.merging(EventReceipt(partition: 1, offset: 0))
        #expect(try await store.maxIngestedOrder() == 100)
        let writer = try await RisingWaveConnection(configuration: .init(url: url))
        let table = emulation.pipeline.sourceName
        let late = Task {
            try await Task.sleep(for: .milliseconds(300))
            try await writer.execute(
                """
                INSERT INTO "\(table)" VALUES (1, 'A', 1, 'insert', 5, now(), '1', '0',
                  '{"id":1,"name":"A","age":1,"op":"insert","event_order":5,"ts":"2024-01-01T00:00:00.000000+00:00"}')
                """
            )
        }
        try await store.waitUntilVisible(both, timeout: .seconds(10), pollInterval: .milliseconds(20))
        // Returning means the partition-1 event is visible: the highest order alone would have returned at once.
        #expect(try await store.value(forKey: 1) == DemoUser(id: 1, name: "A", age: 1))
        try await late.value
        let error = await #expect(throws: DeltaKitError.self) {
            try await store.waitUntilVisible(
                EventReceipt(offsets: [1: 0, 2: 7]),
                timeout: .milliseconds(300),
                pollInterval: .milliseconds(50)
            )
        }
        #expect(error?.code == .timedOut)
        #expect(error?.message.contains("partition 2 at nothing, needs 7") == true)
    }

    @Test("connection refused, wrong password and bad SQL give clear errors without credentials")
    func errors() async throws {
        let url = try TestEnvironment.requirePostgres()
        let refused = await #expect(throws: DeltaKitError.self) {
            _ = try await RisingWaveConnection(
                configuration: .init(url: "postgres://root:hunter2@127.0.0.1:1/dev", connectTimeout: .seconds(2))
            )
        }
        #expect(refused?.code == .connectionFailed)
        #expect(refused?.message.contains("127.0.0.1:1") == true)
        #expect(refused?.message.contains("hunter2") == false)
        #expect("\(String(describing: refused))".contains("hunter2") == false)

        let wrong = url.replacingOccurrences(of: "deltakit:deltakit@", with: "deltakit:wrong-secret@")
        let denied = await #expect(throws: DeltaKitError.self) {
            _ = try await RisingWaveConnection(configuration: .init(url: wrong))
        }
        #expect(denied?.code == .connectionFailed)
        #expect(denied?.message.contains("password authentication failed") == true)
        #expect("\(String(describing: denied))".contains("wrong-secret") == false)

        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        let syntax = await #expect(throws: DeltaKitError.self) { try await connection.execute("SELEC 1") }
        #expect((syntax?.underlying as? RisingWaveError)?.sqlState == "42601")
        #expect((syntax?.underlying as? RisingWaveError)?.statement == "SELEC 1")
        let missing = await #expect(throws: DeltaKitError.self) {
            _ = try await connection.query("SELECT * FROM no_such_table")
        }
        #expect((missing?.underlying as? RisingWaveError)?.sqlState == "42P01")
        #expect(missing?.code == .queryFailed)
        // The connection still works after errors.
        #expect(try await connection.query("SELECT NULL::int AS n, 'ü'::text AS u")[0].values == [nil, "ü"])
    }

    @Test("a broken connection is re-established before the next query")
    func reconnects() async throws {
        let url = try TestEnvironment.requirePostgres()
        let connection = try await RisingWaveConnection(
            configuration: .init(url: url, reconnectBackoff: .milliseconds(50))
        )
        let pid = try await connection.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", as: Int.self)
        let admin = try await RisingWaveConnection(configuration: .init(url: url))
        _ = try await admin.query("SELECT pg_terminate_backend($1)", [pid])
        // The first call after the server dropped us may fail (the break is noticed mid-query) …
        _ = try? await connection.query("SELECT 1 AS one")
        // … and the connection is back for the next one.
        let rows = try await connection.query("SELECT pg_backend_pid() AS pid")
        #expect(try rows[0].decode("pid", as: Int.self) != pid)
    }

    @Test("server notices go to swift-log")
    func notices() async throws {
        let url = try TestEnvironment.requirePostgres()
        let (logger, logs) = CapturingLogHandler.logger("notices")
        let connection = try await RisingWaveConnection(configuration: .init(url: url), logger: logger)
        try await connection.execute("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$")
        #expect(logs.messages.contains { $0.contains("hello from the server") })
    }

    @Test("ties: on equal orders a delete wins in the view as in LatestStateMerge, whatever the arrival order")
    func deleteWinsTies() async throws {
        let url = try TestEnvironment.requirePostgres()
        let upsert = ChangeEvent.update(DemoUser(id: 1, name: "Alice", age: 30), order: 5)
        let delete = ChangeEvent<DemoUser>.delete(key: 1, order: 5)
        for arrival in [[upsert, delete], [delete, upsert]] {
            var emulation = try await PostgresEmulation.make(url)
            try await emulation.load(arrival)
            var reference = LatestState<DemoUser>()
            for e in arrival { reference.apply(e) }
            #expect(reference.value(forKey: 1) == nil)
            #expect(try await emulation.store.value(forKey: 1) == nil)
        }
    }
}

@Suite("RisingWave connection: structured concurrency on real PostgreSQL", .requiresPostgres, .timeLimit(.minutes(2)))
struct ConnectionConcurrencyTests {
    @Test("libpq runs on the connection's own thread, never on the cooperative pool")
    func dedicatedThread() async throws {
        let connection = try await RisingWaveConnection(
            configuration: .init(url: try TestEnvironment.requirePostgres())
        )
        #expect(await connection.runsOnDedicatedThread())
        _ = try await connection.query("SELECT 1 AS one")
        #expect(await connection.runsOnDedicatedThread())
        // The name, too, where the platform reports it (informational: Foundation on Linux may not).
        let name = await connection.executorThreadName()
        if name != "deltakit-libpq" {
            print("note: the executor thread reports its name as \(String(describing: name))")
        }
    }

    @Test("cancelling the caller cancels the statement on the server; the connection stays usable")
    func cancellation() async throws {
        let url = try TestEnvironment.requirePostgres()
        let connection = try await RisingWaveConnection(configuration: .init(url: url, applicationName: "cancel-test"))
        let observer = try await RisingWaveConnection(configuration: .init(url: url))
        let clock = ContinuousClock()
        let start = clock.now
        let sleeper = Task { try await connection.query("SELECT pg_sleep(60)") }
        // Wait until the server really runs the statement (observed, not assumed).
        var running = false
        while !running, clock.now - start < .seconds(30) {
            let rows = try await observer.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'cancel-test' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'"
            )
            running = try rows[0].decode("n", as: Int.self) == 1
        }
        #expect(running)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { _ = try await sleeper.value }
        #expect(clock.now - start < .seconds(50), "the statement ran to its end instead of being cancelled")
        let rows = try await connection.query("SELECT 2 AS two")
        #expect(try rows[0].decode("two", as: Int.self) == 2)
    }

    @Test("a streamed result interrupted by another statement ends with `closed`, and the other statement runs")
    func interruptedStream() async throws {
        let connection = try await RisingWaveConnection(
            configuration: .init(url: try TestEnvironment.requirePostgres())
        )
        var rows = connection.rows("SELECT generate_series(1, 5000) AS n").makeAsyncIterator()
        let first = try await rows.next()
        #expect(first?["n"] == "1")
        let other = try await connection.query("SELECT 7 AS seven")
        #expect(other[0]["seven"] == "7")
        await #expect {
            while try await rows.next() != nil {}
        } throws: { error in
            (error as? DeltaKitError)?.code == .closed
        }
    }

    @Test("a closed connection refuses further statements with `closed`")
    func closed() async throws {
        let connection = try await RisingWaveConnection(
            configuration: .init(url: try TestEnvironment.requirePostgres())
        )
        await connection.close()
        await #expect {
            try await connection.execute("SELECT 1")
        } throws: { error in
            (error as? DeltaKitError)?.code == .closed
        }
    }
}
