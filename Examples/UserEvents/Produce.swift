import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitTesting
import Foundation
import Synchronization
import UnixSignals

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish demo events to Kafka, keyed by user id; creates the topic if missing."
    )

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var generator: GeneratorOptions
    @Option(parsing: .unconditional, help: "Partitions when creating the topic (1…10,000).")
    var partitions = 4
    @Flag(help: "Print only a progress line with the rate (stderr) and a final summary, not each event.")
    var quiet = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...10_000).contains(partitions) else {
            throw ValidationError("--partitions must be 1…10,000, got \(partitions)")
        }
    }

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
            let clock = ContinuousClock()
            let start = clock.now
            let progress = ProgressReporter(total: generator.count, unit: "events", verb: "sent")
            // The producer runs beside a watcher of SIGINT/SIGTERM; a signal stops the producer between batches:
            // what was enqueued is drained by close() (bounded by the sink's shutdownTimeout) and counted.
            let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
            let (sent, signal): (Int, UnixSignal?)
            do {
                (sent, signal) = try await withThrowingTaskGroup(of: (Int, UnixSignal?).self) { group in
                    group.addTask { (try await produce(to: sink, progress: progress), nil) }
                    group.addTask {
                        for await signal in signals { return (0, signal) }
                        return (0, nil)
                    }
                    let first = try await group.next()!
                    group.cancelAll()
                    if let signal = first.1 {
                        // The producer stops after its current batch and reports how far it got.
                        let producer = try await group.next()!
                        return (producer.0, signal)
                    }
                    return first
                }
                try await sink.close()
            } catch {
                try? await sink.close()
                progress.finish()
                throw error
            }
            progress.finish()
            let elapsed = clock.now - start
            let interrupted = signal == nil ? "" : " (interrupted)"
            try Console.output.line(
                "Sent \(sent) events to '\(kafka.topic)' in \(ProgressReporter.text(elapsed)) (\(ProgressReporter.rate(sent, elapsed)) events/s)\(interrupted)"
            )
            if let signal { throw ExitCode(interruptedBy: signal) }
        }
    }

    /// Sends the generated events until done or cancelled (by a signal); returns how many were acknowledged.
    private func produce(to sink: KafkaEventSink<DemoUser>, progress: ProgressReporter) async throws -> Int {
        var events = DemoEventGenerator(seed: generator.resolvedSeed, clock: HybridLogicalClock())
        var sent = 0
        // Events go out in batches (many in flight); with an interval, one at a time like the demo.
        let batchSize = generator.interval.duration > .zero ? 1 : (quiet ? 10_000 : 1_000)
        while sent < generator.count, !Task.isCancelled {
            let batch = events.next(min(batchSize, generator.count - sent))
            try await sink.send(contentsOf: batch)
            sent += batch.count
            if !quiet { try Console.output.lines(batch.lazy.map { "Sent: \($0)" }) }
            progress.update(sent)
            if generator.interval.duration > .zero, sent < generator.count {
                do { try await Task.sleep(for: generator.interval.duration) } catch is CancellationError { break }
            }
        }
        return sent
    }
}

/// Progress on stderr: one line rewritten in place while stderr is a terminal, ended (with the final count and
/// rate) by ``finish()``; nothing when stderr is not a terminal (the command prints its summary on stdout).
final class ProgressReporter: Sendable {
    private let total: Int?
    private let unit: String
    private let verb: String
    private let enabled = isatty(STDERR_FILENO) == 1
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private let state = Mutex<(last: ContinuousClock.Instant?, count: Int, shown: Bool, detail: String?)>(
        (nil, 0, false, nil)
    )

    init(total: Int?, unit: String, verb: String) {
        self.total = total
        self.unit = unit
        self.verb = verb
        self.start = ContinuousClock().now
    }

    /// Records progress (and an extra `detail`, such as a lag); redraws at most once a second.
    func update(_ count: Int, detail: String? = nil) {
        guard enabled else { return }
        let now = clock.now
        let line: String? = state.withLock { state in
            state.count = count
            state.detail = detail
            if let last = state.last, now - last < .seconds(1) { return nil }
            state.last = now
            state.shown = true
            return "\r" + text(count, now, detail)
        }
        if let line { Console.error.reportRaw(line) }
    }

    /// Ends the progress line with the final count, so nothing printed afterwards is glued to it.
    func finish() {
        guard enabled else { return }
        let (count, shown, detail) = state.withLock { ($0.count, $0.shown, $0.detail) }
        guard shown else { return }
        Console.error.reportRaw("\r" + text(count, clock.now, detail) + "\n")
    }

    /// Writes a line of its own (a warning) without gluing it to the progress line.
    func interrupt(_ write: () -> Void) {
        if enabled, state.withLock({ $0.shown }) { Console.error.reportRaw("\n") }
        write()
    }

    private func text(_ count: Int, _ now: ContinuousClock.Instant, _ detail: String? = nil) -> String {
        let of = total.map { "/\($0)" } ?? ""
        return
            "\(verb) \(count)\(of) \(unit) (\(Self.rate(count, now - start)) \(unit)/s)\(detail.map { ", \($0)" } ?? "")"
    }

    /// An elapsed time as the summaries print it: `1s 308ms`.
    static func text(_ elapsed: Duration) -> String {
        elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow))
    }

    static func rate(_ count: Int, _ elapsed: Duration) -> Int {
        let seconds = elapsed.secondsAsDouble
        return seconds > 0 ? Int(Double(count) / seconds) : count
    }
}

extension ExitCode {
    /// The status of a command stopped by `signal`, as `--help` documents: 130 for SIGINT, 143 for SIGTERM.
    init(interruptedBy signal: UnixSignal) {
        self.init(signal == .sigint ? 130 : 143)
    }
}
