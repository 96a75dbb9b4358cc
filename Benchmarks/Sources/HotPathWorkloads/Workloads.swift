@_spi(Benchmarks) import DeltaKit
import DeltaKitSQLite
import Foundation

/// One micro-benchmark of DeltaKit's hot path, through its public API only: each iteration processes one batch of
/// ``eventsPerIteration`` events, so that a count per iteration divided by that is a count per event.
///
/// A workload is driven in two steps so that measuring leaves out making its input: ``prepare(iterations:)`` makes
/// the input of the next iterations (events with new orders, their wire JSON), then each ``run()`` processes the
/// next prepared batch. Not thread-safe: one driver runs one workload's iterations one after the other.
public protocol Workload: AnyObject {
    /// The workload's name, as the runners and the baseline file spell it.
    var name: String { get }
    /// Events processed by one ``run()``.
    var eventsPerIteration: Int { get }
    /// Makes the input of the next `iterations` runs (replacing what is left of earlier input).
    func prepare(iterations: Int) throws
    /// Processes the next prepared batch.
    func run() async throws
    /// A value computed from every result, printed by the runners so that no work can be optimized away.
    var checksum: Int { get }
}

/// The micro-benchmarks, by name.
public enum Workloads {
    /// What each workload measures, in the order the runners print them.
    public static let descriptions: KeyValuePairs<String, String> = [
        "decode": "wire JSON → ChangeEvent<BenchUser> (ChangeEvent(jsonData:))",
        "encode": "ChangeEvent<BenchUser> → wire JSON (jsonData())",
        "apply-memory": "apply(contentsOf:) of decoded events to InMemoryStateStore<BenchUser> (historyLimit 0)",
        "apply-sqlite": "apply(contentsOf:positions:) of decoded events to SQLiteStateStore<BenchUser> (defaults)",
        "decode-apply-memory": "decode + apply to InMemoryStateStore<BenchUser> (a materializer without Kafka)",
        "decode-apply-scalar": "decode + apply to InMemoryStateStore<Reading> (scalar fields only)",
        "rows-decode-apply":
            "wire JSON → rows → InMemoryStateStore<BenchUser>: a KafkaMaterializer's path (WireIntake)",
        "rows-decode-apply-scalar": "the same for Reading (scalar fields only): the goal of 0 mallocs per event",
    ]

    /// The workloads' names.
    public static var names: [String] { descriptions.map(\.key) }

    /// Makes the workload `name` with batches of `events` events over `keys` keys; a SQLite workload keeps its
    /// file in `directory` (created fresh).
    public static func make(
        _ name: String,
        events: Int,
        keys: Int,
        directory: String
    ) throws -> any Workload {
        switch name {
        case "decode": return try Decode<BenchUser>(name: name, events: events, keys: keys)
        case "encode": return Encode<BenchUser>(name: name, events: events, keys: keys)
        case "apply-memory":
            return try Apply<BenchUser>(name: name, events: events, keys: keys, store: .memory)
        case "apply-sqlite":
            let path = (directory as NSString).appendingPathComponent("apply-sqlite.sqlite")
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            let store = try SQLiteStateStore<BenchUser>(configuration: .init(path: path, source: "bench"))
            return try Apply<BenchUser>(name: name, events: events, keys: keys, store: .sqlite(store))
        case "decode-apply-memory": return try DecodeApply<BenchUser>(name: name, events: events, keys: keys)
        case "decode-apply-scalar": return try DecodeApply<Reading>(name: name, events: events, keys: keys)
        case "rows-decode-apply": return try RowsDecodeApply<BenchUser>(name: name, events: events, keys: keys)
        case "rows-decode-apply-scalar": return try RowsDecodeApply<Reading>(name: name, events: events, keys: keys)
        default:
            throw UnknownWorkload(name: name)
        }
    }

    /// A name that is not one of ``names``.
    public struct UnknownWorkload: Error, CustomStringConvertible {
        /// The name asked for.
        public var name: String
        public var description: String {
            "no workload '\(name)'; the workloads are: \(Workloads.names.joined(separator: ", "))"
        }
    }
}

/// Wire JSON → `ChangeEvent`: the same batch of messages every iteration (decoding keeps no state).
final class Decode<Record: BenchRecord>: Workload {
    let name: String
    let eventsPerIteration: Int
    private let messages: [[UInt8]]
    private var decoded: [ChangeEvent<Record>] = []
    private(set) var checksum = 0

    init(name: String, events: Int, keys: Int) throws {
        self.name = name
        eventsPerIteration = events
        var stream = EventStream<Record>(keys: keys)
        messages = try stream.nextMessages(events)
        decoded.reserveCapacity(events)
    }

    func prepare(iterations: Int) {}

    func run() throws {
        decoded.removeAll(keepingCapacity: true)
        for message in messages {
            decoded.append(try ChangeEvent<Record>(jsonData: message))
        }
        checksum &+= Int(truncatingIfNeeded: decoded[decoded.count - 1].order)
    }
}

/// `ChangeEvent` → wire JSON: the same batch of events every iteration.
final class Encode<Record: BenchRecord>: Workload {
    let name: String
    let eventsPerIteration: Int
    private let events: [ChangeEvent<Record>]
    private(set) var checksum = 0

    init(name: String, events: Int, keys: Int) {
        self.name = name
        eventsPerIteration = events
        var stream = EventStream<Record>(keys: keys)
        self.events = stream.next(events)
    }

    func prepare(iterations: Int) {}

    func run() throws {
        for event in events {
            checksum &+= try event.jsonData().count
        }
    }
}

/// Where an apply workload applies: an `InMemoryStateStore` or a `SQLiteStateStore` (with positions, as a
/// materializer applies).
enum Target<Record: BenchRecord> {
    case memory
    case sqlite(SQLiteStateStore<Record>)
}

/// Decoded events → a store: each iteration applies the stream's next batch (new orders, so every event changes
/// the state as a live topic's would).
final class Apply<Record: BenchRecord>: Workload {
    let name: String
    let eventsPerIteration: Int
    private var stream: EventStream<Record>
    private let memory: InMemoryStateStore<Record>?
    private let sqlite: SQLiteStateStore<Record>?
    private var batches: [[ChangeEvent<Record>]] = []
    private var nextBatch = 0
    private var offset: Int64 = 0
    private(set) var checksum = 0

    init(name: String, events: Int, keys: Int, store: Target<Record>) throws {
        self.name = name
        eventsPerIteration = events
        stream = EventStream(keys: keys)
        switch store {
        case .memory:
            memory = try InMemoryStateStore(historyLimit: 0)
            sqlite = nil
        case .sqlite(let store):
            memory = nil
            sqlite = store
        }
    }

    func prepare(iterations: Int) {
        batches = (0..<iterations).map { _ in stream.next(eventsPerIteration) }
        nextBatch = 0
    }

    func run() async throws {
        let batch = batches[nextBatch]
        nextBatch += 1
        if let sqlite {
            offset += Int64(batch.count)
            try await sqlite.apply(contentsOf: batch, positions: [0: offset])
        } else {
            try await memory?.apply(contentsOf: batch)
        }
        checksum &+= batch.count
    }
}

/// Wire JSON → `ChangeEvent` → `InMemoryStateStore`, in one batch per iteration: what a materializer does with the
/// messages of one poll, without Kafka.
final class DecodeApply<Record: BenchRecord>: Workload {
    let name: String
    let eventsPerIteration: Int
    private var stream: EventStream<Record>
    private let store: InMemoryStateStore<Record>
    private var batches: [[[UInt8]]] = []
    private var nextBatch = 0
    private var pending: [ChangeEvent<Record>] = []
    private(set) var checksum = 0

    init(name: String, events: Int, keys: Int) throws {
        self.name = name
        eventsPerIteration = events
        stream = EventStream(keys: keys)
        store = try InMemoryStateStore(historyLimit: 0)
        pending.reserveCapacity(events)
    }

    func prepare(iterations: Int) throws {
        batches = try (0..<iterations).map { _ in try stream.nextMessages(eventsPerIteration) }
        nextBatch = 0
    }

    func run() async throws {
        pending.removeAll(keepingCapacity: true)
        for message in batches[nextBatch] {
            pending.append(try ChangeEvent<Record>(jsonData: message))
        }
        nextBatch += 1
        try await store.apply(contentsOf: pending)
        checksum &+= pending.count
    }
}

/// Wire JSON → rows → `InMemoryStateStore`, as `KafkaMaterializer` materializes a poll of messages (without Kafka):
/// the one-pass decoder and the store's non-generic apply, through `WireIntake` (SPI for this package).
final class RowsDecodeApply<Record: BenchRecord>: Workload {
    let name: String
    let eventsPerIteration: Int
    private var stream: EventStream<Record>
    private var intake: WireIntake<Record>
    private var batches: [[[UInt8]]] = []
    private var nextBatch = 0
    private(set) var checksum = 0

    init(name: String, events: Int, keys: Int) throws {
        self.name = name
        eventsPerIteration = events
        stream = EventStream(keys: keys)
        let store = try InMemoryStateStore<Record>(historyLimit: 0)
        guard let intake = WireIntake(store: store) else { throw NoRowLayout(record: "\(Record.self)") }
        self.intake = intake
    }

    func prepare(iterations: Int) throws {
        batches = try (0..<iterations).map { _ in try stream.nextMessages(eventsPerIteration) }
        nextBatch = 0
    }

    func run() throws {
        for message in batches[nextBatch] {
            let taken = message.withUnsafeBytes { intake.decode($0) }
            precondition(taken, "the one-pass decoder declined DeltaKit's own wire JSON")
        }
        nextBatch += 1
        intake.apply()
        checksum &+= eventsPerIteration
    }

    /// The record type keeps typed events (no row layout), so it has no row path to measure.
    struct NoRowLayout: Error, CustomStringConvertible {
        var record: String
        var description: String { "\(record) has no row layout" }
    }
}
