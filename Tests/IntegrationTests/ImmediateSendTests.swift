import DeltaKit
import DeltaKitKafka
import DeltaKitTesting
import Foundation
import Testing

/// The outbox relay's sends wait for nothing but their acknowledgements, so the sink sends what lingers of them as
/// soon as the last message is enqueued (`SinkStateMachine.seal(_:waiter:immediate:)`) instead of after
/// `linger.ms`. With a linger of 20 s, a send that lingered would take 20 s; the relay's sends must not.
@Suite("Kafka sink: the outbox relay's sends do not wait for the linger", .requiresKafka, .timeLimit(.minutes(5)))
struct ImmediateSendTests {
    @Test(
        "with a 20 s linger, forwarded payloads, events with their trace headers and mixed batches are acknowledged in well under it"
    )
    func relaySendsDoNotLinger() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: TestEnvironment.uniqueTopic("deltakit-immediate"),
                linger: .seconds(20),
                createTopic: .init(partitions: 1)
            )
        )
        let timestamp = Date(timeIntervalSince1970: 1_796_000_000.123456)
        func event(_ id: Int, order: Int64) -> ChangeEvent<DemoUser> {
            .insert(DemoUser(id: id, name: "user \(id)", age: 20 + id), order: order, timestamp: timestamp)
        }
        func encoded(_ id: Int, order: Int64) throws -> EncodedEvent {
            let json = String(decoding: try event(id, order: order).jsonData(), as: UTF8.self)
            return try #require(EncodedEvent(key: String(id), json: json, order: order))
        }
        let clock = ContinuousClock()
        // Each send's messages on partition 0 after the previous send's: its receipt names its last offset.
        var expectedOffset: Int64 = -1
        let sends: [(String, () async throws -> EventReceipt)] = [
            (
                "forwarded payloads",
                { try await sink.send(encoded: [try encoded(1, order: 1), try encoded(2, order: 2)]) }
            ),
            (
                "events with trace headers",
                {
                    try await sink.send(
                        contentsOf: [event(3, order: 3), event(4, order: 4)],
                        traceHeaders: [
                            [],
                            [
                                TraceHeader(
                                    name: "traceparent",
                                    value:
                                        "00-\(String(repeating: "1", count: 32))-\(String(repeating: "2", count: 16))-01"
                                )
                            ],
                        ]
                    )
                }
            ),
            (
                "a mixed batch",
                { try await sink.send([.encoded(try encoded(5, order: 5)), .event(event(6, order: 6), trace: [])]) }
            ),
        ]
        for (name, send) in sends {
            let start = clock.now
            let receipt = try await send()
            let elapsed = clock.now - start
            expectedOffset += 2
            #expect(elapsed < .seconds(10), "\(name): \(elapsed) — it waited for the linger")
            #expect(receipt.offsets == [0: expectedOffset], "\(name): \(receipt)")
        }
        try await sink.close()
    }
}
