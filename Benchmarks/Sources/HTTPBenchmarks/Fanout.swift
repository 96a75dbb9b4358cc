import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Fan-out: `clients` change-stream clients on one server process (`serve --control`, started here) while it
/// applies `rate` changes a second. Measures the time from apply to delivery at every client, the server's peak
/// RSS, and what one stalled client does to the materializer's cost: a second paced run with one more client
/// that connects, asks for the stream and never reads (a small receive buffer, so that it stalls early).
///
/// The load client is NIO on `threads` event loops with a minimal SSE parser: it prints its own CPU use, to show
/// it is not the bottleneck.
struct Fanout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Fan-out to N SSE clients; prints `p50_ms p99_ms max_ms delivered expected peak_rss_mib achieved_rate stalled_achieved_rate apply_us stalled_apply_us client_cpu_percent server_cpu_us_per_delivery`."
    )
    @Option var clients = 1_000
    @Option(help: "Changes applied per second.") var rate = 100
    @Option(help: "Seconds of each paced run.") var seconds = 20
    @Option(help: "The load client's event-loop threads.") var threads = 1

    func run() async throws {
        let server = try ServerProcess(arguments: ["serve", "--control"])
        defer { server.stop() }
        let port = try await server.port()

        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let buckets = (0..<threads).map { _ in LatencyBucket() }
        let opened = Counter()
        let loops = Array(group.makeIterator())
        var channels: [any Channel] = []
        let atField = Array(#""at":"#.utf8)
        // In waves, so the listen backlog never overflows.
        for wave in stride(from: 0, to: clients, by: 100) {
            var futures: [EventLoopFuture<any Channel>] = []
            for index in wave..<min(clients, wave + 100) {
                let bucket = buckets[index % threads]
                futures.append(
                    connectSSE(on: loops[index % threads], port: port) {
                        SSEHandler(
                            path: "/v1/tables/ticks/changes?from=now",
                            onOpen: { status in if status == 200 { opened.value.add(1, ordering: .relaxed) } },
                            onEvent: { event in
                                let received = wallMicros()
                                if let at = event.data.withUnsafeBufferPointer({ integerField(atField, in: $0) }) {
                                    bucket.record(received - at)
                                }
                                return true
                            }
                        )
                    }
                )
            }
            for future in futures { channels.append(try await future.get()) }
        }
        let clock = ContinuousClock()
        let openDeadline = clock.now + .seconds(60)
        while opened.value.load(ordering: .relaxed) < clients {
            guard clock.now < openDeadline else {
                throw ValidationError(
                    "only \(opened.value.load(ordering: .relaxed)) of \(clients) streams opened in 60 s"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }

        // Run 1: every client reads.
        let cpuBefore = processCPUSeconds()
        let serverCPUBefore = processCPUSeconds(of: server.pid)
        let wallBefore = clock.now
        let normal = try await server.command("paced \(rate) \(seconds)")
        try await Task.sleep(for: .seconds(1))  // the last changes' deliveries
        let cpu = (processCPUSeconds() - cpuBefore) / Fanout.seconds(clock.now - wallBefore) * 100
        let serverCPU = processCPUSeconds(of: server.pid) - serverCPUBefore
        var latencies = buckets.flatMap { $0.drain() }
        latencies.sort()
        let applied = Int(normal[1]) ?? 0

        // Run 2: the same, plus one client that never reads.
        let stalled = try await connectSSE(on: loops[0], port: port, receiveBuffer: 4_096, autoRead: false) {
            SSEHandler(path: "/v1/tables/ticks/changes?from=now", onOpen: { _ in }, onEvent: { _ in true })
        }.get()
        let withStall = try await server.command("paced \(rate) \(seconds)")
        _ = buckets.map { $0.drain() }

        let memory = residentMiB(of: server.pid)
        try? await stalled.close()
        for channel in channels { try? await channel.close() }
        try? await group.shutdownGracefully()

        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            let index = min(latencies.count - 1, max(0, Int((Double(latencies.count) * p).rounded(.up)) - 1))
            return Double(latencies[index]) / 1_000
        }
        let figures = [
            String(format: "%.2f %.2f %.2f", percentile(0.5), percentile(0.99), Double(latencies.last ?? 0) / 1_000),
            "\(latencies.count) \(applied * clients)", String(format: "%.1f", memory.peak),
            "\(normal[2]) \(withStall[2]) \(normal[3]) \(withStall[3])", String(format: "%.0f", cpu),
            String(format: "%.2f", serverCPU * 1e6 / Double(max(1, latencies.count))),
        ]
        print(figures.joined(separator: " "))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// A counter shared with the event loops.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// Latencies (µs) recorded on one event loop.
final class LatencyBucket: Sendable {
    private let samples = Mutex<[Int64]>([])

    func record(_ micros: Int64) { samples.withLock { $0.append(micros) } }

    func drain() -> [Int64] {
        samples.withLock { samples in
            defer { samples = [] }
            return samples
        }
    }
}

/// This process's CPU time (user + system), in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Another process's CPU time (user + system, every thread), in seconds: `/proc/PID/stat`'s `utime` and `stime`.
func processCPUSeconds(of pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let end = stat.lastIndex(of: ")")
    else { return 0 }
    // After the command's closing parenthesis: field 3 (state) first, so utime (14) and stime (15) are 11 and 12.
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// This executable run as a child process (`serve --control`): commands on its standard input, answers on its
/// standard output. Used by one task.
final class ServerProcess {
    private let process: Process
    private let input: FileHandle
    private var lines: AsyncStream<String>.Iterator
    let pid: Int32

    init(arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ServerProcess.executablePath())
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        self.process = process
        self.input = stdin.fileHandleForWriting
        self.pid = process.processIdentifier
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let reading = stdout.fileHandleForReading
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let chunk = reading.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.yield(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            continuation.finish()
        }
        lines = stream.makeAsyncIterator()
    }

    private static func executablePath() throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }

    /// The next line of the server's output.
    private func nextLine() async throws -> String {
        guard let line = await lines.next() else { throw ValidationError("the server process ended") }
        return line
    }

    func port() async throws -> Int {
        let line = try await nextLine()
        guard line.hasPrefix("listening "), let port = Int(line.dropFirst("listening ".count)) else {
            throw ValidationError("unexpected server output: \(line)")
        }
        return port
    }

    /// Sends a command; returns the words of its answer (`done …`).
    func command(_ text: String) async throws -> [String] {
        input.write(Data((text + "\n").utf8))
        let line = try await nextLine()
        let words = line.split(separator: " ").map(String.init)
        guard words.first == "done", words.count == 4 else { throw ValidationError("server answered: \(line)") }
        return words
    }

    func stop() {
        input.write(Data("quit\n".utf8))
        process.waitUntilExit()
    }
}
