import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitTesting
import Foundation
import Histogram
import Synchronization

/// Send → applied latency: events sent one by one at a steady rate while a `KafkaMaterializer` runs; the time from
/// each `send` call to the moment its change comes out of the store's change feed, as an HdrHistogram.
struct Latency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Send events at a steady rate into a running materializer; prints `p50_ms p99_ms max_ms count` of send → applied."
    )
    @Option(help: "Kafka brokers.") var brokers: String
    @Option var topic = "latency"
    @Option var count = 3_000
    @Option(help: "Events per second.") var rate = 1_000
    @Option(help: "The materializer's source fetchWait in milliseconds (fetch.wait.max.ms; default: DeltaKit's).")
    var fetchWaitMs: Int?
    @Option(help: "The sink's linger in milliseconds.") var lingerMs = 5

    func run() async throws {
        let kafka = KafkaConfiguration(bootstrapServers: [brokers])
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: kafka,
                topic: topic,
                linger: .milliseconds(lingerMs),
                createTopic: .init(partitions: 4)
            )
        )
        let store = try InMemoryStateStore<DemoUser>(historyLimit: 0, changeBufferLimit: 1_000_000)
        var sourceConfiguration = KafkaEventSource<DemoUser>.Configuration(kafka: kafka, topic: topic)
        if let fetchWaitMs { sourceConfiguration.fetchWait = .milliseconds(fetchWaitMs) }
        let materializer = try await KafkaMaterializer(configuration: sourceConfiguration, store: store)
        let running = Task { try await materializer.run() }
        await materializer.waitUntilCaughtUp()

        let clock = ContinuousClock()
        let sentAt = Mutex<[Int: ContinuousClock.Instant]>([:])
        let feed = try await store.changes(from: .now)
        let collecting = Task { () -> Histogram<UInt64> in
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            var seen = 0
            for try await element in feed {
                let now = clock.now
                guard let sent = sentAt.withLock({ $0[element.change.key] }) else { continue }
                let micros = (now - sent).components
                _ = histogram.record(
                    UInt64(max(0, micros.seconds * 1_000_000 + micros.attoseconds / 1_000_000_000_000))
                )
                seen += 1
                if seen == count { break }
            }
            return histogram
        }
        let start = clock.now
        let interval = Duration.seconds(1) / rate
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                try await clock.sleep(until: start + interval * index)
                sentAt.withLock { $0[index] = clock.now }
                let event = ChangeEvent.insert(
                    DemoUser(id: index, name: "user \(index)", age: 30),
                    order: Int64(index) + 1
                )
                group.addTask { _ = try await sink.send(event) }
            }
            try await group.waitForAll()
        }
        let histogram = try await collecting.value
        running.cancel()
        try? await running.value
        try await sink.close()
        func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1_000 }
        print(String(format: "%.2f %.2f %.2f %d", ms(50), ms(99), Double(histogram.max) / 1_000, count))
    }
}
