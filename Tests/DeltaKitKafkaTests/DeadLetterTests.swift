import DeltaKit
import DeltaKitTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import DeltaKitKafka

/// Dead letters go through the sink's machinery (`RawMessageSink` over `SinkCore`): awaited until acknowledged,
/// and a full local queue suspends the sender instead of failing it.
@Suite("Dead letters on librdkafka's mock cluster", .timeLimit(.minutes(5)))
struct DeadLetterTests {
    /// A mock cluster (run by a sink that is closed at the end of the test).
    static func mockCluster(topic: String) async throws -> (KafkaEventSink<DemoUser>, KafkaMockCluster) {
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        return (sink, try #require(sink.mockCluster))
    }

    @Test("a full local queue suspends dead-letter senders: every message is acknowledged, none fails")
    func fullQueueSuspends() async throws {
        let topic = "dead-letters-full"
        let (sink, mock) = try await Self.mockCluster(topic: topic)
        mock.createTopic(topic, partitions: 1)
        // Each message stays in the queue of one for a round trip of 200 ms: concurrent senders find it full.
        for id: Int32 in 1...3 { mock.setRoundTripTime(broker: id, milliseconds: 200) }
        let raw = try RawMessageSink(
            kafka: .init(
                bootstrapServers: [mock.bootstrapServers],
                additionalProperties: ["queue.buffering.max.messages": "1"]
            ),
            topic: topic,
            logger: Logger(label: "test")
        )
        let events = (1...8).map { ChangeEvent<DemoUser>.insert(DemoUser(id: $0, name: "u\($0)", age: $0), order: 1) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for event in events {
                group.addTask {
                    try await raw.send(key: Array("\(event.key)".utf8), value: Array(try event.jsonData()))
                }
            }
            try await group.waitForAll()
        }
        #expect(raw.queueFullWaits > 0, "a sender found the queue full and waited")
        try await raw.close()
        for id: Int32 in 1...3 { mock.setRoundTripTime(broker: id, milliseconds: 0) }
        let log = try MockClusterTests.readLog(mock.bootstrapServers, topic: topic)
        #expect(Set(log.compactMap(\.event)) == Set(events))
        #expect(log.count == events.count)
        try await sink.close()
    }

    @Test("a source copies every malformed message to its dead-letter topic, acknowledged before the read ends")
    func sourceDeadLetters() async throws {
        let topic = "dead-letters-source"
        let dlq = "dead-letters-source-dlq"
        let (sink, mock) = try await Self.mockCluster(topic: topic)
        mock.createTopic(topic, partitions: 1)
        mock.createTopic(dlq, partitions: 1)
        let kafka = KafkaConfiguration(bootstrapServers: [mock.bootstrapServers])
        let valid = ChangeEvent<DemoUser>.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1)
        try await sink.send(valid)
        let raw = try RawMessageSink(kafka: kafka, topic: topic, logger: Logger(label: "test"))
        let malformed = (1...5).map { Array("not json \($0)".utf8) }
        for value in malformed { try await raw.send(key: Array("1".utf8), value: value) }
        try await raw.close()

        let reported = Mutex(0)
        let store = try InMemoryStateStore<DemoUser>()
        let applied = try await KafkaMaterializer.materialize(
            .init(kafka: kafka, topic: topic, groupID: nil, malformedPolicy: .deadLetter(topic: dlq)),
            into: store,
            onMalformed: { _ in reported.withLock { $0 += 1 } }
        )
        #expect(applied == 1)
        #expect(reported.withLock { $0 } == malformed.count)
        #expect(try MockClusterTests.readLog(mock.bootstrapServers, topic: dlq).count == malformed.count)
        try await sink.close()
    }
}
