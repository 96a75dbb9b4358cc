import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitTesting
import Foundation

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish demo events to Kafka, keyed by user id; creates the topic if missing."
    )

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var generator: GeneratorOptions
    @Option(help: "Partitions when creating the topic (1…10,000).")
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
            var events = DemoEventGenerator(seed: generator.resolvedSeed, clock: HybridLogicalClock())
            let clock = ContinuousClock()
            let start = clock.now
            var lastProgress = start
            var sent = 0
            // Events go out in batches (many in flight); with an interval, one at a time like the demo.
            let batchSize = generator.interval.duration > .zero ? 1 : (quiet ? 10_000 : 1_000)
            do {
                while sent < generator.count {
                    let batch = events.next(min(batchSize, generator.count - sent))
                    try await sink.send(contentsOf: batch)
                    sent += batch.count
                    if quiet {
                        if clock.now - lastProgress >= .seconds(1) || sent == generator.count {
                            lastProgress = clock.now
                            FileHandle.standardError.write(
                                Data(
                                    "\rsent \(sent)/\(generator.count) events (\(Self.rate(sent, clock.now - start)) events/s)"
                                        .utf8
                                )
                            )
                        }
                    } else {
                        for event in batch { printLine("Sent: \(event)") }
                    }
                    if generator.interval.duration > .zero, sent < generator.count {
                        try await Task.sleep(for: generator.interval.duration)
                    }
                }
                try await sink.close()
            } catch {
                try? await sink.close()
                throw error
            }
            let elapsed = clock.now - start
            if quiet { FileHandle.standardError.write(Data("\n".utf8)) }
            printLine(
                "Sent \(sent) events to '\(kafka.topic)' in \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow))) (\(Self.rate(sent, elapsed)) events/s)"
            )
        }
    }

    static func rate(_ count: Int, _ elapsed: Duration) -> Int {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return seconds > 0 ? Int(Double(count) / seconds) : count
    }
}
