import DeltaKit
import DeltaKitRisingWave
import Foundation
import Testing

/// `UserEvents outbox …` end to end: PostgreSQL, the relay SIGKILLed while writers write, Kafka, `snapshot --brokers`.
@Suite("UserEvents outbox CLI", .requiresPostgres, .requiresKafka, .timeLimit(.minutes(5)))
struct OutboxCLITests {
    @Test("after writes and a relay SIGKILLed several times, snapshot --brokers equals the users table")
    func crashedRelayLosesNothing() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let url = try TestEnvironment.requirePostgres()
        // A database of its own: the CLI's tables have fixed names (users, deltakit_outbox).
        let admin = try await RisingWaveConnection(configuration: .init(url: url))
        let database = "outbox_cli_\(UUID().uuidString.prefix(8).lowercased())"
        try await admin.execute("CREATE DATABASE \(database)")
        let postgres = try #require(URL(string: url)).deletingLastPathComponent().appendingPathComponent(database)
            .absoluteString
        let topic = TestEnvironment.uniqueTopic("outbox")

        let provisioned = try await CLI.run(["outbox", "provision", "--postgres", postgres])
        #expect(provisioned.status == 0, "\(provisioned.stderr)")
        let writers = try (1...2).map { seed in
            try CLI.Running([
                "outbox", "write", "--postgres", postgres, "--count", "400", "--users", "25", "--seed", "\(seed)",
                "--topic", topic,
            ])
        }
        let relayArguments = [
            "outbox", "relay", "--postgres", postgres, "--brokers", brokers, "--topic", topic, "--verbose",
        ]
        for _ in 1...3 {
            let relay = try CLI.Running(relayArguments)
            try await relay.waitForStderr(containing: "is the leader", timeout: .seconds(60))
            // The crash instant: some time into publishing (what is asserted is the final state, not this timing).
            try await Task.sleep(for: .milliseconds(150))
            relay.signal(SIGKILL)
            _ = try await relay.wait()
        }
        for writer in writers {
            let result = try await writer.wait()
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasPrefix("Wrote 400 transactions"), "\(result.stdout)")
        }
        let drained = try await CLI.run(relayArguments + ["--exit-when-empty"])
        #expect(drained.status == 0, "\(drained.stderr)")

        let snapshot = try await CLI.run(["snapshot", "--brokers", brokers, "--topic", topic, "--format", "csv"])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        let app = try await RisingWaveConnection(configuration: .init(url: postgres))
        let rows = try await app.query("SELECT id, name, age FROM users ORDER BY id", text: [])
        let expected = rows.map { "\($0["id"]!),\($0["name"]!),\($0["age"]!)\n" }.joined()
        #expect(!rows.isEmpty)
        #expect(snapshot.stdout == expected)
        let left = try await app.query("SELECT count(*) AS n FROM deltakit_outbox", text: [])
        #expect(left.first?["n"] == "0")

        // SIGTERM drains and exits 143.
        let relay = try CLI.Running(relayArguments)
        try await relay.waitForStderr(containing: "is the leader", timeout: .seconds(60))
        relay.signal(SIGTERM)
        let terminated = try await relay.wait()
        #expect(terminated.status == 143, "\(terminated.stderr)")
        #expect(terminated.stdout.hasPrefix("Relayed "), "\(terminated.stdout)")

        await app.close()
        try await admin.execute("DROP DATABASE \(database) WITH (FORCE)")
        await admin.close()
    }

    @Test("relay --exit-when-empty exits 0 when only held-back rows remain, after saying which and why")
    func exitWhenEmptyLeavesHeldBackRows() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let url = try TestEnvironment.requirePostgres()
        let admin = try await RisingWaveConnection(configuration: .init(url: url))
        let database = "outbox_cli_\(UUID().uuidString.prefix(8).lowercased())"
        try await admin.execute("CREATE DATABASE \(database)")
        let postgres = try #require(URL(string: url)).deletingLastPathComponent().appendingPathComponent(database)
            .absoluteString
        let topic = TestEnvironment.uniqueTopic("outbox")
        let provisioned = try await CLI.run(["outbox", "provision", "--postgres", postgres])
        #expect(provisioned.status == 0, "\(provisioned.stderr)")
        let app = try await RisingWaveConnection(configuration: .init(url: postgres))
        // A row that cannot be decoded, and one of the same key behind it; the writer's rows around them.
        let written = try await CLI.run([
            "outbox", "write", "--postgres", postgres, "--count", "20", "--users", "5", "--topic", topic,
        ])
        #expect(written.status == 0, "\(written.stderr)")
        let poisoned = try await app.query(
            """
            INSERT INTO deltakit_outbox (topic, message_key, event_order, payload)
            VALUES ($1, '999', 1, 'not an event'), ($1, '999', 2, 'behind it') RETURNING id
            """,
            text: [topic]
        )
        let poisonedID = try #require(poisoned.first?["id"])
        let more = try await CLI.run([
            "outbox", "write", "--postgres", postgres, "--count", "20", "--users", "5", "--seed", "2", "--topic", topic,
        ])
        #expect(more.status == 0, "\(more.stderr)")

        let drained = try await CLI.run([
            "outbox", "relay", "--postgres", postgres, "--brokers", brokers, "--topic", topic, "--exit-when-empty",
        ])
        #expect(drained.status == 0, "\(drained.stderr)")
        #expect(drained.stdout.hasPrefix("Relayed 40 events"), "\(drained.stdout)")
        #expect(
            drained.stdout.contains("Held back: key 999 at outbox row \(poisonedID): "),
            "\(drained.stdout)"
        )
        let left = try await app.query("SELECT message_key FROM deltakit_outbox ORDER BY id", text: [])
        #expect(left.map { $0["message_key"] } == ["999", "999"])

        await app.close()
        try await admin.execute("DROP DATABASE \(database) WITH (FORCE)")
        await admin.close()
    }
}
