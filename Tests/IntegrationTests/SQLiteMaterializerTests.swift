import DeltaKit
import DeltaKitKafka
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import MetricsTestKit
import Synchronization
import Testing

@Suite("The durable embedded table on a real broker", .requiresKafka, .timeLimit(.minutes(5)))
struct SQLiteMaterializerTests {
    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-mat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func open(_ url: URL, topic: String) throws -> SQLiteStateStore<DemoUser> {
        try SQLiteStateStore(configuration: .init(path: url.appendingPathComponent("users.sqlite").path, source: topic))
    }

    @Test("a restart resumes at the stored positions: nothing is read twice, nothing is missed")
    func resumesAtPositions() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var generator = DemoEventGenerator(seed: 11, users: 80)
        let first = generator.next(1_200)
        var receipt = try await sink.send(contentsOf: first)
        let configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: sink.topic
        )

        do {  // the store is released (its writer lock too) before the file is reopened
            let store = try Self.open(directory, topic: sink.topic)
            #expect(try await KafkaMaterializer.materialize(configuration, into: store) == 1_200)
            #expect(try await store.snapshot() == KafkaTestSupport.reference(first))
            // The positions are the next offsets: one past each partition's last acknowledged message.
            #expect(try await store.positions() == receipt.offsets.mapValues { $0 + 1 })
        }

        // Reopened (a restart): nothing to re-read.
        let reopened = try Self.open(directory, topic: sink.topic)
        #expect(try await KafkaMaterializer.materialize(configuration, into: reopened) == 0)

        // New events and malformed messages: only those are read; the positions move past the malformed ones.
        let second = generator.next(300)
        receipt = receipt.merging(try await sink.send(contentsOf: second))
        try KafkaTestSupport.produceRawViaPython(brokers, topic: sink.topic, values: [Array("not json".utf8)])
        let malformed = Mutex(0)
        #expect(
            try await KafkaMaterializer.materialize(
                configuration,
                into: reopened,
                onMalformed: { _ in malformed.withLock { $0 += 1 } }
            ) == 300
        )
        #expect(malformed.withLock { $0 } == 1)
        #expect(try await reopened.snapshot() == KafkaTestSupport.reference(first + second))
        #expect(
            try await KafkaMaterializer.materialize(
                configuration,
                into: reopened,
                onMalformed: { _ in malformed.withLock { $0 += 1 } }
            ) == 0
        )
        #expect(malformed.withLock { $0 } == 1, "the malformed message is behind the stored position")
        try await sink.close()
    }

    @Test("waitUntilVisible: a sink's receipt is applied before the read, on SQLite and in memory")
    func readYourWrites() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = try await KafkaTestSupport.makeSink(brokers)
        let configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: sink.topic
        )
        let sqlite = try await KafkaMaterializer(
            configuration: configuration,
            store: Self.open(directory, topic: sink.topic)
        )
        let memory = try await KafkaMaterializer(configuration: configuration, store: InMemoryStateStore<DemoUser>())
        let runs = [Task { try await sqlite.run() }, Task { try await memory.run() }]
        for id in 1...5 {
            let user = DemoUser(id: id, name: "User \(id)", age: 20 + id)
            let receipt = try await sink.send(.insert(user, order: Int64(id)))
            try await sqlite.waitUntilVisible(receipt)
            #expect(try await sqlite.store.value(forKey: id) == user)
            try await memory.waitUntilVisible(receipt)
            #expect(try await memory.store.value(forKey: id) == user)
        }
        await #expect {
            try await sqlite.waitUntilVisible(EventReceipt(partition: 99, offset: 0), timeout: .milliseconds(200))
        } throws: { error in
            (error as? DeltaKitError)?.code == .timedOut && "\(error)".contains("partition 99 needs offset 0")
        }
        for run in runs { run.cancel() }
        for run in runs { try await run.value }
        try await sink.close()
    }

    @Test("the lag of every partition read is a gauge, labelled with topic and partition")
    func lagGauge() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var generator = DemoEventGenerator(seed: 5, users: 50)
        let receipt = try await sink.send(contentsOf: generator.next(400))
        try await sink.close()
        let metrics = TestMetrics()
        let source = try await KafkaEventSource<DemoUser>(
            configuration: .init(kafka: KafkaTestSupport.kafka(brokers), topic: sink.topic)
        )
        let materializer = try KafkaMaterializer(
            source: source,
            store: try InMemoryStateStore<DemoUser>(),
            metricsFactory: metrics
        )
        let running = Task { try await materializer.run() }
        try await materializer.waitUntilVisible(receipt)
        let lag = materializer.lag
        running.cancel()
        try await running.value
        #expect(Set(lag.keys) == Set(receipt.offsets.keys) && lag.values.allSatisfy { $0 >= 0 }, "\(lag)")
        for partition in receipt.offsets.keys {
            let gauge = try metrics.expectGauge(
                "deltakit_kafka_materializer_lag",
                [("topic", sink.topic), ("partition", String(partition))]
            )
            #expect(!gauge.values.isEmpty && gauge.values.allSatisfy { $0 >= 0 }, "partition \(partition)")
        }
    }

    @Test("a positioned store refuses a group, another topic, and a source that does not start at its positions")
    func refusesMismatchedSources() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = try await KafkaTestSupport.makeSink(brokers)
        try await sink.send(.insert(DemoUser(id: 1, name: "A", age: 1), order: 1))
        let store = try Self.open(directory, topic: sink.topic)
        try await store.apply(contentsOf: [], positions: [0: 1])
        var configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: sink.topic,
            groupID: "g"
        )
        await #expect {
            _ = try await KafkaMaterializer(configuration: configuration, store: store)
        } throws: { ($0 as? DeltaKitError)?.code == .invalidConfiguration && "\($0)".contains("groupID") }
        configuration.groupID = nil
        let other = try SQLiteStateStore<DemoUser>(
            configuration: .init(path: directory.appendingPathComponent("other.sqlite").path, source: "other")
        )
        await #expect {
            _ = try await KafkaMaterializer(configuration: configuration, store: other)
        } throws: { ($0 as? DeltaKitError)?.code == .incompatibleStore }
        // A source made by hand that starts elsewhere than the store's positions (here: the beginning) is refused
        // when it runs: ahead of the store it would lose events, behind it would mix replayed ones into positions.
        let source = try await KafkaEventSource<DemoUser>(configuration: configuration)
        await #expect {
            try await KafkaMaterializer(source: source, store: store).run()
        } throws: { ($0 as? DeltaKitError)?.code == .invalidConfiguration && "\($0)".contains("0@1") }
        try await sink.close()
    }
}
