import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave
import DeltaKitTesting
import Foundation
import Testing

/// Opt-in: needs a real RisingWave and Kafka (e.g. `docker compose up -d`). Set
/// DELTAKIT_RISINGWAVE_URL (postgres://root@localhost:4566/dev), DELTAKIT_LIVE_KAFKA_BROKERS (localhost:9092)
/// and DELTAKIT_RISINGWAVE_KAFKA (the brokers as RisingWave sees them, e.g. redpanda:29092).
/// Not run in CI here: RisingWave has no binary this machine can install.
@Suite(
    "RisingWave live (opt-in)",
    .enabled(
        if: ProcessInfo.processInfo.environment["DELTAKIT_RISINGWAVE_URL"] != nil,
        "set DELTAKIT_RISINGWAVE_URL, DELTAKIT_LIVE_KAFKA_BROKERS and DELTAKIT_RISINGWAVE_KAFKA (docker compose up -d) to run"
    ),
    .timeLimit(.minutes(5))
)
struct RisingWaveLiveTests {
    @Test("provision → produce → wait → snapshot equals the reference; watch sees changes")
    func endToEnd() async throws {
        let env = ProcessInfo.processInfo.environment
        let url = try #require(env["DELTAKIT_RISINGWAVE_URL"])
        let brokers = env["DELTAKIT_LIVE_KAFKA_BROKERS"] ?? "localhost:9092"
        let rwBrokers = env["DELTAKIT_RISINGWAVE_KAFKA"] ?? "redpanda:29092"
        let suffix = UUID().uuidString.prefix(6).lowercased()
        let topic = "deltakit-live-\(suffix)"
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(
                topic: topic,
                bootstrapServers: rwBrokers,
                sourceName: "ev_\(suffix)",
                viewName: "st_\(suffix)"
            )
        )
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(kafka: .init(bootstrapServers: [brokers]), topic: topic, createTopic: .init())
        )
        try await pipeline.apply(on: connection)
        try await pipeline.apply(on: connection)  // idempotent
        let store = RisingWaveStateStore(connection: connection, pipeline: pipeline)
        let clock = HybridLogicalClock()
        var generator = DemoEventGenerator(seed: 3, users: 30, clock: clock)
        let events = generator.next(2_000)
        try await sink.send(contentsOf: events)
        try await store.waitUntilVisible(order: events.last!.order, timeout: .seconds(60))
        var reference = LatestState<DemoUser>()
        for e in events { reference.apply(e) }
        #expect(try await store.snapshot() == reference.snapshot())

        var changes = store.watch(connection: .init(url: url), fetchTimeout: .seconds(2)).makeAsyncIterator()
        let alice = DemoUser(id: 9_999, name: "Alice", age: 25)
        try await sink.send(.insert(alice, order: clock.next()))
        let change = try await changes.next()
        #expect(change?.change == StateChange(kind: .insert, key: 9_999, record: alice))
        try await sink.close()
        try await pipeline.teardown(on: connection)
        try await pipeline.teardown(on: connection)  // idempotent
    }
}
