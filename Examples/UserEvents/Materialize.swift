import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitSQLite
import Foundation
import ServiceLifecycle

/// Keeps the latest state of a topic in a SQLite file, as a service.
struct Materialize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep the topic's latest state per user in a SQLite file (the durable embedded table).",
        discussion: """
            Runs until SIGINT/SIGTERM (or, with --exit-when-caught-up, until every partition is read to its end). \
            Each batch of events is written with the new positions in one transaction: stopped or killed at any \
            instant, a restart resumes exactly where the file ends. Other processes read the file meanwhile: \
            `snapshot --state FILE`, `history --state FILE`, `watch --state FILE`, or the sqlite3 shell \
            (`sqlite3 users.sqlite 'SELECT * FROM demo_users ORDER BY id'`).
            """
    )
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "The state file (created when missing; must belong to --topic).")
    var state: String
    @Flag(help: "Stop once every partition is read to its end (exit 0) instead of running as a service.")
    var exitWhenCaughtUp = false
    @Flag(
        help: """
            When the file's positions belong to another log than the topic holds now (the topic was deleted and \
            recreated, or the broker lost its data), empty the file and read the topic from its beginning instead \
            of stopping with an error.
            """
    )
    var rebuild = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard !state.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("--state must be a file path, e.g. users.sqlite")
        }
    }

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let store = try SQLiteStateStore<DemoUser>(configuration: .init(path: state, source: kafka.topic))
            let positions = try await store.positions()
            let materializer = try await KafkaMaterializer(
                configuration: .init(kafka: try kafka.configuration(), topic: kafka.topic),
                store: store,
                onMalformed: { message in printError("skipped \(message)") },
                onSourceEvent: { event in
                    if case .recovered = event { printError("\(event)") } else { printError("warning: \(event)") }
                },
                rebuildOnIncompatibleTopic: rebuild
            )
            let current = try await store.positions()
            if !positions.isEmpty, current.isEmpty {
                try Console.error.line(
                    "rebuilt \(state): its positions (\(Self.describe(positions))) belonged to another log"
                )
            }
            let resumed = current.isEmpty ? "the beginning" : "stored positions \(Self.describe(current))"
            try Console.error.line("materializing '\(kafka.topic)' into \(state) from \(resumed)")
            let progress = ProgressReporter(total: nil, unit: "events", verb: "applied")
            let clock = ContinuousClock()
            let start = clock.now
            let signal = try await runUntilInterrupted([
                .init(service: materializer, successTerminationBehavior: .gracefullyShutdownGroup),
                // A warning that could not be written (stderr closed or full) stops the service too.
                .init(
                    service: ClosureService {
                        if let failure = await cancelWhenGracefulShutdown({ await Console.firstReportedFailure() }) {
                            throw failure
                        }
                    },
                    successTerminationBehavior: .gracefullyShutdownGroup
                ),
                // Ends once caught up: that stops the command with --exit-when-caught-up, while as a service the
                // materializer keeps following the topic. Last, so a shutdown stops it first: the others only
                // end when told to (or fail), never while the group waits for another to end.
                .init(
                    service: CatchUpReport(materializer: materializer, store: store, state: state, progress: progress),
                    successTerminationBehavior: exitWhenCaughtUp ? .gracefullyShutdownGroup : .ignore
                ),
            ])
            progress.finish()
            let elapsed = clock.now - start
            let interrupted = signal == nil ? "" : " (interrupted)"
            try Console.output.line(
                "Applied \(materializer.appliedEvents) events to \(state) in \(ProgressReporter.text(elapsed))\(interrupted); positions \(Self.describe(try await store.positions()))"
            )
            if let signal { throw ExitCode(interruptedBy: signal) }
        }
    }

    /// `lag 12 (0:0, 1:12)`: the total and per partition, as librdkafka last saw the partitions' ends.
    static func describeLag(_ lag: [Int32: Int64]) -> String? {
        guard !lag.isEmpty else { return nil }
        let parts = lag.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ", ")
        return "lag \(lag.values.reduce(0, +)) (\(parts))"
    }

    static func describe(_ positions: [Int32: Int64]) -> String {
        positions.isEmpty
            ? "none" : positions.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: ", ")
    }
}

/// Shows the materializer's progress on stderr until it has caught up with the topic, then says so in one line
/// and ends; or ends when the group shuts down first.
private struct CatchUpReport: Service {
    let materializer: KafkaMaterializer<SQLiteStateStore<DemoUser>>
    let store: SQLiteStateStore<DemoUser>
    let state: String
    let progress: ProgressReporter

    func run() async throws {
        let caughtUp = await cancelWhenGracefulShutdown { [materializer, progress] in
            while !materializer.isCaughtUp {
                progress.update(materializer.appliedEvents, detail: Materialize.describeLag(materializer.lag))
                do { try await Task.sleep(for: .milliseconds(250)) } catch { return false }
            }
            return true
        }
        guard caughtUp else { return }
        progress.finish()
        let lag = Materialize.describeLag(materializer.lag).map { ", \($0)" } ?? ""
        try Console.error.line(
            "caught up: \(materializer.appliedEvents) events applied, \(try await store.count()) users in \(state)\(lag)"
        )
    }
}
