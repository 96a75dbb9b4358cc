import DeltaKit
import DeltaKitKafka
import DeltaKitOutbox
import DeltaKitRisingWave
import DeltaKitTesting
import Foundation
import Testing

/// The relay sends a row that DeltaKit's enqueue wrote (its payload holds the assigned order, the row is marked
/// with the record type's wire format) as its payload holds it, without decoding it; every other row it decodes.
/// Both must give Kafka the same messages.
@Suite(
    "Outbox relay: forwarded payloads and decoded ones give the same messages",
    .requiresPostgres,
    .requiresKafka,
    .timeLimit(.minutes(5))
)
struct OutboxForwardingTests {
    /// Inserts, updates and deletes on a few keys, with names that need escaping, own orders below and above
    /// what the outbox assigns, and a timestamp with microseconds.
    static let events: [ChangeEvent<DemoUser>] = {
        let timestamp = Date(timeIntervalSince1970: 1_796_000_000.123456)
        var events: [ChangeEvent<DemoUser>] = []
        for round in 0..<6 {
            for id in 1...4 {
                let name = ["plain", "quote \" and \\ backslash", "ünïcödé ✓", "tab\tnew\nline"][(id + round) % 4]
                let user = DemoUser(id: id, name: name, age: 20 + round)
                let order: Int64 = round == 3 ? 1_000 + Int64(id) : 0
                switch (round + id) % 5 {
                case 0: events.append(.delete(key: id, order: order, timestamp: timestamp))
                case 1: events.append(.insert(user, order: order, timestamp: timestamp))
                default: events.append(.update(user, order: order, timestamp: timestamp))
                }
            }
        }
        return events
    }()

    /// The enqueue statement as code written before the payload carried the assigned order: the row keeps the
    /// event's own order in its payload and has no mark, so the relay must decode it.
    static func unmarkedSQL(_ outbox: PostgresOutbox) -> String {
        """
        WITH next AS (
            INSERT INTO \(outbox.table)_keys AS k (topic, message_key, last_order) VALUES ($1, $2, GREATEST($3::bigint, 1))
            ON CONFLICT (topic, message_key) DO UPDATE SET last_order = GREATEST(k.last_order + 1, $3::bigint)
            RETURNING last_order
        )
        INSERT INTO \(outbox.table) (topic, message_key, event_order, payload, traceparent, trace_headers)
        SELECT $1, $2, last_order, $4, $5, $6 FROM next
        RETURNING id, event_order
        """
    }

    /// Relays every publishable row of `outbox` to `topic` (one partition, tombstones on); returns the relay.
    static func relay(
        _ outbox: PostgresOutbox,
        _ configuration: RisingWaveConnection.Configuration,
        topic: String,
        brokers: String
    ) async throws -> OutboxRelay<KafkaEventSink<DemoUser>> {
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: topic,
                createTopic: .init(partitions: 1),
                sendsTombstones: true
            )
        )
        let relay = try OutboxRelay(
            outbox: outbox,
            connection: configuration,
            sink: sink,
            configuration: .init(topic: topic, batchSize: 7, exitWhenEmpty: true)
        )
        try await relay.run()
        try await sink.close()
        return relay
    }

    @Test(
        "marked rows are forwarded, unmarked and poisoned ones decoded; key, value bytes and headers (tombstones too) are the decoded path's"
    )
    func forwardedEqualsDecoded() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let (mixed, connection, configuration) = try await OutboxTests.makeOutbox()
        let (decoded, _, _) = try await OutboxTests.makeOutbox()
        let mixedTopic = TestEnvironment.uniqueTopic("deltakit-forward")
        let decodedTopic = TestEnvironment.uniqueTopic("deltakit-decode")
        // The same events in the same order into both outboxes: into `mixed` through the enqueue statement, except
        // every third one, written unmarked (rows of both kinds share keys and batches); into `decoded` all unmarked.
        var marked = 0
        for (index, event) in Self.events.enumerated() {
            let traceparent =
                index % 4 == 1 ? "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033\(index + 10)-01" : nil
            if index % 3 == 2 {
                let statement = try mixed.enqueueStatement(event, topic: mixedTopic, traceparent: traceparent)
                _ = try await connection.query(Self.unmarkedSQL(mixed), text: Array(statement.bindings.prefix(6)))
            } else {
                _ = try await mixed.enqueue(event, topic: mixedTopic, traceparent: traceparent, on: connection)
                marked += 1
            }
            let statement = try decoded.enqueueStatement(event, topic: decodedTopic, traceparent: traceparent)
            _ = try await connection.query(Self.unmarkedSQL(decoded), text: Array(statement.bindings.prefix(6)))
        }
        // A marked row whose payload is not an event is decoded, fails, and holds back only its key.
        _ = try await connection.query(
            """
            INSERT INTO \(mixed.table) (topic, message_key, event_order, payload, payload_format)
            VALUES ($1, '99', 1, 'not an event', (SELECT payload_format FROM \(mixed.table) WHERE payload_format IS NOT NULL LIMIT 1))
            """,
            text: [mixedTopic]
        )
        // The marked rows' payloads hold the order the outbox assigned; the unmarked rows' the events' own.
        let rows = try await connection.query(
            "SELECT event_order, payload, payload_format FROM \(mixed.table) WHERE message_key <> '99' ORDER BY id",
            text: []
        )
        #expect(rows.filter { $0["payload_format"] != nil }.count == marked)
        for row in rows where row["payload_format"] != nil {
            let event = try ChangeEvent<DemoUser>(jsonData: Data((row["payload"] ?? "").utf8))
            #expect(String(event.order) == row["event_order"])
        }
        await connection.close()

        let mixedRelay = try await Self.relay(mixed, configuration, topic: mixedTopic, brokers: brokers)
        let decodedRelay = try await Self.relay(decoded, configuration, topic: decodedTopic, brokers: brokers)
        #expect(mixedRelay.published == Self.events.count)
        #expect(mixedRelay.forwarded == marked, "every marked row was sent as its payload holds it")
        #expect(decodedRelay.forwarded == 0, "no unmarked row was forwarded")
        #expect(mixedRelay.heldBack.map(\.key) == ["99"], "the poisoned marked row was decoded and held back")

        let forwardedMessages = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: mixedTopic)
        let decodedMessages = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: decodedTopic)
        let deletes = Self.events.filter { $0.operation == .delete }.count
        #expect(
            decodedMessages.count == Self.events.count + deletes,
            "one message per event and a tombstone per delete"
        )
        #expect(forwardedMessages == decodedMessages)
        for (forwarded, decoded) in zip(forwardedMessages, decodedMessages) where forwarded != decoded {
            Issue.record("forwarded \(forwarded) but decoding gives \(decoded)")
        }
        #expect(decodedMessages.contains { ($0["headers"] ?? nil)?.contains("deltakit-order") == true })
        #expect(decodedMessages.contains { ($0["headers"] ?? nil)?.contains("traceparent") == true })
    }
}
