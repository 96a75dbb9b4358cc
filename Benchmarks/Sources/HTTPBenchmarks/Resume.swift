import ArgumentParser
import DeltaKit
import DeltaKitHTTP
import DeltaKitSQLite
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Resume: a change-stream client that is dropped every `every` events and reconnects with `Last-Event-ID`, while
/// `changes` changes are applied; it must see each change exactly once. Server and client in one process, over
/// a real socket.
struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Drop a change-stream client every N events while changes are applied; prints `changes received distinct repeats gaps connections seconds`."
    )
    @Option var changes = 10_000
    @Option(help: "Events a connection reads before the client drops it.") var every = 100
    @Option(help: "Changes applied per second.") var rate = 2_000
    @Option(help: "The store: memory or sqlite.") var store = "memory"
    @Flag(help: "With sqlite: hold a feed of the file open for the whole run.") var holdFeed = false

    func run() async throws {
        let table: ServedTable
        let apply: @Sendable ([ChangeEvent<Tick>]) async throws -> Void
        var directory: URL?
        var heldFeed: SQLiteChangeFeed<Tick>?
        switch store {
        case "memory":
            let memory = try InMemoryStateStore<Tick>(historyLimit: 0, changeBufferLimit: changes + 1)
            table = ServedTable("ticks", store: memory)
            apply = { try await memory.apply(contentsOf: $0) }
        case "sqlite":
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("http-resume-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            directory = url
            let sqlite = try SQLiteStateStore<Tick>(
                configuration: .init(
                    path: url.appendingPathComponent("ticks.sqlite").path,
                    source: "ticks",
                    feedPollInterval: .milliseconds(10)
                )
            )
            table = ServedTable("ticks", store: sqlite)
            // A SQLite file records changes only while a feed of it is open: with `--hold-feed`, one is held (never
            // read, so it costs no polling) for the whole run, so a client that is away can still resume.
            if holdFeed { heldFeed = try await sqlite.changes(from: .now) }
            apply = { try await sqlite.apply(contentsOf: $0) }
        default:
            throw ValidationError("--store is memory or sqlite")
        }
        defer { if let directory { try? FileManager.default.removeItem(at: directory) } }

        var logger = Logger(label: "HTTPBenchmarks.resume")
        logger.logLevel = .critical
        let (ports, announce) = AsyncStream.makeStream(of: Int.self)
        let app = try StateServer(tables: [table]).application(port: 0, logger: logger) { announce.yield($0) }
        let serving = Task { try await app.runService() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { return }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tally = Tally(changes: changes)
        let clock = ContinuousClock()
        let start = clock.now
        let (opened, open) = AsyncStream.makeStream(of: Void.self)
        let applying = Task {
            var waitOpen = opened.makeAsyncIterator()
            await waitOpen.next()  // the first connection is open: every change is after its start
            let interval = Duration.seconds(1) / rate
            let begin = clock.now
            var seq = 0
            while seq < changes {
                try await clock.sleep(until: begin + interval * seq)
                // What fell due while sleeping goes in one batch, as a materializer's would.
                let due = min(changes, max(seq + 1, Int(seconds(clock.now - begin) * Double(rate)) + 1))
                try await apply(
                    (seq..<due).map { .update(Tick(id: $0 % 100, seq: $0, at: wallMicros()), order: Int64($0) + 1) }
                )
                seq = due
            }
            tally.finishedApplying()
        }

        // A gap would leave the client waiting for a change that never comes: end it after 10 quiet seconds.
        let watchdog = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                if tally.stalled(after: .seconds(10)) {
                    tally.closeCurrent()
                    return
                }
            }
        }
        var connections = 0
        while !tally.complete {
            connections += 1
            let lastID = tally.lastID
            let path = "/v1/tables/ticks/changes" + (lastID == nil ? "?from=now" : "")
            let every = self.every
            let channel = try await connectSSE(on: group.next(), port: port) {
                SSEHandler(
                    path: path,
                    headers: lastID.map { [("Last-Event-ID", $0)] } ?? [],
                    onOpen: { _ in open.yield() },
                    onEvent: { event in tally.record(event, every: every) }
                )
            }.get()
            tally.newConnection(channel)
            try await channel.closeFuture.get()
            if tally.stalled(after: .seconds(10)) { break }
        }
        open.finish()
        watchdog.cancel()
        try await applying.value
        let elapsed = seconds(clock.now - start)
        serving.cancel()
        try? await group.shutdownGracefully()
        let result = tally.result
        withExtendedLifetime(heldFeed) {}
        print(
            "\(changes) \(result.received) \(result.distinct) \(result.repeats) \(changes - result.distinct) \(connections) \(String(format: "%.1f", elapsed))"
        )
    }
}

/// What the resume client saw, shared between its event loop and the driver.
final class Tally: Sendable {
    private struct State {
        var seen: [UInt8]
        var received = 0
        var distinct = 0
        var repeats = 0
        var lastID: String?
        var onThisConnection = 0
        var applied = false
        var lastProgress = ContinuousClock.now
        var channel: (any Channel)?
    }
    private let state: Mutex<State>
    private let changes: Int

    init(changes: Int) {
        self.changes = changes
        state = Mutex(State(seen: [UInt8](repeating: 0, count: changes)))
    }

    var lastID: String? { state.withLock { $0.lastID } }
    var complete: Bool { state.withLock { $0.applied && $0.distinct == changes } }
    var result: (received: Int, distinct: Int, repeats: Int) {
        state.withLock { ($0.received, $0.distinct, $0.repeats) }
    }

    func finishedApplying() {
        let channel = state.withLock { state -> (any Channel)? in
            state.applied = true
            return state.distinct == changes ? state.channel : nil
        }
        channel?.close(promise: nil)
    }

    func closeCurrent() {
        state.withLock { $0.channel }?.close(promise: nil)
    }

    func newConnection(_ channel: any Channel) {
        state.withLock {
            $0.onThisConnection = 0
            $0.channel = channel
        }
    }

    /// Whether the changes are all applied and nothing arrived for `quiet` (a gap the client waits on forever).
    func stalled(after quiet: Duration) -> Bool {
        state.withLock { $0.applied && ContinuousClock.now - $0.lastProgress > quiet }
    }

    /// Counts an event; `false` (drop the connection) after `every` events on this connection, or at the end.
    func record(_ event: ReceivedEvent, every: Int) -> Bool {
        let seq = event.data.withUnsafeBufferPointer { integerField(Array(#""seq":"#.utf8), in: $0) }
        return state.withLock { state in
            state.lastProgress = .now
            if let id = event.id { state.lastID = id }
            guard let seq, seq >= 0, seq < changes else { return true }
            state.received += 1
            if state.seen[Int(seq)] == 0 {
                state.distinct += 1
            } else {
                state.repeats += 1
            }
            state.seen[Int(seq)] &+= 1
            state.onThisConnection += 1
            if state.applied && state.distinct == changes { return false }
            return state.onThisConnection < every
        }
    }
}
