import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave
import DeltaKitSQLite
import Foundation

/// Where the reading commands get state from.
struct SourceOptions: ParsableArguments {
    @Option(help: "Read from RisingWave at this URL (e.g. postgres://root@localhost:4566/dev).")
    var risingwave: String?
    @Option(help: "Or read the topic from these Kafka brokers, materializing it in-process until caught up.")
    var brokers: String?
    @Option(help: "Or read the SQLite state file that `materialize --state FILE` keeps (also while it runs).")
    var state: String?
    @Option(
        name: .customLong("topic"),
        help: """
            The topic (default user-events). With --risingwave it selects the objects' names; with --state the \
            file records its topic, and --topic only checks it.
            """
    )
    var topicOption: String?
    @Option(parsing: .unconditional, help: "Seconds to wait for a broker or database before giving up (1…3600).")
    var connectTimeout: Int = 10

    func validate() throws {
        guard [risingwave, brokers, state].compactMap({ $0 }).count == 1 else {
            throw ValidationError("pass exactly one of --risingwave URL, --brokers HOST:PORT or --state FILE")
        }
        if let state, state.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--state must be a file path, e.g. users.sqlite")
        }
        try validateConnectTimeout(connectTimeout)
        if let brokers { try validateBrokers(brokers) }
        if let risingwave {
            do {
                try RisingWaveConnection.Configuration(url: risingwave).validate()
            } catch let error as DeltaKitError {
                throw ValidationError("--risingwave: \(error.message)")
            }
        }
    }

    /// The topic read from Kafka or RisingWave.
    var topic: String { topicOption ?? "user-events" }

    var kafka: KafkaConfiguration { .userEvents(brokers: brokers ?? "", connectTimeout: connectTimeout) }

    func risingWaveStore() async throws -> RisingWaveStateStore<DemoUser> {
        let connection = try await RisingWaveConnection(
            configuration: .init(url: risingwave!, connectTimeout: .seconds(connectTimeout))
        )
        return RisingWaveStateStore(
            connection: connection,
            pipeline: try RisingWavePipeline<DemoUser>.userEvents(topic: topic)
        )
    }

    /// The state file, opened read-only (the materializer may be writing it), for the topic it records (checked
    /// against --topic when given).
    func stateStore(feedPollInterval: Duration = .milliseconds(100)) throws -> SQLiteStateStore<DemoUser> {
        try SQLiteStateStore(
            configuration: .init(
                path: state!,
                source: topicOption,
                feedPollInterval: feedPollInterval,
                readOnly: true
            )
        )
    }

    /// Reads the whole topic into memory (no consumer group), reporting malformed messages on stderr.
    func materialized(historyLimit: Int) async throws -> InMemoryStateStore<DemoUser> {
        let store = try InMemoryStateStore<DemoUser>(historyLimit: historyLimit)
        let progress = ProgressReporter(total: nil, unit: "events", verb: "read")
        defer { progress.finish() }
        try await KafkaMaterializer.materialize(
            .init(kafka: kafka, topic: topic, groupID: nil),
            into: store,
            onMalformed: { message in
                progress.interrupt { printError("skipped \(message)") }
            },
            progress: { count in progress.update(count) }
        )
        return store
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the latest state per user, ordered by id.")
    @OptionGroup var source: SourceOptions
    @Option(help: "table, csv (id,name,age lines, no header) or json.")
    var format: OutputFormat = .table
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let users: [DemoUser]
            if source.risingwave != nil {
                users = try await source.risingWaveStore().snapshot()
            } else if source.state != nil {
                users = try await source.stateStore().snapshot()
            } else {
                users = try await source.materialized(historyLimit: 0).snapshot()
            }
            switch format {
            case .table: try Console.output.line(Render.snapshotTable(users))
            case .csv: try Console.output.lines(Render.csv(users))
            case .json: try Console.output.line(try Render.json(users))
            }
        }
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the most recent events, newest first.")
    @OptionGroup var source: SourceOptions
    @Option(parsing: .unconditional, help: "How many events (0…100,000).")
    var limit = 20
    @Option(help: "table, csv (event_order,op,id,name,age,ts lines) or json.")
    var format: OutputFormat = .table
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...100_000).contains(limit) else { throw ValidationError("--limit must be 0…100,000, got \(limit)") }
    }

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let events: [ChangeEvent<DemoUser>]
            if source.risingwave != nil {
                events = try await source.risingWaveStore().history(limit: limit)
            } else if source.state != nil {
                events = try await source.stateStore().history(limit: limit)
            } else {
                events = try await source.materialized(historyLimit: limit).history(limit: limit)
            }
            switch format {
            case .table: try Console.output.line(Render.historyTable(events))
            case .csv:
                try Console.output.lines(
                    events.map { e in
                        "\(e.order),\(e.operation.rawValue),\(e.key),\(Render.csvField(e.record?.name)),\(e.record.map { "\($0.age)" } ?? ""),\(EventTimestamp.format(e.timestamp))"
                    }
                )
            case .json: try Console.output.line(try Render.json(events))
            }
        }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print live changes to the latest state until Ctrl-C.")
    @OptionGroup var source: SourceOptions
    @Option(help: "table, csv (change,id,name,age lines) or json lines.")
    var format: OutputFormat = .table
    @Flag(
        help:
            "Only changes made from now on (default: print the current state as inserts first). With --brokers the topic is still read to the end first, so changes are reported against the current state."
    )
    var fromNow = false
    @Option(parsing: .unconditional, help: "With --state: milliseconds between reads of the file (10…60,000).")
    var pollInterval = 500
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (10...60_000).contains(pollInterval) else {
            throw ValidationError("--poll-interval must be 10…60,000 milliseconds, got \(pollInterval)")
        }
    }

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            if source.risingwave != nil {
                let store = try await source.risingWaveStore()
                for try await element in try await store.changes(from: fromNow ? .now : .snapshot) {
                    try print(element.change)
                }
            } else if source.state != nil {
                try await watchFile()
            } else {
                try await watchKafka()
            }
        }
    }

    /// Materializes the topic in process, then follows the store's change feed: from the current state
    /// (every user as an insert) or, with --from-now, only later changes — which are still reported against
    /// the current state, so an update is an update and a delete of an existing user is shown.
    func watchKafka() async throws {
        let store = try InMemoryStateStore<DemoUser>(historyLimit: 0)
        let source = try await KafkaEventSource<DemoUser>(
            configuration: .init(kafka: source.kafka, topic: source.topic),
            onMalformed: { message in printError("skipped \(message)") },
            onSourceEvent: { event in
                let prefix = if case .recovered = event { "" } else { "warning: " }
                printError("\(prefix)\(event)")
            }
        )
        let materializer = try KafkaMaterializer(source: source, store: store)
        // Whichever ends first ends the command: the feed, or the materializer with its error (the topic was
        // recreated under it, say), which must not stay unread behind a feed that waits for ever.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await materializer.run() }
            group.addTask {
                await materializer.waitUntilCaughtUp()
                for try await element in try await store.changes(from: fromNow ? .now : .snapshot) {
                    try print(element.change)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Follows a state file another process writes, through the file's change feed (polled every
    /// `--poll-interval`): the current state as inserts first unless --from-now, then each change.
    func watchFile() async throws {
        let store = try source.stateStore(feedPollInterval: .milliseconds(pollInterval))
        for try await element in try await store.changes(from: fromNow ? .now : .snapshot) {
            try print(element.change)
        }
    }

    func print(_ change: StateChange<DemoUser>) throws(OutputError) {
        // A warning that could not be written (stderr closed) stops the watch at its next change.
        try Console.checkReported()
        switch format {
        case .json:
            let record =
                change.record.map { #"{"id":\#($0.id),"name":\#(Render.jsonString($0.name)),"age":\#($0.age)}"# }
                ?? "null"
            try Console.output.line(#"{"change":"\#(change.kind.rawValue)","id":\#(change.key),"record":\#(record)}"#)
        case .csv:
            try Console.output.line(
                "\(change.kind.rawValue),\(change.key),\(Render.csvField(change.record?.name)),\(change.record.map { "\($0.age)" } ?? "")"
            )
        case .table:
            let text = change.record.map { "\(Render.cell($0.name)), \($0.age)" } ?? ""
            try Console.output.line(
                "\(change.kind.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)) id=\(change.key) \(text)"
            )
        }
    }
}
