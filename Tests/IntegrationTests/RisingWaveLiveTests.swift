import DeltaKit
import DeltaKitKafka
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

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
        let fixture = try await LiveFixture.make()
        let (pipeline, connection, sink, store) = (fixture.pipeline, fixture.connection, fixture.sink, fixture.store)
        let url = try #require(ProcessInfo.processInfo.environment["DELTAKIT_RISINGWAVE_URL"])
        try await pipeline.apply(on: connection)  // idempotent: make() applied it once
        let clock = HybridLogicalClock()
        var generator = DemoEventGenerator(seed: 3, users: 30, clock: clock)
        let events = generator.next(2_000)
        // Duplicates and a replay, shuffled per key's partition order is kept by the producer anyway.
        var random = SeededRandomNumberGenerator(seed: 3)
        let arrival = (events + events.prefix(300)).shuffled(using: &random)
        let receipt = try await sink.send(contentsOf: arrival)
        try await store.waitUntilVisible(receipt, timeout: .seconds(60))
        var reference = LatestState<DemoUser>()
        for e in events { reference.apply(e) }
        #expect(try await store.snapshot() == reference.snapshot())
        #expect(try await store.count() == reference.liveCount)
        for key in 1...30 { #expect(try await store.value(forKey: key) == reference.value(forKey: key)) }
        let history = try await store.history(limit: 20)
        #expect(history.map(\.order) == Array(arrival.map(\.order).sorted(by: >).prefix(20)))

        var changes = try await store.changes(from: .now, connection: .init(url: url), fetchTimeout: .seconds(2))
            .makeAsyncIterator()
        let alice = DemoUser(id: 9_999, name: "Alice", age: 25)
        try await sink.send(.insert(alice, order: clock.next()))
        let change = try await changes.next()
        #expect(change?.change == StateChange(kind: .insert, key: 9_999, record: alice))
        try await sink.close()
        try await pipeline.teardown(on: connection)
        try await pipeline.teardown(on: connection)  // idempotent
    }
}

/// The demo user with nothing required: lets the live test publish events DemoUser's rule calls invalid
/// (a null name), through the real producer.
struct LooseUser: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String?
    var age: Int?
    var key: Int { id }
}

/// A fresh topic with its provisioned objects, a sink and a store: one per check.
struct LiveFixture: Sendable {
    let topic: String
    let pipeline: RisingWavePipeline<DemoUser>
    let connection: RisingWaveConnection
    let sink: KafkaEventSink<DemoUser>
    let store: RisingWaveStateStore<DemoUser>

    static func make(partitions: Int? = nil) async throws -> LiveFixture {
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
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: .init(bootstrapServers: [brokers]),
                topic: topic,
                createTopic: partitions.map { .init(partitions: $0) } ?? .init()
            )
        )
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        try await pipeline.apply(on: connection)
        return LiveFixture(
            topic: topic,
            pipeline: pipeline,
            connection: connection,
            sink: sink,
            store: RisingWaveStateStore(connection: connection, pipeline: pipeline)
        )
    }

    /// Sends and waits until RisingWave has ingested every event (the receipt, per partition).
    func apply(_ events: [ChangeEvent<DemoUser>]) async throws {
        let receipt = try await sink.send(contentsOf: events)
        try await store.waitUntilVisible(receipt, timeout: .seconds(60))
    }
}

extension RisingWaveLiveTests {
    @Test("the change feed conformance suite passes on RisingWave: FULL snapshot seam, from now, resume")
    func changeFeed() async throws {
        try await ChangeFeedConformance(
            makeStore: { try await LiveFixture.make().store },
            apply: { store, events in
                // The store's pipeline names the topic; a sink per call keeps the fixture simple.
                let env = ProcessInfo.processInfo.environment
                let sink = try await KafkaEventSink<DemoUser>(
                    configuration: .init(
                        kafka: .init(bootstrapServers: [env["DELTAKIT_LIVE_KAFKA_BROKERS"] ?? "localhost:9092"]),
                        topic: store.pipeline.configuration.topic
                    )
                )
                let receipt = try await sink.send(contentsOf: events)
                try await sink.close()
                try await store.waitUntilVisible(receipt, timeout: .seconds(60))
            }
            // The contract mode: RisingWave's subscription keeps the net change per key per checkpoint.
        ).run()
    }

    @Test("a feed whose session is lost re-declares its cursor from its position: no gap, no duplicate")
    func feedReconnect() async throws {
        let fixture = try await LiveFixture.make()
        let clock = HybridLogicalClock()
        func user(_ id: Int) -> ChangeEvent<DemoUser> {
            .insert(DemoUser(id: id, name: "U\(id)", age: id), order: clock.next())
        }
        var feed = try await fixture.store.changes(from: .now).makeAsyncIterator()
        try await fixture.apply((1...3).map(user))
        var keys: [Int] = []
        for _ in 0..<2 { keys.append(try #require(try await feed.next()).change.key) }
        try await feed.loseSession()
        try await fixture.apply((4...5).map(user))
        for _ in 0..<3 { keys.append(try #require(try await feed.next()).change.key) }
        #expect(keys.sorted() == [1, 2, 3, 4, 5])
        try await fixture.pipeline.teardown(on: fixture.connection)
    }

    @Test("a .now feed that loses its session before its first change delivers what was committed meanwhile")
    func nowSurvivesLostSession() async throws {
        let fixture = try await LiveFixture.make()
        var feed = try await fixture.store.changes(from: .now).makeAsyncIterator()
        try await feed.loseSession()
        let alice = DemoUser(id: 1, name: "Alice", age: 25)
        try await fixture.apply([.insert(alice, order: 1)])
        #expect(try await feed.next()?.change == StateChange(kind: .insert, key: 1, record: alice))
        try await fixture.pipeline.teardown(on: fixture.connection)
    }

    @Test("a position older than the subscription's retention is refused with changesUnavailable")
    func positionTooOld() async throws {
        let fixture = try await LiveFixture.make()
        let error = await #expect(throws: DeltaKitError.self) {
            _ = try await fixture.store.changes(from: .after(ChangeFeedPosition("1700000000000:0")))
        }
        #expect(error?.code == .changesUnavailable)
        try await fixture.pipeline.teardown(on: fixture.connection)
    }

    @Test("invalid events never reach the view or the history; ties resolve as in process")
    func invalidEventsAndTies() async throws {
        let fixture = try await LiveFixture.make()
        let env = ProcessInfo.processInfo.environment
        let loose = try await KafkaEventSink<LooseUser>(
            configuration: .init(
                kafka: .init(bootstrapServers: [env["DELTAKIT_LIVE_KAFKA_BROKERS"] ?? "localhost:9092"]),
                topic: fixture.topic
            )
        )
        let at = Date(timeIntervalSince1970: 1_704_067_200)
        let valid: [ChangeEvent<DemoUser>] = [
            .insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1, timestamp: at),
            .update(DemoUser(id: 2, name: "Bob", age: 31), order: 5, timestamp: at),
            .update(DemoUser(id: 2, name: "Bob", age: 32), order: 5, timestamp: at),
            .delete(key: 3, order: 7, timestamp: at),
            .insert(DemoUser(id: 3, name: "Carol", age: 40), order: 7, timestamp: at),
        ]
        var receipt = try await fixture.sink.send(contentsOf: valid)
        receipt = receipt.merging(
            try await loose.send(.insert(LooseUser(id: 1, name: nil, age: 99), order: 100, timestamp: at))
        )
        try await loose.close()
        try await fixture.store.waitUntilVisible(receipt, timeout: .seconds(60))
        var reference = LatestState<DemoUser>()
        for event in valid { reference.apply(event) }
        #expect(try await fixture.store.snapshot() == reference.snapshot())
        #expect(try await fixture.store.count() == reference.liveCount)
        #expect(try await fixture.store.history(limit: 10).allSatisfy { $0.order < 100 })
        try await fixture.pipeline.teardown(on: fixture.connection)
    }
}

/// A record with a decimal, for the live decimal check.
struct LiveAmount: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var amount: Decimal
    var key: Int { id }
}

/// The demo user as a changed declaration has it: `age` an `Int32`, an optional `email`.
struct LiveChangedUser: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String
    var age: Int32
    var email: String?
    var key: Int { id }
}

extension RisingWaveLiveTests {
    static var brokers: String {
        ProcessInfo.processInfo.environment["DELTAKIT_LIVE_KAFKA_BROKERS"] ?? "localhost:9092"
    }

    @Test("a decimal of 28 significant digits reaches the view exactly: DeltaKit sends it as a JSON string")
    func decimal() async throws {
        let env = ProcessInfo.processInfo.environment
        let url = try #require(env["DELTAKIT_RISINGWAVE_URL"])
        let suffix = UUID().uuidString.prefix(6).lowercased()
        let topic = "deltakit-live-dec-\(suffix)"
        let pipeline = try RisingWavePipeline<LiveAmount>(
            configuration: .init(
                topic: topic,
                bootstrapServers: env["DELTAKIT_RISINGWAVE_KAFKA"] ?? "redpanda:29092",
                sourceName: "ev_\(suffix)",
                viewName: "st_\(suffix)"
            )
        )
        let sink = try await KafkaEventSink<LiveAmount>(
            configuration: .init(
                kafka: .init(bootstrapServers: [Self.brokers]),
                topic: topic,
                createTopic: .init(partitions: 1)
            )
        )
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        try await pipeline.apply(on: connection)
        let store = RisingWaveStateStore(connection: connection, pipeline: pipeline)
        // RisingWave's DECIMAL holds 28 significant digits; through a JSON number (a 64-bit float) ~15 survive.
        let exact = Decimal(string: "12345678901234.56789012345678")!
        _ = try await sink.send(.insert(LiveAmount(id: 1, amount: exact), order: 1))
        // Another producer's JSON number: RisingWave reads it through f64 (a known difference, semantics.md).
        try KafkaTestSupport.produceRawViaPython(
            Self.brokers,
            topic: topic,
            values: [
                Array(
                    #"{"id":2,"amount":12345678901234.56789012345678,"op":"insert","event_order":2,"ts":"2024-01-01T00:00:00.000000+00:00"}"#
                        .utf8
                )
            ]
        )
        let receipt = try await sink.send(.insert(LiveAmount(id: 3, amount: -exact), order: 3))
        try await store.waitUntilVisible(receipt, timeout: .seconds(60))
        #expect(try await store.value(forKey: 1)?.amount == exact)
        #expect(try await store.value(forKey: 3)?.amount == -exact)
        #expect(try await store.value(forKey: 2)?.amount != exact)
        try await sink.close()
        try await pipeline.teardown(on: connection)
    }

    @Test(
        "other producers' JSON: RisingWave's parser fills the columns, the view's check of the message keeps it out"
    )
    func otherProducersJSON() async throws {
        let fixture = try await LiveFixture.make(partitions: 1)
        let alice = ChangeEvent.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1)
        _ = try await fixture.sink.send(alice)
        let ts = "2024-01-01T00:00:00.000000+00:00"
        let messages = [
            #"{"id":1,"name":"Mallory","age":"41","op":"update","event_order":9,"ts":"\#(ts)"}"#,
            #"{"id":1,"name":42,"age":1,"op":"update","event_order":9,"ts":"\#(ts)"}"#,
            #"{"id":1,"name":false,"age":1,"op":"update","event_order":9,"ts":"\#(ts)"}"#,
            #"{"id":1,"name":"Mallory","age":1,"op":"update","event_order":9,"ts":1704067200000}"#,
            #"{"id":1,"name":"Mallory","age":1,"op":"update","event_order":"9","ts":"\#(ts)"}"#,
            #"{"ID":1,"name":"Mallory","age":1,"op":"update","event_order":9,"ts":"\#(ts)"}"#,
            #"{"id":1,"Name":"Mallory","age":1,"op":"update","event_order":9,"ts":"\#(ts)"}"#,
            #"{"id":"1","name":"Mallory","age":1,"op":"update","event_order":9,"ts":"\#(ts)"}"#,
            #"{"id":1,"name":"Mallory","age":1,"Op":"update","event_order":9,"ts":"\#(ts)"}"#,
        ]
        for message in messages {
            #expect(throws: ChangeEventDecodingError.self) { try ChangeEvent<DemoUser>(jsonData: Data(message.utf8)) }
        }
        try KafkaTestSupport.produceRawViaPython(
            Self.brokers,
            topic: fixture.topic,
            values: messages.map { Array($0.utf8) }
        )
        // One partition: once this later event is visible, every raw message before it was ingested.
        let receipt = try await fixture.sink.send(.insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2))
        try await fixture.store.waitUntilVisible(receipt, timeout: .seconds(60))
        // RisingWave's lenient JSON access read every one of them into the columns (the documented difference) …
        let raw = try await fixture.connection.query(
            "SELECT count(*) AS n FROM \"\(fixture.pipeline.sourceName)\" WHERE event_order = 9 AND id = 1 AND name IS NOT NULL AND age IS NOT NULL AND ts IS NOT NULL AND op = 'update'"
        )
        #expect(try raw[0].decode("n", as: Int.self) == messages.count)
        // … and none of them reaches the state or the history.
        #expect(try await fixture.store.value(forKey: 1) == alice.record)
        #expect(try await fixture.store.history(limit: 20).allSatisfy { $0.order < 9 })
        try await fixture.pipeline.teardown(on: fixture.connection)
    }

    @Test("provisioning refuses objects of another definition, naming the difference; replace recreates them")
    func driftAndReplace() async throws {
        let fixture = try await LiveFixture.make()
        let configuration = fixture.pipeline.configuration
        // The same pipeline again: RisingWave's catalog matches the generated definitions.
        try await fixture.pipeline.apply(on: fixture.connection)
        #expect(
            fixture.pipeline.drift.differences(in: try await fixture.pipeline.drift.read(on: fixture.connection))
                .isEmpty
        )

        var smaller = configuration
        smaller.historySize = 10
        let resized = try RisingWavePipeline<DemoUser>(configuration: smaller)
        let sizeError = await #expect(throws: DeltaKitError.self) { try await resized.apply(on: fixture.connection) }
        #expect(sizeError?.code == .invalidConfiguration)
        #expect(sizeError?.message.contains("historySize is 10") == true, "\(String(describing: sizeError))")
        #expect(sizeError?.message.contains("provision --replace") == true)

        let changed = try RisingWavePipeline<LiveChangedUser>(
            configuration: .init(
                topic: configuration.topic,
                bootstrapServers: configuration.bootstrapServers,
                sourceName: fixture.pipeline.sourceName,
                viewName: fixture.pipeline.viewName
            )
        )
        let recordError = await #expect(throws: DeltaKitError.self) { try await changed.apply(on: fixture.connection) }
        #expect(recordError?.message.contains(#"column "age" is bigint, generated integer"#) == true)
        #expect(recordError?.message.contains(#"column "email" (character varying) is missing"#) == true)

        try await resized.apply(on: fixture.connection, replace: true)
        #expect(resized.drift.differences(in: try await resized.drift.read(on: fixture.connection)).isEmpty)
        let store = RisingWaveStateStore(connection: fixture.connection, pipeline: resized)
        let receipt = try await fixture.sink.send(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        try await store.waitUntilVisible(receipt, timeout: .seconds(60))
        #expect(try await store.value(forKey: 1) == DemoUser(id: 1, name: "Alice", age: 25))
        try await resized.teardown(on: fixture.connection)
    }
}
