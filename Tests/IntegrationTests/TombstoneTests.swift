import DeltaKit
import DeltaKitKafka
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Synchronization
import Testing

@Suite("Kafka tombstones for compacted topics (opt-in)", .requiresKafka, .timeLimit(.minutes(5)))
struct TombstoneTests {
    static let ts = Date(timeIntervalSince1970: 1_700_000_000.25)

    @Test(
        "with sendsTombstones a delete is followed by a null-value message carrying its order; readers apply it as that delete"
    )
    func tombstonesAreWrittenAndRead() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: TestEnvironment.uniqueTopic("tomb"),
                createTopic: .compacted(partitions: 1),
                sendsTombstones: true
            )
        )
        let events: [ChangeEvent<DemoUser>] = [
            .insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1, timestamp: Self.ts),
            .insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2, timestamp: Self.ts),
            .update(DemoUser(id: 1, name: "Alice", age: 26), order: 3, timestamp: Self.ts),
            .delete(key: 1, order: 4, timestamp: Self.ts),
        ]
        let receipt = try await sink.send(contentsOf: events)
        try await sink.close()
        #expect(receipt.offsets == [0: 4], "four events and one tombstone")
        let raw = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: sink.topic)
        #expect(raw.count == 5)
        #expect(raw.last?["key"] == "1")
        #expect(raw.last?["value"] == .some(nil))
        #expect(raw.last?["headers"] == #"{"deltakit-order": "4", "deltakit-ts": "2023-11-14T22:13:20.250000+00:00"}"#)
        #expect(raw.dropLast().allSatisfy { $0["value"] != .some(nil) })

        // Read back: the tombstone is the same delete again — no visible change, the key stays deleted.
        let store = try InMemoryStateStore<DemoUser>()
        let configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: sink.topic
        )
        #expect(try await KafkaMaterializer.materialize(configuration, into: store) == 5)
        #expect(try await store.snapshot() == [DemoUser(id: 2, name: "Bob", age: 30)])
        let history = try await store.history(limit: 10)
        #expect(history.prefix(2).map(\.operation) == [.delete, .delete])
        #expect(history[0] == events[3] && history[1] == events[3])
    }

    @Test(
        "a rebuild from what compaction leaves (live values and tombstones) gives the state; the tombstone still blocks late inserts"
    )
    func rebuildFromCompactedTopic() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("compacted")
        // What a compacted topic holds after the cleaner ran: the newest message per key.
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: topic,
                createTopic: .init(partitions: 1)
            )
        )
        try await sink.send(.insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2, timestamp: Self.ts))
        try await sink.close()
        try KafkaTestSupport.produceTombstoneViaPython(
            brokers,
            topic: topic,
            key: "1",
            headers: ["deltakit-order": "4", "deltakit-ts": "2023-11-14T22:13:20.250000+00:00"]
        )
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-tomb-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStateStore<DemoUser>(
            configuration: .init(path: directory.appendingPathComponent("users.sqlite").path, source: topic)
        )
        let configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: topic
        )
        #expect(try await KafkaMaterializer.materialize(configuration, into: store) == 2)
        #expect(try await store.snapshot() == [DemoUser(id: 2, name: "Bob", age: 30)])
        #expect(try await store.tombstoneCount() == 1)
        try await store.apply(.insert(DemoUser(id: 1, name: "Late", age: 1), order: 3))
        #expect(try await store.value(forKey: 1) == nil)
    }

    @Test("a tombstone without the order header is reported as malformed and never changes state")
    func tombstoneWithoutOrder() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers, partitions: 1)
        try await sink.send(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        try await sink.close()
        try KafkaTestSupport.produceTombstoneViaPython(brokers, topic: sink.topic, key: "1", headers: [:])
        let reports = Mutex<[String]>([])
        let store = try InMemoryStateStore<DemoUser>()
        let applied = try await KafkaMaterializer.materialize(
            .init(kafka: KafkaTestSupport.kafka(brokers), topic: sink.topic),
            into: store,
            onMalformed: { message in reports.withLock { $0.append("\(message)") } }
        )
        #expect(applied == 1)
        #expect(try await store.snapshot() == [DemoUser(id: 1, name: "Alice", age: 25)])
        let report = reports.withLock { $0 }
        #expect(report.count == 1 && report[0].contains("without a numeric 'deltakit-order' header"), "\(report)")
    }
}
