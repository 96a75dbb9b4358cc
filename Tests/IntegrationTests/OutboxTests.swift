import DeltaKit
import DeltaKitOutbox
import DeltaKitRisingWave
import DeltaKitTesting
import Foundation
import InMemoryTracing
import MetricsTestKit
import Synchronization
import Testing
import Tracing

/// The outbox's guarantees, each proven on the real PostgreSQL of `scripts/test` (see Documentation/outbox.md).
@Suite("Transactional outbox on real PostgreSQL", .requiresPostgres, .timeLimit(.minutes(5)))
struct OutboxTests {
    static let topic = "users"

    /// A fresh outbox in tables no other test uses, and a connection to PostgreSQL.
    static func makeOutbox() async throws -> (PostgresOutbox, RisingWaveConnection, RisingWaveConnection.Configuration)
    {
        let url = try TestEnvironment.requirePostgres()
        let configuration = RisingWaveConnection.Configuration(url: url)
        let connection = try await RisingWaveConnection(configuration: configuration)
        let outbox = try PostgresOutbox(table: "outbox_\(UUID().uuidString.prefix(8).lowercased())")
        try await outbox.provision(connection: connection)
        return (outbox, connection, configuration)
    }

    static func relay(
        _ outbox: PostgresOutbox,
        _ configuration: RisingWaveConnection.Configuration,
        sink: InMemoryEventSink<DemoUser>,
        pollInterval: Duration = .milliseconds(100),
        exitWhenEmpty: Bool = false
    ) throws -> OutboxRelay<InMemoryEventSink<DemoUser>> {
        try OutboxRelay(
            outbox: outbox,
            connection: configuration,
            sink: sink,
            configuration: .init(
                topic: topic,
                batchSize: 50,
                pollInterval: pollInterval,
                leadershipRetryInterval: .milliseconds(50),
                blockedKeyRetryInterval: .seconds(600),
                exitWhenEmpty: exitWhenEmpty
            )
        )
    }

    static func user(_ id: Int, _ name: String = "u", order: Int64 = 0) -> ChangeEvent<DemoUser> {
        .update(DemoUser(id: id, name: name, age: 30), order: order)
    }

    /// Waits (polling the condition, with a deadline) until `condition` holds.
    static func eventually(
        _ what: String,
        within limit: Duration = .seconds(30),
        _ condition: () async throws -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        while !(try await condition()) {
            guard clock.now < deadline else {
                Issue.record("timed out waiting until \(what)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func rowCount(_ outbox: PostgresOutbox, _ connection: RisingWaveConnection) async throws -> Int {
        let rows = try await connection.query("SELECT count(*) AS n FROM \(outbox.table)", text: [])
        return Int(rows.first?["n"] ?? "") ?? -1
    }

    @Test("nothing committed is lost and nothing rolled back is published, even when the sink fails at first")
    func committedAndRolledBack() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        for id in 1...20 {
            try await connection.execute("BEGIN")
            _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection)
            try await connection.execute(id.isMultiple(of: 3) ? "ROLLBACK" : "COMMIT")
        }
        let committed = (1...20).filter { !$0.isMultiple(of: 3) }
        // A sink that fails publishes nothing and deletes nothing.
        let failing = InMemoryEventSink<DemoUser>()
        failing.failNextSends(1_000)
        let first = try Self.relay(outbox, configuration, sink: failing)
        let firstRun = Task { try await first.run() }
        try await Self.eventually("the relay is the leader") { first.isLeader }
        // Lets it fail a few rounds; what is asserted is the outcome (nothing published, nothing deleted).
        try await Task.sleep(for: .milliseconds(300))
        firstRun.cancel()
        _ = await firstRun.result
        #expect(first.published == 0)
        #expect(try await Self.rowCount(outbox, connection) == committed.count)
        // The next relay publishes every committed event, and only those.
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try Self.relay(outbox, configuration, sink: sink, exitWhenEmpty: true)
        try await relay.run()
        #expect(sink.events.map(\.key).sorted() == committed)
        #expect(try await Self.rowCount(outbox, connection) == 0)
    }

    @Test("per key, event_order and the published order follow the order in which PostgreSQL serialized the writes")
    func perKeyOrderUnderConcurrency() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        let app = "\(outbox.table)_app"
        try await connection.execute(
            "CREATE TABLE \(app) (id int PRIMARY KEY, history text[] NOT NULL DEFAULT '{}'); INSERT INTO \(app) (id) SELECT generate_series(1, 3)"
        )
        let writers = 4
        let perWriter = 20
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    let session = try await RisingWaveConnection(configuration: configuration)
                    // A lock wait blocks the thread libpq runs on, and in this one process several sessions waiting
                    // at once could occupy every thread the others need to commit: a short lock_timeout turns a
                    // wait into a rolled-back attempt that is retried (the contention stays).
                    try await session.execute("SET lock_timeout = '50ms'")
                    var random = SeededRandomNumberGenerator(seed: UInt64(writer + 1))
                    var n = 0
                    while n < perWriter {
                        let key = Int.random(in: 1...3, using: &random)
                        let name = "w\(writer)-\(n)"
                        do {
                            try await session.execute("BEGIN")
                            // The enqueue comes first, so it is the outbox's key lock that orders the transactions;
                            // the application's write after it records the order PostgreSQL serialized them in, and
                            // a pause before the commit lets the other writers' transactions pile up behind the lock.
                            _ = try await outbox.enqueue(Self.user(key, name), topic: Self.topic, on: session)
                            _ = try await session.query(
                                "UPDATE \(app) SET history = history || $1::text WHERE id = $2",
                                text: [name, String(key)]
                            )
                            _ = try await session.query(
                                "SELECT pg_sleep($1::float8)",
                                text: [String(Double.random(in: 0...0.01, using: &random))]
                            )
                            try await session.execute("COMMIT")
                            n += 1
                        } catch let error as DeltaKitError
                            where (error.underlying as? RisingWaveError)?.sqlState == "55P03"
                        {
                            try await session.execute("ROLLBACK")
                        }
                    }
                    await session.close()
                }
            }
            try await group.waitForAll()
        }
        var histories: [Int: [String]] = [:]
        for row in try await connection.query("SELECT id, array_to_string(history, ',') AS h FROM \(app)", text: []) {
            histories[Int(row["id"]!)!] = row["h"].map { $0.split(separator: ",").map(String.init) } ?? []
        }
        // The orders the outbox gave, per key, list the writers in the order the application's row saw them.
        var byOrder: [Int: [String]] = [:]
        for row in try await connection.query(
            "SELECT message_key, payload FROM \(outbox.table) ORDER BY message_key, event_order",
            text: []
        ) {
            let event = try ChangeEvent<DemoUser>(jsonData: Data(row["payload"]!.utf8))
            byOrder[Int(row["message_key"]!)!, default: []].append(event.record!.name)
        }
        #expect(byOrder == histories)
        // And the relay publishes them in that order per key.
        let sink = InMemoryEventSink<DemoUser>()
        try await Self.relay(outbox, configuration, sink: sink, exitWhenEmpty: true).run()
        var published: [Int: [String]] = [:]
        for event in sink.events { published[event.key, default: []].append(event.record!.name) }
        #expect(published == histories)
        #expect(sink.events.count == writers * perWriter)
        for key in 1...3 {
            let orders = sink.events.filter { $0.key == key }.map(\.order)
            #expect(orders == orders.sorted() && Set(orders).count == orders.count, "key \(key)")
        }
    }

    @Test("a row committed after a row with a higher id is not skipped (Watermill #311)")
    func lateCommitNotSkipped() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        let late = try await RisingWaveConnection(configuration: configuration)
        try await late.execute("BEGIN")
        let lowID = try await outbox.enqueue(Self.user(1, "late"), topic: Self.topic, on: late).id
        try await connection.execute("BEGIN")
        let highID = try await outbox.enqueue(Self.user(2, "early"), topic: Self.topic, on: connection).id
        try await connection.execute("COMMIT")
        #expect(lowID < highID)
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try Self.relay(outbox, configuration, sink: sink)
        let running = Task { try await relay.run() }
        try await Self.eventually("the early commit is published") { relay.published == 1 }
        try await late.execute("COMMIT")
        try await Self.eventually("the late commit is published") { relay.published == 2 }
        running.cancel()
        _ = await running.result
        #expect(sink.events.map(\.key) == [2, 1])
        #expect(try await Self.rowCount(outbox, connection) == 0)
        await late.close()
    }

    @Test("a row that cannot be published blocks only its own key")
    func poisonedRowBlocksOnlyItsKey() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        _ = try await outbox.enqueue(Self.user(6, "before"), topic: Self.topic, on: connection)
        _ = try await connection.query(
            "INSERT INTO \(outbox.table) (topic, message_key, event_order, payload) VALUES ($1, '7', 1, 'not an event')",
            text: [Self.topic]
        )
        _ = try await outbox.enqueue(Self.user(7, "behind the poisoned row"), topic: Self.topic, on: connection)
        _ = try await outbox.enqueue(Self.user(8, "after"), topic: Self.topic, on: connection)
        _ = try await outbox.enqueue(Self.user(6, "after"), topic: Self.topic, on: connection)
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try Self.relay(outbox, configuration, sink: sink)
        let running = Task { try await relay.run() }
        try await Self.eventually("the other keys are published and key 7 is held") {
            relay.published >= 3 && relay.blockedKeys == ["7"]
        }
        running.cancel()
        _ = await running.result
        #expect(sink.events.map(\.key) == [6, 8, 6])
        let left = try await connection.query(
            "SELECT message_key FROM \(outbox.table) ORDER BY id",
            text: []
        )
        #expect(left.map { $0["message_key"] } == ["7", "7"])
    }

    @Test("a send that fails part-way through the backlog loses nothing and keeps each key's order")
    func failurePartWay() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        // 150 rows over 60 keys, three batches of 50, each key's rows in more than one batch.
        var expected: [Int: [String]] = [:]
        for n in 0..<150 {
            _ = try await outbox.enqueue(Self.user(n % 60, "p\(n)"), topic: Self.topic, on: connection)
            expected[n % 60, default: []].append("p\(n)")
        }
        // The first event after the first batch fails: the second batch's send fails.
        let durable = Mutex(0)
        let sinkBox = Mutex<InMemoryEventSink<DemoUser>?>(nil)
        let sink = InMemoryEventSink<DemoUser>(onDurable: { _ in
            if durable.withLock({ count in
                count += 1
                return count == 50
            }) {
                sinkBox.withLock { $0 }?.failNextSends(1)
            }
        })
        sinkBox.withLock { $0 = sink }
        let relay = try Self.relay(outbox, configuration, sink: sink, exitWhenEmpty: true)
        try await relay.run()
        #expect(try await Self.rowCount(outbox, connection) == 0)
        // At least once: compare each key's first publications with its commit order.
        var got: [Int: [String]] = [:]
        for event in sink.events where !(got[event.key]?.contains(event.record?.name ?? "") ?? false) {
            got[event.key, default: []].append(event.record?.name ?? "")
        }
        #expect(got == expected)
        await connection.close()
    }

    @Test("a traced batch is published in a span: a child of the one context it holds, or linking each of several")
    func publishSpans() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        // Bound to this test's tasks only (task-local): tests run in parallel in one process.
        let tracer = InMemoryTracer()
        func write(_ id: Int) async throws -> InMemorySpanContext {
            try await withTracer(tracer) {
                try await withSpan("write \(id)") { span in
                    _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection)
                    return try #require(span.context.inMemorySpanContext)
                }
            }
        }
        func relay(_ sink: InMemoryEventSink<DemoUser>) async throws -> [FinishedInMemorySpan] {
            tracer.clearAll()
            try await withTracer(tracer) {
                try await Self.relay(outbox, configuration, sink: sink, exitWhenEmpty: true).run()
            }
            return tracer.finishedSpans.filter { $0.operationName == "deltakit.outbox.publish" }
        }

        // One traced row: the batch's span continues its trace, as the write's child.
        let one = try await write(1)
        let sink = InMemoryEventSink<DemoUser>()
        let first = try await relay(sink)
        #expect(first.count == 1)
        #expect(first.first?.traceID == one.traceID)
        #expect(first.first?.parentSpanID == one.spanID)
        #expect(first.first?.kind == .producer)
        #expect(first.first?.links.isEmpty == true)
        #expect(
            sink.traceHeaders.first?.contains { $0.value == one.traceID } == true,
            "the message keeps its row's context"
        )

        // Two traced rows and an untraced one in one batch: a span of its own, linking both writes.
        let two = try await write(2)
        let three = try await write(3)
        _ = try await outbox.enqueue(Self.user(4), topic: Self.topic, on: connection)
        let second = try await relay(sink)
        #expect(second.count == 1)
        let linked = Set(second.first?.links.compactMap { $0.context.inMemorySpanContext?.spanID } ?? [])
        #expect(linked == [two.spanID, three.spanID])
        #expect(second.first.map { ![two.traceID, three.traceID].contains($0.traceID) } == true)
        #expect(second.first?.parentSpanID == nil)
        #expect(sink.traceHeaders.last?.isEmpty == true, "the untraced row's message has no context")

        // Untraced rows only: no span.
        _ = try await outbox.enqueue(Self.user(5), topic: Self.topic, on: connection)
        #expect(try await relay(sink).isEmpty)
        #expect(sink.events.map(\.key) == [1, 2, 3, 4, 5])
        await connection.close()
    }

    @Test("one relay is active at a time; a second waits and takes over when the first ends")
    func oneLeaderAndTakeover() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        var secondConfiguration = configuration
        secondConfiguration.applicationName = "\(outbox.table)_second"
        let firstSink = InMemoryEventSink<DemoUser>()
        let secondSink = InMemoryEventSink<DemoUser>()
        let first = try Self.relay(outbox, configuration, sink: firstSink)
        let second = try Self.relay(outbox, secondConfiguration, sink: secondSink)
        let firstRun = Task { try await first.run() }
        try await Self.eventually("the first relay leads") { first.isLeader }
        let secondRun = Task { try await second.run() }
        // The second relay has tried the lock (its session's last statement is the attempt) before events arrive.
        try await Self.eventually("the second relay tried to lead") {
            let rows = try await connection.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_try_advisory_lock%'",
                text: [secondConfiguration.applicationName]
            )
            return rows.first?["n"] == "1"
        }
        #expect(!second.isLeader)
        for id in 1...10 { _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection) }
        try await Self.eventually("the leader published everything") { first.published == 10 }
        #expect(!second.isLeader)
        #expect(secondSink.events.isEmpty)
        // The leader ends (its session closes, as a crash closes it); the second takes over.
        firstRun.cancel()
        _ = await firstRun.result
        try await Self.eventually("the second relay leads") { second.isLeader }
        for id in 11...20 { _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection) }
        try await Self.eventually("the new leader published the new events") { second.published == 10 }
        #expect(secondSink.events.map(\.key) == Array(11...20))
        #expect(firstSink.events.map(\.key) == Array(1...10))
        secondRun.cancel()
        _ = await secondRun.result
    }

    @Test("a leader whose session was terminated competes again before publishing")
    func terminatedSessionReacquires() async throws {
        let (outbox, connection, shared) = try await Self.makeOutbox()
        var configuration = shared
        configuration.applicationName = outbox.table
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try Self.relay(outbox, configuration, sink: sink)
        let running = Task { try await relay.run() }
        try await Self.eventually("the relay leads") { relay.isLeader }
        // Terminate the relay's session: its lock is gone; it must reconnect and win the lock again.
        let terminated = try await connection.query(
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1",
            text: [outbox.table]
        )
        #expect(terminated.map { $0["done"] } == ["t"])
        for id in 1...5 { _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection) }
        try await Self.eventually("the relay publishes after winning the lock again") { relay.published == 5 }
        #expect(relay.isLeader)
        let holders = try await connection.query(
            """
            SELECT count(*) AS n FROM pg_locks JOIN pg_stat_activity USING (pid)
            WHERE locktype = 'advisory' AND granted AND application_name = $1
            """,
            text: [outbox.table]
        )
        #expect(holders.first?["n"] == "1")
        running.cancel()
        _ = await running.result
    }

    @Test("the relay wakes on NOTIFY (with a poll interval far beyond the test's deadline)")
    func wakesOnNotify() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try Self.relay(outbox, configuration, sink: sink, pollInterval: .seconds(3_600))
        let running = Task { try await relay.run() }
        try await Self.eventually("the relay leads") { relay.isLeader }
        for id in 1...3 {
            _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection)
            try await Self.eventually("event \(id) is published on its notification", within: .seconds(20)) {
                relay.published == id
            }
        }
        running.cancel()
        _ = await running.result
    }

    @Test("without notifications (trigger disabled, as behind a transaction-pooling PgBouncer) the relay polls")
    func fallsBackToPolling() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        try await connection.execute("ALTER TABLE \(outbox.table) DISABLE TRIGGER \(outbox.table)_notify")
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try Self.relay(outbox, configuration, sink: sink, pollInterval: .milliseconds(200))
        let running = Task { try await relay.run() }
        try await Self.eventually("the relay leads") { relay.isLeader }
        for id in 1...3 { _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection) }
        try await Self.eventually("the events are published by polling") { relay.published == 3 }
        running.cancel()
        _ = await running.result
    }

    @Test(
        "metrics: depth, oldest age, publish latency, published, leadership, blocked keys; logs: leadership, held rows"
    )
    func metricsAndLogs() async throws {
        let (outbox, connection, configuration) = try await Self.makeOutbox()
        for id in 1...5 { _ = try await outbox.enqueue(Self.user(id), topic: Self.topic, on: connection) }
        _ = try await connection.query(
            "INSERT INTO \(outbox.table) (topic, message_key, event_order, payload) VALUES ($1, '9', 1, 'not an event')",
            text: [Self.topic]
        )
        // The rows were enqueued a minute ago: the oldest age and every publish latency are at least that.
        _ = try await connection.query(
            "UPDATE \(outbox.table) SET created_at = created_at - interval '60 seconds'",
            text: []
        )
        let metrics = TestMetrics()
        let (logger, logs) = CapturingLogHandler.logger("outbox")
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try OutboxRelay(
            outbox: outbox,
            connection: configuration,
            sink: sink,
            configuration: .init(topic: Self.topic, exitWhenEmpty: true),
            logger: logger,
            metricsFactory: metrics
        )
        try await relay.run()
        let dimensions = [("table", outbox.table), ("topic", Self.topic)]
        // Measured before the first round: 6 rows, the oldest enqueued 60 s ago (this test takes far less than 600).
        #expect(try metrics.expectGauge("deltakit_outbox_depth", dimensions).values.first == 6)
        let oldest = try #require(
            try metrics.expectGauge("deltakit_outbox_oldest_age_seconds", dimensions).values.first
        )
        #expect(oldest >= 60 && oldest < 660, "\(oldest)")
        let latencies = try metrics.expectTimer("deltakit_outbox_publish_latency", dimensions).values
        #expect(latencies.count == 5)
        #expect(latencies.allSatisfy { $0 >= 60_000_000_000 && $0 < 660_000_000_000 }, "\(latencies)")
        #expect(try metrics.expectCounter("deltakit_outbox_published_total", dimensions).totalValue == 5)
        // Leader while it ran, not any more once it ended.
        let leader = try metrics.expectGauge("deltakit_outbox_relay_leader", dimensions).values
        #expect(leader.contains(1) && leader.last == 0, "\(leader)")
        #expect(try metrics.expectGauge("deltakit_outbox_blocked_keys", dimensions).values.last == 1)
        #expect(relay.heldBack.map(\.key) == ["9"])
        #expect(logs.messages.contains { $0.contains("is the leader") })
        #expect(logs.messages.contains { $0.contains("(key 9)") && $0.contains("cannot be published") })
        #expect(logs.messages.contains { $0.contains("ends with key 9 held back") })
    }
}

@Suite("Outbox statements (no services)")
struct OutboxStatementTests {
    @Test(
        "the enqueue statement binds topic, key, the event's order, its wire JSON, the traceparent and the trace headers, as text"
    )
    func enqueueBindings() throws {
        let outbox = try PostgresOutbox()
        let event = ChangeEvent<DemoUser>.update(DemoUser(id: 42, name: "Ada", age: 36), order: 7)
        let statement = try outbox.enqueueStatement(event, topic: "user-events", traceparent: "00-abc-def-01")
        #expect(statement.bindings.count == 9)
        #expect(statement.bindings[0] == "user-events")
        #expect(statement.bindings[1] == "42")
        #expect(statement.bindings[2] == "7")
        #expect(try statement.bindings[3].map { try ChangeEvent<DemoUser>(jsonData: Data($0.utf8)) } == event)
        #expect(statement.bindings[4] == "00-abc-def-01")
        #expect(statement.sql.contains("INSERT INTO deltakit_outbox_keys"))
        #expect(statement.bindings[5] == "traceparent: 00-abc-def-01")
        let untraced = try outbox.enqueueStatement(event, topic: "t")
        #expect(untraced.bindings[4] == nil && untraced.bindings[5] == nil, "no span, no trace context")
        // Where the payload's order is, counted from its end (`7,"ts":"…"}`), and the record type's mark.
        let payload = try #require(statement.bindings[3])
        let after = try #require(statement.bindings[7].flatMap { Int($0) })
        #expect(statement.bindings[6] == String(after + 1))
        #expect(payload.hasSuffix(#""event_order":7"# + String(payload.suffix(after))))
        #expect(String(payload.suffix(after)).hasPrefix(#","ts":""#))
        #expect(statement.bindings[8] == PostgresOutbox.payloadFormat(of: DemoUser.self))
        #expect(statement.bindings[8]?.hasPrefix("deltakit-wire-1:") == true)
    }

    @Test("an encoded event is recognized only when its JSON ends as the encoder ends it, with the given order")
    func encodedEventTail() throws {
        let timestamp = Date(timeIntervalSince1970: 1_796_000_000.123456)
        for event: ChangeEvent<DemoUser> in [
            .insert(DemoUser(id: 1, name: "a \"quoted\" name", age: 3), order: 12, timestamp: timestamp),
            .update(DemoUser(id: 2, name: "ünï", age: 4), order: 0, timestamp: timestamp),
            .update(DemoUser(id: 2, name: "x", age: 4), order: -40, timestamp: timestamp),
            .delete(key: 3, order: 9_223_372_036_854_775_807, timestamp: timestamp),
        ] {
            let json = String(decoding: try event.jsonData(), as: UTF8.self)
            let encoded = try #require(EncodedEvent(key: "k", json: json, order: event.order))
            #expect(encoded.isDelete == (event.operation == .delete))
            #expect(String(encoded.timestamp) == EventTimestamp.format(timestamp))
            #expect(EncodedEvent(key: "k", json: json, order: event.order &- 1) == nil, "another order")
            #expect(EncodedEvent(key: "k", json: json + " ", order: event.order) == nil)
        }
        #expect(EncodedEvent(key: "k", json: "not an event", order: 1) == nil)
        #expect(EncodedEvent(key: "k", json: #"{"id":1,"op":"insert","event_order":01,"ts":"x"}"#, order: 1) == nil)
        // json_build_object's spacing is not the encoder's.
        #expect(
            EncodedEvent(key: "k", json: #"{"id" : 1, "op" : "insert", "event_order" : 1, "ts" : "x"}"#, order: 1)
                == nil
        )
    }

    @Test("an outbox table name that would need quoting is refused", arguments: ["", "A", "1a", "a-b", "a b", "a;b"])
    func invalidTableNames(name: String) {
        #expect(throws: DeltaKitError.self) { try PostgresOutbox(table: name) }
    }
}
