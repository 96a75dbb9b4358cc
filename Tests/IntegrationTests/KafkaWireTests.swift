import DeltaKit
import DeltaKitKafka
import DeltaKitTesting
import Foundation
import Testing

/// A record keyed by a `String` (the message key is the key's UTF-8 text, not JSON).
struct Account: ChangeRecord {
    static let keyField = "handle"
    var handle: String
    var balance: Int
    var key: String { handle }
}

@Suite("What KafkaEventSink puts on the wire", .requiresKafka, .timeLimit(.minutes(5)))
struct KafkaWireTests {
    /// Kafka's Java client's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), the default partitioner's hash.
    static func murmur2(_ data: [UInt8]) -> Int32 {
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h: UInt32 = 0x9747_b28c ^ UInt32(data.count)
        var index = 0
        while index + 4 <= data.count {
            var k =
                UInt32(data[index]) | UInt32(data[index + 1]) << 8 | UInt32(data[index + 2]) << 16
                | UInt32(data[index + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
            index += 4
        }
        let rest = data.count - index
        if rest >= 3 { h ^= UInt32(data[index + 2]) << 16 }
        if rest >= 2 { h ^= UInt32(data[index + 1]) << 8 }
        if rest >= 1 {
            h ^= UInt32(data[index])
            h = h &* m
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    /// The partition Java's default partitioner picks for a non-null key.
    static func javaPartition(_ key: [UInt8], partitions: Int32) -> Int32 {
        (murmur2(key) & 0x7fff_ffff) % partitions
    }

    @Test("the value bytes on the topic are jsonData() byte for byte, and the partition is Java's murmur2 of the key")
    func wireBytesAndPartition() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers, partitions: 4)
        var generator = DemoEventGenerator(seed: 77, users: 300)
        let events = generator.next(400)
        try await sink.send(contentsOf: events)
        try await sink.close()
        let raw = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: sink.topic)
        #expect(raw.count == events.count)
        // Per partition, messages keep the order they were sent in: compare each with its event's encoding.
        var expected: [Int32: [String]] = [:]
        for event in events {
            let key = try event.keyBytes
            expected[Self.javaPartition(key, partitions: 4), default: []].append(
                String(decoding: try event.jsonData(), as: UTF8.self)
            )
        }
        var actual: [Int32: [String]] = [:]
        for message in raw {
            let partition = try #require(message["partition"].flatMap { $0 }.flatMap { Int32($0) })
            actual[partition, default: []].append(try #require(message["value"] ?? nil))
        }
        #expect(actual == expected, "partitions and bytes as Java's partitioner and jsonData() give them")
        #expect(Set(actual.keys).count > 1, "300 keys spread over more than one partition")
    }

    @Test("a String-keyed record travels with its text as the message key and reads back into state")
    func stringKeys() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaEventSink<Account>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: TestEnvironment.uniqueTopic("accounts"),
                createTopic: .init(partitions: 2)
            )
        )
        let events: [ChangeEvent<Account>] = [
            .insert(Account(handle: "zoë \"q\"", balance: 5), order: 1),
            .insert(Account(handle: "bob", balance: 7), order: 2),
            .update(Account(handle: "zoë \"q\"", balance: 6), order: 3),
            .delete(key: "bob", order: 4),
        ]
        try await sink.send(contentsOf: events)
        try await sink.close()
        let raw = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: sink.topic)
        #expect(Set(raw.compactMap { $0["key"] ?? nil }) == ["zoë \"q\"", "bob"])
        let store = try InMemoryStateStore<Account>()
        try await KafkaMaterializer.materialize(
            .init(kafka: KafkaTestSupport.kafka(brokers), topic: sink.topic),
            into: store
        )
        #expect(try await store.snapshot() == [Account(handle: "zoë \"q\"", balance: 6)])
    }
}
