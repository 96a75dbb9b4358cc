import DeltaKit
import DeltaKitTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import DeltaKitKafka

/// A message whose JSON repeats a name, or whose Kafka key is not its record's key, is
/// malformed — reported and skipped, never applied; a message without a key is applied.
@Suite("Strict messages: repeated names and mis-keyed events", .timeLimit(.minutes(5)))
struct StrictMessageTests {
    static let ts = "2026-12-07T00:00:00.000000+00:00"

    static func message(key: String?, value: String) -> RdKafkaMessage {
        RdKafkaMessage(
            topic: "t",
            partition: 0,
            offset: 5,
            key: key.map { Array($0.utf8) },
            value: Array(value.utf8),
            error: nil,
            isPartitionEOF: false
        )
    }

    @Test("the consumer refuses an event whose Kafka key is not its record's, and accepts a keyless one")
    func misKeyed() throws {
        let value = #"{"id":2,"name":"EVIL","age":1,"op":"update","event_order":9,"ts":"\#(Self.ts)"}"#
        let error = #expect(throws: ChangeEventDecodingError.self) {
            try SourceCore<DemoUser>.keyedEvent(Self.message(key: "1", value: value))
        }
        #expect(error?.field == "id")
        #expect(error?.reason.contains("Kafka key is `1`") == true)
        #expect(error?.reason.contains("record's key is `2`") == true)
        // Not canonical: "02" is other bytes, so another partition than "2".
        #expect(throws: ChangeEventDecodingError.self) {
            try SourceCore<DemoUser>.keyedEvent(Self.message(key: "02", value: value))
        }
        #expect(try SourceCore<DemoUser>.keyedEvent(Self.message(key: "2", value: value)).key == 2)
        #expect(try SourceCore<DemoUser>.keyedEvent(Self.message(key: nil, value: value)).key == 2)
    }

    @Test("end to end on the mock cluster: repeated names and mis-keyed events never change the store")
    func mockClusterStrictMessages() async throws {
        let topic = "strict"
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        let at = Date(timeIntervalSince1970: 1_796_601_600)
        let valid: [ChangeEvent<DemoUser>] = [
            .insert(DemoUser(id: 1, name: "Alice", age: 25), order: 10, timestamp: at),
            .insert(DemoUser(id: 2, name: "Bob", age: 30), order: 10, timestamp: at),
        ]
        try await sink.send(contentsOf: valid)
        let ts = Self.ts
        // Each would change user 1 or 2 if applied (a reader that let the last name win, or ignored the Kafka key).
        let bad: [(key: String?, value: String, field: String)] = [
            ("1", #"{"id":1,"name":"EVIL","age":1,"op":"update","event_order":20,"ts":"\#(ts)","id":2}"#, "id"),
            (
                "2",
                #"{"id":2,"name":"EVIL","age":1,"op":"update","event_order":1,"ts":"\#(ts)","event_order":9000000000000000}"#,
                "event_order"
            ),
            ("2", #"{"id":2,"name":null,"age":null,"op":"delete","event_order":20,"ts":"\#(ts)","op":"update"}"#, "op"),
            (
                "1", #"{"id":1,"name":"Alice","age":25,"op":"update","event_order":20,"ts":"\#(ts)","name":"EVIL"}"#,
                "name"
            ),
            ("1", #"{"id":1,"name":"EVIL","age":1,"op":"update","event_order":20,"ts":"\#(ts)","\u0069d":2}"#, "id"),
            (nil, #"{"id":2,"name":"EVIL","age":1,"op":"update","event_order":20,"ts":"\#(ts)","id":2}"#, "id"),
            // Mis-keyed: valid JSON for user 2 under key 1.
            ("1", #"{"id":2,"name":"EVIL","age":1,"op":"update","event_order":20,"ts":"\#(ts)"}"#, "id"),
        ]
        let raw = try RawMessageSink(
            kafka: .init(bootstrapServers: [mock.bootstrapServers]),
            topic: topic,
            logger: .init(label: "test")
        )
        for message in bad {
            try await raw.send(key: message.key.map { Array($0.utf8) }, value: Array(message.value.utf8))
        }
        // A keyless valid event is applied: the order of its key's events is then its producer's business.
        let keyless = ChangeEvent<DemoUser>.update(DemoUser(id: 3, name: "Carol", age: 40), order: 30, timestamp: at)
        try await raw.send(key: nil, value: Array(try keyless.jsonData()))
        try await raw.close()

        let reported = Mutex<[MalformedMessage]>([])
        let store = try InMemoryStateStore<DemoUser>()
        let applied = try await KafkaMaterializer.materialize(
            .init(kafka: .init(bootstrapServers: [mock.bootstrapServers]), topic: topic, groupID: nil),
            into: store,
            onMalformed: { message in reported.withLock { $0.append(message) } }
        )
        #expect(applied == valid.count + 1)
        #expect(try await store.snapshot() == MockClusterTests.reference(valid + [keyless]))
        #expect(try await Set(store.history(limit: 100)) == Set(valid + [keyless]))
        let malformed = reported.withLock { $0 }
        #expect(malformed.count == bad.count)
        for message in bad {
            let report = malformed.first {
                $0.value == Array(message.value.utf8) && $0.key == message.key.map { Array($0.utf8) }
            }
            #expect(report?.error.field == message.field, "\(message.value)")
            #expect(
                report?.description.contains("\(topic)[\(report?.partition ?? -1)]@\(report?.offset ?? -1)") == true
            )
        }
        let misKeyed = try #require(malformed.first { $0.error.reason.contains("Kafka key") })
        #expect(
            misKeyed.description.contains("Kafka key is `1`") && misKeyed.description.contains("record's key is `2`")
        )
        try await sink.close()
    }
}
