import ArgumentParser
import DeltaKit
import DeltaKitHTTP
import Foundation
import Hummingbird
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The served side of the fan-out and reads benchmarks, in a process of its own so that its memory is its own:
/// an `InMemoryStateStore<Tick>` served as table `ticks`.
///
/// With `--control` it reads commands on standard input and answers on standard output:
/// - `paced RATE SECONDS`: applies RATE changes a second for SECONDS, one `apply` call each, as a materializer
///   fed at that rate would; answers `done COUNT ACHIEVED_PER_S MEAN_APPLY_µS` — the mean time inside `apply` is
///   the cost a reader could add to the materializer (its rate is at most one over it);
/// - `quit`.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve an in-memory store of ticks; prints `listening PORT`."
    )
    @Option var port = 0
    @Option(help: "Keys inserted before serving (for the reads benchmark).") var keys = 0
    @Option(help: "Distinct keys the paced changes cycle through.") var changeKeys = 100
    @Flag(help: "Read commands on standard input.") var control = false

    func run() async throws {
        let store = try InMemoryStateStore<Tick>(historyLimit: 0, changeBufferLimit: 100_000)
        if keys > 0 {
            try await store.apply(
                contentsOf: (0..<keys).map { .insert(Tick(id: $0, seq: $0, at: 0), order: Int64($0) + 1) }
            )
        }
        let server = try StateServer(tables: [ServedTable("ticks", store: store)])
        var logger = Logger(label: "HTTPBenchmarks")
        logger.logLevel = .warning
        let (ports, announce) = AsyncStream.makeStream(of: Int.self)
        let app = server.application(host: "127.0.0.1", port: port, logger: logger) { announce.yield($0) }
        let serving = Task { try await app.runService() }
        var iterator = ports.makeAsyncIterator()
        guard let listening = await iterator.next() else { return }
        say("listening \(listening)")
        guard control else {
            try await serving.value
            return
        }
        let clock = ContinuousClock()
        var seq = keys
        for await line in standardInputLines() {
            let words = line.split(separator: " ")
            switch words.first {
            case "paced":
                guard words.count == 3, let rate = Int(words[1]), let duration = Int(words[2]), rate > 0 else {
                    say("error bad command '\(line)'")
                    continue
                }
                let total = rate * duration
                let interval = Duration.seconds(1) / rate
                var applying = Duration.zero
                let start = clock.now
                for index in 0..<total {
                    try await clock.sleep(until: start + interval * index)
                    seq += 1
                    let before = clock.now
                    try await store.apply(
                        .update(Tick(id: seq % changeKeys, seq: seq, at: wallMicros()), order: Int64(seq))
                    )
                    applying += clock.now - before
                }
                let elapsed = seconds(clock.now - start)
                say(
                    "done \(total) \(String(format: "%.2f", Double(total) / elapsed)) \(String(format: "%.3f", seconds(applying) / Double(total) * 1e6))"
                )
            case "quit":
                say("bye")
                Glibc.exit(0)
            default:
                say("error unknown command '\(line)'")
            }
        }
        Glibc.exit(0)
    }
}

/// Hummingbird's own plain-text route — the framework's floor for the reads goal: `GET /plaintext` answers
/// `Hello, World!`, as in the TechEmpower benchmark. Prints `listening PORT`.
struct Plaintext: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve GET /plaintext → Hello, World!")
    @Option var port = 0

    func run() async throws {
        let router = Router()
        router.get("/plaintext") { _, _ in "Hello, World!" }
        var logger = Logger(label: "HTTPBenchmarks.plaintext")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname("127.0.0.1", port: port),
                serverName: "DeltaKit"
            ),
            onServerRunning: { channel in say("listening \(channel.localAddress?.port ?? port)") },
            logger: logger
        )
        try await app.runService()
    }
}

/// Prints a line and flushes it (standard output is a pipe to the driver).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The lines of standard input, read on a thread of their own.
func standardInputLines() -> AsyncStream<String> {
    let (stream, continuation) = AsyncStream.makeStream(of: String.self)
    Thread.detachNewThread {
        while let line = readLine() { continuation.yield(line) }
        continuation.finish()
    }
    return stream
}
