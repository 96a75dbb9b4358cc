import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave
import DeltaKitSQLite
import DeltaKitTesting
import Foundation

#if canImport(Glibc)
import Glibc
#endif

@main
struct Benchmarks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "DeltaKitBenchmarks",
        abstract: "DeltaKit benchmarks (driven by Benchmarks/run).",
        subcommands: [
            Generate.self, Produce.self, Snapshot.self, Encode.self, DecodeApply.self, Materialize.self,
            SQLiteRestart.self, SQLiteMemory.self, Latency.self,
        ]
    )
}

/// The benchmark's events: the demo's shape, 1,000 users by default, reproducible.
func benchmarkEvents(_ count: Int, users: Int = 1_000) -> [ChangeEvent<DemoUser>] {
    var generator = DemoEventGenerator(seed: 2026, users: users, startOrder: 1_732_500_000_000_000)
    return generator.next(count)
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the events as `key<TAB>json` lines (the key as the sink writes it) for kcat and Python."
    )
    @Option var count = 200_000
    @Option(help: "Distinct users (keys).") var users = 1_000
    @Option var out: String

    func run() throws {
        var text = ""
        text.reserveCapacity(count * 140)
        for event in benchmarkEvents(count, users: users) {
            // An integer key's message key is its decimal text, as KafkaEventSink writes it.
            text += "\(event.key)\t"
            text += String(decoding: try event.jsonData(), as: UTF8.self) + "\n"
        }
        try text.write(toFile: out, atomically: true, encoding: .utf8)
    }
}

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish the events with KafkaEventSink; prints `events/s cpu_seconds`."
    )
    @Option var brokers: String
    @Option var topic: String
    @Option var count = 200_000
    @Option(help: "Events per send(contentsOf:) call; 0 sends them all in one call.") var batch = 0
    @Option(help: "The sink's local queue bound (queue.buffering.max.messages).") var queueMax = 100_000

    func run() async throws {
        let events = benchmarkEvents(count)
        let cpu = processCPUSeconds()
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(kafka: .init(bootstrapServers: [brokers]), topic: topic, queueMaxMessages: queueMax)
        )
        let clock = ContinuousClock()
        let start = clock.now
        var index = 0
        while index < events.count {
            let end = batch > 0 ? min(index + batch, events.count) : events.count
            try await sink.send(contentsOf: Array(events[index..<end]))
            index = end
        }
        try await sink.flush()
        let elapsed = clock.now - start
        try await sink.close()
        // events/s from the first send to the last acknowledgement, and the process's CPU seconds (every thread,
        // librdkafka's included) from creating the sink to closing it: encoding, producing and delivery reports.
        print(String(format: "%.0f %.3f", Double(count) / seconds(elapsed), processCPUSeconds() - cpu))
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read a view's snapshot with RisingWaveStateStore; prints rows/s."
    )
    @Option var url: String
    @Option var source: String
    @Option var view: String
    @Option var expect = 100_000

    func run() async throws {
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(topic: "user-events", sourceName: source, viewName: view)
        )
        let store = RisingWaveStateStore(connection: connection, pipeline: pipeline)
        let clock = ContinuousClock()
        let start = clock.now
        var rows = 0
        for try await _ in store.snapshotRecords() { rows += 1 }
        let elapsed = clock.now - start
        guard rows == expect else { throw ValidationError("read \(rows) rows, expected \(expect)") }
        print(String(format: "%.0f", Double(rows) / seconds(elapsed)))
    }
}

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode the events (their wire JSON, jsonData()) without Kafka; prints events/s."
    )
    @Option var count = 200_000

    func run() throws {
        let events = benchmarkEvents(count)
        var bytes = 0
        let clock = ContinuousClock()
        let start = clock.now
        for event in events {
            bytes += try event.jsonData().count
        }
        let elapsed = clock.now - start
        print(String(format: "%.0f events/s (%d bytes)", Double(count) / seconds(elapsed), bytes))
    }
}

/// CPU seconds (user + system) used by this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    return user + system
}

struct DecodeApply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Decode pre-encoded events and apply them to an InMemoryStateStore (or a SQLiteStateStore), without Kafka; prints CPU µs/event."
    )
    @Option var count = 500_000
    @Option(help: "Events per store call (as a materializer hands them over); 1 applies them one by one.")
    var batch = 2_000

    @Option(help: "Apply to a fresh SQLiteStateStore at this path (with positions, as a materializer does).")
    var sqlite: String?

    func run() async throws {
        let messages = try benchmarkEvents(count).map { Array(try $0.jsonData()) }
        let memory = try InMemoryStateStore<DemoUser>(historyLimit: 20)
        var file: SQLiteStateStore<DemoUser>?
        if let sqlite {
            try? FileManager.default.removeItem(atPath: sqlite)
            file = try SQLiteStateStore<DemoUser>(configuration: .init(path: sqlite, source: "bench", historyLimit: 20))
        }
        let cpu = processCPUSeconds()
        let clock = ContinuousClock()
        let start = clock.now
        var pending: [ChangeEvent<DemoUser>] = []
        pending.reserveCapacity(batch)
        var applied: Int64 = 0
        func flush() async throws {
            applied += Int64(pending.count)
            if let file {
                try await file.apply(contentsOf: pending, positions: [0: applied])
            } else {
                try await memory.apply(contentsOf: pending)
            }
            pending.removeAll(keepingCapacity: true)
        }
        for message in messages {
            pending.append(try ChangeEvent<DemoUser>(jsonData: message))
            if pending.count >= batch { try await flush() }
        }
        try await flush()
        let elapsed = clock.now - start
        let used = processCPUSeconds() - cpu
        print(
            String(
                format: "%.2f CPU µs/event, %.0f events/s",
                used * 1e6 / Double(count),
                Double(count) / seconds(elapsed)
            )
        )
    }
}

struct Materialize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Read a topic from the beginning into a store until caught up; prints `events cpu_seconds wall_seconds`."
    )
    @Option var brokers: String
    @Option var topic: String
    @Option(help: "memory (InMemoryStateStore) or a SQLite file path (SQLiteStateStore, created fresh).")
    var store = "memory"
    @Option(help: "The source's bufferSize.") var bufferSize = 10_000
    @Flag(help: "Keep an existing SQLite file and resume from its positions (default: start a fresh file).")
    var keep = false
    @Option(help: "librdkafka fetch.wait.max.ms (empty: librdkafka's default).") var fetchWaitMs: Int?

    func run() async throws {
        var kafka = KafkaConfiguration(bootstrapServers: [brokers])
        if let fetchWaitMs { kafka.additionalProperties["fetch.wait.max.ms"] = String(fetchWaitMs) }
        let configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: kafka,
            topic: topic,
            bufferSize: bufferSize
        )
        let cpu = processCPUSeconds()
        let clock = ContinuousClock()
        let start = clock.now
        let count: Int
        if store == "memory" {
            count = try await KafkaMaterializer.materialize(
                configuration,
                into: InMemoryStateStore<DemoUser>(historyLimit: 20)
            )
        } else {
            if !keep { try? FileManager.default.removeItem(atPath: store) }
            let sqlite = try SQLiteStateStore<DemoUser>(
                configuration: .init(path: store, source: topic, historyLimit: 20)
            )
            count = try await KafkaMaterializer.materialize(configuration, into: sqlite)
        }
        let elapsed = clock.now - start
        print(String(format: "%d %.3f %.3f", count, processCPUSeconds() - cpu, seconds(elapsed)))
    }
}

/// Peak resident memory of this process, in MiB (Linux reports `ru_maxrss` in KiB).
func peakResidentMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// `keys` distinct users, as inserts in order.
func distinctInserts(_ range: Range<Int>) -> [ChangeEvent<DemoUser>] {
    let ts = Date(timeIntervalSince1970: 1_732_500_000)
    return range.map {
        .insert(DemoUser(id: $0, name: "user \($0)", age: 20 + $0 % 50), order: Int64($0) + 1, timestamp: ts)
    }
}

/// The benchmarks' state file (topic `bench`, a short history).
func benchmarkSQLiteStore(_ path: String) throws -> SQLiteStateStore<DemoUser> {
    try SQLiteStateStore(configuration: .init(path: path, source: "bench", historyLimit: 20))
}

/// Applies `keys` distinct inserts in batches of 2,000, each with its position, as a materializer would.
func fillDistinct(_ store: SQLiteStateStore<DemoUser>, keys: Int) async throws {
    var next = 0
    while next < keys {
        let end = min(next + 2_000, keys)
        try await store.apply(contentsOf: distinctInserts(next..<end), positions: [0: Int64(end)])
        next = end
    }
}

struct SQLiteRestart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sqlite-restart",
        abstract:
            "Fill a SQLite state file with KEYS keys (batches of 2,000 with positions), then time a restart: open the file and serve the first value(forKey:). Prints `fill_seconds restart_seconds`."
    )
    @Option var path: String
    @Option var keys = 1_000_000

    func run() async throws {
        try? FileManager.default.removeItem(atPath: path)
        let clock = ContinuousClock()
        let fillStart = clock.now
        try await fillDistinct(benchmarkSQLiteStore(path), keys: keys)  // closed before the restart below
        let fill = clock.now - fillStart
        let restartStart = clock.now
        let store = try benchmarkSQLiteStore(path)
        let value = try await store.value(forKey: keys / 2)
        let restart = clock.now - restartStart
        guard value?.id == keys / 2 else { throw ExitCode(1) }
        print(String(format: "%.3f %.4f", seconds(fill), seconds(restart)))
    }
}

struct SQLiteMemory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sqlite-memory",
        abstract:
            "Apply KEYS distinct keys to a SQLite state file in batches of 2,000; prints `keys peak_rss_mib seconds`."
    )
    @Option var path: String
    @Option var keys = 5_000_000

    func run() async throws {
        try? FileManager.default.removeItem(atPath: path)
        let clock = ContinuousClock()
        let start = clock.now
        let store = try benchmarkSQLiteStore(path)
        try await fillDistinct(store, keys: keys)
        guard try await store.count() == keys else { throw ExitCode(1) }
        print(String(format: "%d %.1f %.1f", keys, peakResidentMiB(), seconds(clock.now - start)))
    }
}
