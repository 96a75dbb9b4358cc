import DeltaKit
import DeltaKitTesting
import MetricsTestKit
import Testing

@testable import DeltaKitKafka

/// `KafkaMaterializer`'s two initializers, on librdkafka's mock cluster (no broker needed).
@Suite("KafkaMaterializer initializers", .timeLimit(.minutes(5)))
struct KafkaMaterializerTests {
    /// The error `body` throws; records an issue unless it is `invalidConfiguration`.
    static func invalid(_ body: () async throws -> Void) async -> DeltaKitError? {
        do {
            try await body()
            Issue.record("no error")
        } catch let error as DeltaKitError {
            #expect(error.code == .invalidConfiguration, "\(error)")
            return error
        } catch {
            Issue.record("unexpected \(error)")
        }
        return nil
    }

    @Test(
        "both initializers refuse a maxBatchSize outside 1…1,000,000, naming the field, the value and the range",
        arguments: [0, -5, 1_000_001]
    )
    func batchSizeOutOfRange(size: Int) async throws {
        let topic = "batch-size-\(size)"
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        var generator = DemoEventGenerator(seed: 3, users: 2)
        try await sink.send(contentsOf: generator.next(1))  // the topic exists
        let configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: .init(bootstrapServers: [mock.bootstrapServers]),
            topic: topic
        )
        let source = try await KafkaEventSource<DemoUser>(configuration: configuration)
        let byHand = await Self.invalid {
            _ = try KafkaMaterializer(source: source, store: try InMemoryStateStore<DemoUser>(), maxBatchSize: size)
        }
        let configured = await Self.invalid {
            _ = try await KafkaMaterializer(
                configuration: configuration,
                store: try InMemoryStateStore<DemoUser>(),
                maxBatchSize: size
            )
        }
        for error in [byHand, configured] {
            #expect(error?.message == "KafkaMaterializer.maxBatchSize is \(size); allowed: 1…1000000")
        }
        try await source.close()
        try await sink.close()
    }

    @Test("the limits of maxBatchSize are accepted as given, by both initializers")
    func batchSizeLimits() async throws {
        let topic = "batch-size-limits"
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        var generator = DemoEventGenerator(seed: 4, users: 2)
        try await sink.send(contentsOf: generator.next(1))
        let configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: .init(bootstrapServers: [mock.bootstrapServers]),
            topic: topic
        )
        for size in [1, 1_000_000] {
            let source = try await KafkaEventSource<DemoUser>(configuration: configuration)
            let byHand = try KafkaMaterializer(
                source: source,
                store: try InMemoryStateStore<DemoUser>(),
                maxBatchSize: size
            )
            #expect(byHand.maxBatchSize == size)
            try await source.close()
            let configured = try await KafkaMaterializer(
                configuration: configuration,
                store: try InMemoryStateStore<DemoUser>(),
                maxBatchSize: size
            )
            #expect(configured.maxBatchSize == size)
            try await configured.source.close()
        }
        try await sink.close()
    }

    @Test("the initializer that makes the source sends the source's metrics and the lag gauge to metricsFactory")
    func metricsFactory() async throws {
        let topic = "materializer-metrics"
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        var generator = DemoEventGenerator(seed: 5, users: 20)
        let events = generator.next(200)
        try await sink.send(contentsOf: events)
        let metrics = TestMetrics()
        let materializer = try await KafkaMaterializer(
            configuration: .init(kafka: .init(bootstrapServers: [mock.bootstrapServers]), topic: topic),
            store: try InMemoryStateStore<DemoUser>(),
            metricsFactory: metrics
        )
        let running = Task { try await materializer.run() }
        await materializer.waitUntilCaughtUp()
        running.cancel()
        try await running.value
        let consumed = try metrics.expectCounter("deltakit_kafka_events_consumed_total", [("topic", topic)])
        #expect(consumed.totalValue == 200)
        let partitions = materializer.lag.keys
        #expect(!partitions.isEmpty, "a lag was recorded")
        for partition in partitions {
            let gauge = try metrics.expectGauge(
                "deltakit_kafka_materializer_lag",
                [("topic", topic), ("partition", String(partition))]
            )
            #expect(gauge.lastValue == 0, "caught up: nothing left to apply on partition \(partition)")
        }
        try await sink.close()
    }
}
