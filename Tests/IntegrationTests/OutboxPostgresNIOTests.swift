import DeltaKit
import DeltaKitOutbox
import DeltaKitOutboxPostgresNIO
import DeltaKitRisingWave
import DeltaKitTesting
import Foundation
import Logging
import PostgresNIO
import Testing

/// Enqueueing in the application's own postgres-nio transaction, on the real PostgreSQL of `scripts/test`.
@Suite("Outbox through postgres-nio on real PostgreSQL", .requiresPostgres, .timeLimit(.minutes(5)))
struct OutboxPostgresNIOTests {
    static let logger = Logger(label: "deltakit.test.postgres-nio")

    /// A postgres-nio client for the test database, running for the duration of `body`.
    static func withClient<T: Sendable>(
        database: String? = nil,
        _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        let url = try #require(URLComponents(string: try TestEnvironment.requirePostgres()))
        let configuration = PostgresClient.Configuration(
            host: url.host ?? "127.0.0.1",
            port: url.port ?? 5432,
            username: url.user ?? "postgres",
            password: url.password,
            database: database ?? String(url.path.dropFirst()),
            tls: .disable
        )
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// A fresh outbox, provisioned through postgres-nio, with an application table `<outbox>_app` of `keys` rows.
    static func makeOutbox(_ client: PostgresClient, keys: Int) async throws -> PostgresOutbox {
        let outbox = try PostgresOutbox(table: "outbox_nio_\(UUID().uuidString.prefix(8).lowercased())")
        try await client.withConnection { connection in
            try await outbox.provision(on: connection, logger: logger)
            // Provisioning again changes nothing (it is idempotent).
            try await outbox.provision(on: connection, logger: logger)
        }
        try await client.query(
            PostgresQuery(
                unsafeSQL:
                    "CREATE TABLE \(outbox.table)_app (id int PRIMARY KEY, name text, history text[] NOT NULL DEFAULT '{}')"
            ),
            logger: logger
        )
        try await client.query(
            PostgresQuery(
                unsafeSQL: "INSERT INTO \(outbox.table)_app (id) SELECT generate_series(1, $1)",
                binds: {
                    var binds = PostgresBindings()
                    binds.append(keys)
                    return binds
                }()
            ),
            logger: logger
        )
        return outbox
    }

    /// Publishes everything in the outbox (a relay that ends when nothing is left) and returns what it published.
    static func drain(
        _ outbox: PostgresOutbox,
        topic: String = "users",
        url: String? = nil
    ) async throws -> [ChangeEvent<DemoUser>] {
        let sink = InMemoryEventSink<DemoUser>()
        let relay = try OutboxRelay(
            outbox: outbox,
            connection: .init(url: try url ?? TestEnvironment.requirePostgres()),
            sink: sink,
            configuration: .init(topic: topic, pollInterval: .milliseconds(100), exitWhenEmpty: true)
        )
        try await relay.run()
        return sink.events
    }

    struct Rollback: Error {}

    @Test("a committed transaction's event is relayed; a rolled-back one's is not")
    func committedAndRolledBack() async throws {
        try await Self.withClient { client in
            let outbox = try await Self.makeOutbox(client, keys: 10)
            for id in 1...10 {
                let user = DemoUser(id: id, name: "user \(id)", age: 30)
                do {
                    try await client.withTransaction(logger: Self.logger) { connection in
                        try await connection.query(
                            "UPDATE \(unescaped: outbox.table)_app SET name = \(user.name) WHERE id = \(user.id)",
                            logger: Self.logger
                        )
                        let enqueued = try await outbox.enqueue(
                            .update(user, order: 0),
                            topic: "users",
                            on: connection,
                            logger: Self.logger
                        )
                        #expect(enqueued.order >= 1)
                        if id.isMultiple(of: 3) { throw Rollback() }
                    }
                } catch let error as PostgresTransactionError where error.closureError is Rollback {}
            }
            let committed = (1...10).filter { !$0.isMultiple(of: 3) }
            let published = try await Self.drain(outbox)
            #expect(published.map(\.key) == committed)
            #expect(published.map { $0.record?.name } == committed.map { "user \($0)" })
            let names = try await client.query(
                "SELECT count(*) FROM \(unescaped: outbox.table)_app WHERE name IS NOT NULL",
                logger: Self.logger
            )
            for try await count in names.decode(Int.self) { #expect(count == committed.count) }
        }
    }

    @Test("concurrent transactions on the same keys get event_order in commit order")
    func concurrentTransactionsOrderedByCommit() async throws {
        try await Self.withClient { client in
            let outbox = try await Self.makeOutbox(client, keys: 3)
            let writers = 4
            let perWriter = 15
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var random = SeededRandomNumberGenerator(seed: UInt64(writer + 1))
                        for n in 0..<perWriter {
                            let key = Int.random(in: 1...3, using: &random)
                            let name = "w\(writer)-\(n)"
                            let pause = Double.random(in: 0...0.01, using: &random)
                            try await client.withTransaction(logger: Self.logger) { connection in
                                // The enqueue comes first, so the outbox's key lock orders the transactions; the
                                // application's write after it records the order PostgreSQL serialized them in,
                                // and a pause before the commit lets the other writers pile up behind the lock.
                                try await outbox.enqueue(
                                    .update(DemoUser(id: key, name: name, age: 30), order: 0),
                                    topic: "users",
                                    on: connection,
                                    logger: Self.logger
                                )
                                try await connection.query(
                                    "UPDATE \(unescaped: outbox.table)_app SET history = history || \(name) WHERE id = \(key)",
                                    logger: Self.logger
                                )
                                try await connection.query("SELECT pg_sleep(\(pause))", logger: Self.logger)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            var histories: [Int: [String]] = [:]
            let rows = try await client.query(
                "SELECT id, history FROM \(unescaped: outbox.table)_app",
                logger: Self.logger
            )
            for try await (id, history) in rows.decode((Int, [String]).self) where !history.isEmpty {
                histories[id] = history
            }
            let published = try await Self.drain(outbox)
            #expect(published.count == writers * perWriter)
            var byKey: [Int: [String]] = [:]
            for event in published { byKey[event.key, default: []].append(event.record!.name) }
            #expect(byKey == histories)
            for key in 1...3 {
                let orders = published.filter { $0.key == key }.map(\.order)
                #expect(orders == orders.sorted() && Set(orders).count == orders.count, "key \(key)")
            }
        }
    }

    @Test("PostgresQuery(OutboxStatement) binds the statement's text parameters, nil as NULL")
    func queryFromStatement() throws {
        let statement = OutboxStatement(sql: "SELECT $1, $2", bindings: ["a", nil])
        let query = PostgresQuery(statement)
        #expect(query.sql == "SELECT $1, $2")
        #expect(query.binds.count == 2)
    }

    /// The README's postgres-nio snippet, compiled and run as it is shown: in a database of its own, whose `users`
    /// table and default outbox (`deltakit_outbox`) no other test uses.
    @Test("the README snippet: an update and its change event in one postgres-nio transaction")
    func readmeSnippet() async throws {
        let url = try TestEnvironment.requirePostgres()
        let admin = try await RisingWaveConnection(configuration: .init(url: url))
        let database = "outbox_readme_\(UUID().uuidString.prefix(8).lowercased())"
        try await admin.execute("CREATE DATABASE \(database)")
        let databaseURL = try #require(URL(string: url)).deletingLastPathComponent().appendingPathComponent(database)
            .absoluteString
        try await Self.withClient(database: database) { client in
            try await client.query("CREATE TABLE users (id int PRIMARY KEY, name text, age int)", logger: Self.logger)
            try await client.query("INSERT INTO users VALUES (42, 'Grace', 36)", logger: Self.logger)
            let logger = Self.logger
            let user = DemoUser(id: 42, name: "Ada", age: 36)
            // README snippet begins
            let outbox = try PostgresOutbox()
            try await client.withConnection { try await outbox.provision(on: $0) }  // once; idempotent

            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("UPDATE users SET name = \(user.name) WHERE id = \(user.id)", logger: logger)
                // Order 0: the outbox numbers each key's events in the order the transactions commit.
                try await outbox.enqueue(.update(user, order: 0), topic: "user-events", on: connection, logger: logger)
            }
            // README snippet ends
            let published = try await Self.drain(outbox, topic: "user-events", url: databaseURL)
            #expect(published.map(\.record) == [user])
            #expect(published.map(\.order) == [1])
            let rows = try await client.query("SELECT name FROM users WHERE id = 42", logger: Self.logger)
            for try await name in rows.decode(String.self) { #expect(name == "Ada") }
        }
        try await admin.execute("DROP DATABASE \(database) WITH (FORCE)")
        await admin.close()
    }
}

@Suite("Outbox conformance on real PostgreSQL", .requiresPostgres, .timeLimit(.minutes(5)))
struct PostgresOutboxConformanceTests {
    @Test("PostgresNIOOutbox with OutboxRelay passes OutboxConformance")
    func conformance() async throws {
        let url = try TestEnvironment.requirePostgres()
        try await OutboxPostgresNIOTests.withClient { client in
            let passed = try await OutboxConformance(
                makeOutbox: {
                    PostgresNIOOutbox<DemoUser>(
                        outbox: try await OutboxPostgresNIOTests.makeOutbox(client, keys: 0),
                        topic: "users",
                        client: client
                    )
                },
                relay: { outbox, sink in
                    try await OutboxRelay(
                        outbox: outbox.outbox,
                        connection: .init(url: url),
                        sink: sink,
                        configuration: .init(
                            topic: outbox.topic,
                            pollInterval: .milliseconds(100),
                            leadershipRetryInterval: .milliseconds(50)
                        )
                    ).run()
                }
            ).run()
            #expect(passed.count == 6)
        }
    }
}
