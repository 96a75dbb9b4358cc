import DeltaKit
import DeltaKitKafka
import DeltaKitOutbox
import DeltaKitRisingWave
import DeltaKitTesting
import Foundation
import InMemoryTracing
import Testing
import Tracing

/// One trace followed from an outbox enqueue to a change feed element, on the real PostgreSQL and Kafka of
/// `scripts/test`. The tracer is bound with `withTracer` (task-local), not bootstrapped: tests run in parallel in one
/// process, and `InstrumentationSystem.bootstrap` can be called only once per process.
@Suite(
    "Trace context from an outbox enqueue to a change feed element",
    .requiresPostgres,
    .requiresKafka,
    .timeLimit(.minutes(5))
)
struct TraceContextTests {
    @Test("one trace id: enqueue in a span → relay → Kafka header → source → materializer span → feed element")
    func followsOneTrace() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let (outbox, connection, configuration) = try await OutboxTests.makeOutbox()
        let topic = TestEnvironment.uniqueTopic("deltakit-trace")
        let tracer = InMemoryTracer()

        // The application: one write inside a span, one outside any.
        let traceID = try await withTracer(tracer) {
            try await withSpan("update user 1") { span in
                try await connection.execute("BEGIN")
                _ = try await outbox.enqueue(OutboxTests.user(1, "traced"), topic: topic, on: connection)
                try await connection.execute("COMMIT")
                return try #require(span.context.inMemorySpanContext).traceID
            }
        }
        try await connection.execute("BEGIN")
        _ = try await outbox.enqueue(OutboxTests.user(2, "untraced"), topic: topic, on: connection)
        try await connection.execute("COMMIT")
        let rows = try await connection.query(
            "SELECT message_key, trace_headers FROM \(outbox.table) ORDER BY id",
            text: []
        )
        #expect(rows.count == 2)
        #expect(rows.first?["trace_headers"]?.contains(traceID) == true, "the row keeps the span's context")
        #expect(rows.last?["trace_headers"] == nil, "no span, no context stored")
        await connection.close()

        // The relay runs without any tracer: it forwards what the rows hold.
        let sink = try await KafkaTestSupport.makeSink(brokers, topic: topic, partitions: 2)
        let relay = try OutboxRelay(
            outbox: outbox,
            connection: configuration,
            sink: sink,
            configuration: .init(topic: topic, exitWhenEmpty: true)
        )
        try await relay.run()
        try await sink.close()
        #expect(relay.published == 2)

        // An independent client sees the context as Kafka headers on the traced event only.
        let raw = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: topic)
        let headers = Dictionary(
            uniqueKeysWithValues: raw.map { (($0["key"] ?? nil) ?? "", ($0["headers"] ?? nil) ?? "") }
        )
        #expect(headers["1"]?.contains(traceID) == true, "headers of the traced event: \(headers["1"] ?? "none")")
        #expect(headers["2"] == "{}", "the untraced event has no header")

        // The materializer extracts it, applies the traced event in a span of the same trace, and the change feed
        // element of that change carries it.
        let store = try InMemoryStateStore<DemoUser>()
        var feed = try await store.changes(from: .now).makeAsyncIterator()
        let materializer = try await KafkaMaterializer(
            configuration: .init(kafka: KafkaTestSupport.kafka(brokers), topic: topic),
            store: store
        )
        let running = withTracer(tracer) { Task { try await materializer.run() } }
        var elements: [ChangeFeedElement<DemoUser>] = []
        while elements.count < 2, let element = try await feed.next() { elements.append(element) }
        running.cancel()
        _ = await running.result

        let traced = try #require(elements.first { $0.change.key == 1 })
        let untraced = try #require(elements.first { $0.change.key == 2 })
        #expect(traced.traceContext?.inMemorySpanContext?.traceID == traceID)
        #expect(untraced.traceContext == nil)
        let applied = tracer.finishedSpans.filter { $0.operationName == "deltakit.materialize" }
        #expect(applied.map(\.traceID) == [traceID], "one materializer span, in the enqueue's trace")
        #expect(
            applied.first?.spanContext.parentSpanID != nil,
            "the materializer's span continues the enqueue's span, it does not start a trace"
        )
    }

    @Test("provisioning an outbox made before trace_headers existed adds the column, and enqueues then store it")
    func migratesOlderOutbox() async throws {
        let url = try TestEnvironment.requirePostgres()
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        let outbox = try PostgresOutbox(table: "outbox_\(UUID().uuidString.prefix(8).lowercased())")
        // The table as the DDL created it before: no trace_headers column.
        try await connection.execute(
            """
            CREATE TABLE \(outbox.table) (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, topic text NOT NULL, message_key text NOT NULL,
                event_order bigint NOT NULL, payload text NOT NULL, traceparent text,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp())
            """
        )
        try await outbox.provision(connection: connection)
        try await outbox.provision(connection: connection)  // idempotent
        let tracer = InMemoryTracer()
        let traceID = try await withTracer(tracer) {
            try await withSpan("write") { span in
                _ = try await outbox.enqueue(OutboxTests.user(1), topic: "users", on: connection)
                return try #require(span.context.inMemorySpanContext).traceID
            }
        }
        let rows = try await connection.query("SELECT trace_headers FROM \(outbox.table)", text: [])
        #expect(rows.first?["trace_headers"]?.contains(traceID) == true)
        await connection.close()
    }
}
