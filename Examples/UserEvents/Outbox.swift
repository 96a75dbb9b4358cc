import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitOutbox
import DeltaKitRisingWave
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `outbox provision|write|relay`: the transactional outbox on PostgreSQL, with the demo's `users` table as the
/// application's own data.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Write users rows and their change events in one PostgreSQL transaction; relay the events to Kafka.",
        subcommands: [OutboxProvision.self, OutboxWrite.self, OutboxRelayCommand.self]
    )
}

/// `--postgres`, for the outbox commands.
struct PostgresOptions: ParsableArguments {
    @Option(help: "PostgreSQL URL (the application's database, which holds the users table and the outbox).")
    var postgres = "postgres://postgres@localhost:5432/postgres"

    func connection() async throws -> RisingWaveConnection {
        try await RisingWaveConnection(configuration: configuration, logger: .init(label: "UserEvents.outbox"))
    }

    var configuration: RisingWaveConnection.Configuration {
        RisingWaveConnection.Configuration(url: postgres, applicationName: "UserEvents-outbox")
    }
}

/// The demo's outbox (table `deltakit_outbox`).
private let demoOutbox = try! PostgresOutbox()

struct OutboxProvision: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Create the users table (id, name, age) and the outbox, if missing."
    )

    @OptionGroup var database: PostgresOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let connection = try await database.connection()
            try await connection.execute(
                "CREATE TABLE IF NOT EXISTS users (id integer PRIMARY KEY, name text NOT NULL, age integer NOT NULL)"
            )
            try await demoOutbox.provision(connection: connection)
            await connection.close()
            try Console.output.line("Provisioned the users table and the outbox \(demoOutbox.table)")
        }
    }
}

struct OutboxWrite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract:
            "The example service: each event is one transaction that inserts, updates or deletes a users row and enqueues its change event."
    )

    @OptionGroup var database: PostgresOptions
    @Option(parsing: .unconditional, help: "How many transactions (0…100,000,000).")
    var count = 100
    @Option(parsing: .unconditional, help: "Random seed (the same seed gives the same operations). Default: random.")
    var seed: UInt64?
    @Option(parsing: .unconditional, help: "How many distinct users (ids 1…K) the writes touch (1…1,000,000).")
    var users = 10
    @Option(help: "The topic the events are enqueued for.")
    var topic = "user-events"
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...100_000_000).contains(count) else {
            throw ValidationError("--count must be 0…100,000,000, got \(count)")
        }
        guard (1...1_000_000).contains(users) else {
            throw ValidationError("--users must be 1…1,000,000, got \(users)")
        }
    }

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let connection = try await database.connection()
            var random = SplitMix64(seed: seed ?? UInt64.random(in: 0...UInt64(UInt32.max)))
            let clock = HybridLogicalClock()
            var tally: [ChangeOperation: Int] = [:]
            var retries = 0
            var written = 0
            while written < count {
                let id = Int.random(in: 1...users, using: &random)
                let roll = Int.random(in: 0..<10, using: &random)
                let age = Int.random(in: 18...90, using: &random)
                do {
                    let operation = try await writeOne(connection, id: id, roll: roll, age: age, clock: clock)
                    tally[operation, default: 0] += 1
                    written += 1
                } catch let error as DeltaKitError where Self.isRetryable(error) {
                    // A deadlock or serialization failure rolls the whole transaction back: row and event alike.
                    try? await connection.execute("ROLLBACK")
                    retries += 1
                }
            }
            await connection.close()
            try Console.output.line(
                "Wrote \(written) transactions (\(tally[.insert] ?? 0) inserts, \(tally[.update] ?? 0) updates, \(tally[.delete] ?? 0) deletes) to users and \(demoOutbox.table) for '\(topic)'; \(retries) retried"
            )
        }
    }

    /// One transaction: lock the user's row, change it, enqueue the event that says what it now is, commit.
    private func writeOne(
        _ connection: RisingWaveConnection,
        id: Int,
        roll: Int,
        age: Int,
        clock: HybridLogicalClock
    ) async throws -> ChangeOperation {
        try await connection.execute("BEGIN")
        // The application's row lock comes before the outbox's key lock in every transaction: one lock order, so
        // concurrent writers never deadlock on each other.
        let existing = try await connection.query("SELECT id FROM users WHERE id = $1 FOR UPDATE", text: [String(id)])
        let event: ChangeEvent<DemoUser>
        if existing.isEmpty || roll < 6 {
            let user = DemoUser(id: id, name: "user-\(id)-\(age)", age: age)
            _ = try await connection.query(
                """
                INSERT INTO users (id, name, age) VALUES ($1, $2, $3)
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, age = excluded.age
                """,
                text: [String(id), user.name, String(age)]
            )
            event = existing.isEmpty ? .insert(user, order: clock.next()) : .update(user, order: clock.next())
        } else {
            _ = try await connection.query("DELETE FROM users WHERE id = $1", text: [String(id)])
            event = .delete(key: id, order: clock.next())
        }
        _ = try await demoOutbox.enqueue(event, topic: topic, on: connection)
        try await connection.execute("COMMIT")
        return event.operation
    }

    private static func isRetryable(_ error: DeltaKitError) -> Bool {
        guard let sqlState = (error.underlying as? RisingWaveError)?.sqlState else { return false }
        return sqlState == "40001" || sqlState == "40P01" || sqlState == "23505"
    }
}

struct OutboxRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract:
            "Publish the outbox's committed events to Kafka, deleting each once acknowledged (one relay leads at a time)."
    )

    @OptionGroup var database: PostgresOptions
    @OptionGroup var kafka: KafkaOptions
    @Flag(help: "Exit (0) once nothing is left to publish, instead of waiting for more.")
    var exitWhenEmpty = false
    @Option(parsing: .unconditional, help: "Partitions when creating the topic (1…10,000).")
    var partitions = 4
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let sink = try await KafkaEventSink<DemoUser>(
                configuration: .init(
                    kafka: try kafka.configuration(),
                    topic: kafka.topic,
                    createTopic: .init(partitions: partitions)
                )
            )
            let relay = try OutboxRelay(
                outbox: demoOutbox,
                connection: database.configuration,
                sink: sink,
                configuration: .init(topic: kafka.topic, exitWhenEmpty: exitWhenEmpty)
            )
            let signal: UnixSignal?
            do {
                signal = try await runUntilInterrupted([
                    .init(service: relay, successTerminationBehavior: .gracefullyShutdownGroup)
                ])
                try await sink.close()
            } catch {
                try? await sink.close()
                throw error
            }
            try Console.output.line("Relayed \(relay.published) events to '\(kafka.topic)'")
            // What stays in the outbox, and why: a script that drains with --exit-when-empty learns that rows are
            // left (their keys held back behind a row that cannot be published) without the relay waiting for them.
            for row in relay.heldBack {
                try Console.output.line("Held back: key \(row.key) at outbox row \(row.id): \(row.reason)")
            }
            if let signal { throw ExitCode(interruptedBy: signal) }
        }
    }
}
