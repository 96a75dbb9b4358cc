import ArgumentParser
import DeltaKit
import DeltaKitKafka
import ServiceLifecycle
import Synchronization
import Tracing
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
    @Flag(
        help:
            "Bootstrap a tracer that exports nothing and send each batch in a span, so that every message carries a traceparent header: what tracing costs."
    )
    var trace = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...10_000).contains(partitions) else {
            throw ValidationError("--partitions must be 1…10,000, got \(partitions)")
        }
    }

    func run() async throws {
        logging.bootstrap()
        if trace { InstrumentationSystem.bootstrap(PropagatingTracer()) }
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
            let producer = EventProducer(
                sink: sink,
                seed: generator.resolvedSeed,
                count: generator.count,
                interval: generator.interval.duration,
                quiet: quiet,
                traced: trace,
                progress: progress
            )
            let signal: UnixSignal?
            do {
                signal = try await runUntilInterrupted([
                    .init(service: producer, successTerminationBehavior: .gracefullyShutdownGroup)
                ])
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
                "Sent \(producer.sent) events to '\(kafka.topic)' in \(ProgressReporter.text(elapsed)) (\(ProgressReporter.rate(producer.sent, elapsed)) events/s)\(interrupted)"
            )
            if let signal { throw ExitCode(interruptedBy: signal) }
        }
    }
}

/// Sends the generated events until all are sent or the group shuts down (on a signal). A shutdown stops it
/// between batches, so every event it counts was acknowledged; what is still enqueued then is drained by the
/// sink's `close()`.
private final class EventProducer: Service {
    private let sink: KafkaEventSink<DemoUser>
    private let seed: UInt64
    private let count: Int
    private let interval: Duration
    private let quiet: Bool
    private let traced: Bool
    private let progress: ProgressReporter
    private let acknowledged = Atomic<Int>(0)

    init(
        sink: KafkaEventSink<DemoUser>,
        seed: UInt64,
        count: Int,
        interval: Duration,
        quiet: Bool,
        traced: Bool,
        progress: ProgressReporter
    ) {
        self.sink = sink
        self.seed = seed
        self.count = count
        self.interval = interval
        self.quiet = quiet
        self.traced = traced
        self.progress = progress
    }

    /// How many events were sent and acknowledged.
    var sent: Int { acknowledged.load(ordering: .relaxed) }

    func run() async throws {
        var events = DemoEvents(seed: seed, clock: HybridLogicalClock())
        var sent = 0
        // Events go out in batches (many in flight); with an interval, one at a time like the demo.
        let batchSize = interval > .zero ? 1 : (quiet ? 10_000 : 1_000)
        while sent < count, !Task.isShuttingDownGracefully {
            let batch = events.next(min(batchSize, count - sent))
            if traced {
                try await withSpan("produce batch", ofKind: .producer) { _ in
                    _ = try await sink.send(contentsOf: batch)
                }
            } else {
                try await sink.send(contentsOf: batch)
            }
            sent += batch.count
            acknowledged.store(sent, ordering: .relaxed)
            if !quiet { try Console.output.lines(batch.lazy.map { "Sent: \($0)" }) }
            progress.update(sent)
            if interval > .zero, sent < count {
                do {
                    try await cancelWhenGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
                } catch is CancellationError {
                    break
                }
            }
        }
    }
}
