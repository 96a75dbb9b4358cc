import DeltaKit
import DeltaKitTesting
import Foundation
import InMemoryTracing
import Logging
import Testing
import Tracing

@testable import DeltaKitKafka

/// Trace context on Kafka messages, on librdkafka's mock cluster. Tracers are bound with `withTracer` (task-local):
/// tests run in parallel in one process, and `InstrumentationSystem.bootstrap` can be called only once per process.
@Suite("Trace context on Kafka messages", .timeLimit(.minutes(5)))
struct TraceContextTests {
    /// Every message of `topic` as a plain librdkafka consumer reads it, with its headers.
    static func readMessages(_ brokers: String, topic: String) throws -> [RdKafkaMessage] {
        let handle = try RdKafkaHandle(
            kind: .consumer,
            properties: [
                ("bootstrap.servers", brokers), ("group.id", "deltakit-test-trace"), ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
            ],
            callbacks: RdKafkaCallbacks(logger: Logger(label: "deltakit.test.trace"))
        )
        let partitions = try #require(try handle.partitions(of: topic, timeoutMs: 5_000))
        try handle.assign(topic: topic, partitions: partitions, offset: -2)
        var ended = Set<Int32>()
        var messages: [RdKafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ended.count < partitions.count {
            try #require(ContinuousClock.now < deadline, "the log of '\(topic)' was not read to its end within 60 s")
            guard let message = handle.consumerPoll(timeoutMs: 500) else { continue }
            if message.isPartitionEOF {
                ended.insert(message.partition)
            } else if message.error == nil {
                messages.append(message)
            }
        }
        return messages
    }

    @Test("no tracer: no header on any message, in a span or not")
    func noTracerNoHeaders() async throws {
        let topic = "trace-none"
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        var generator = DemoEventGenerator(seed: 3, users: 10)
        try await sink.send(contentsOf: generator.next(50))
        // A span without a bootstrapped tracer: the no-op instrument writes nothing.
        let inSpan = generator.next(50)
        try await withSpan("no tracer") { _ in _ = try await sink.send(contentsOf: inSpan) }
        try await sink.close()
        let messages = try Self.readMessages(mock.bootstrapServers, topic: topic)
        #expect(messages.count == 100)
        #expect(messages.allSatisfy { $0.traceHeaders.isEmpty })
    }

    @Test("a span's context: sent as headers, extracted by the source, continued by the materializer and its feed")
    func spanContextTravels() async throws {
        let topic = "trace-span"
        let tracer = InMemoryTracer()
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        let traced = DemoUser(id: 1, name: "traced", age: 40)
        let traceID = try await withTracer(tracer) {
            try await withSpan("write user 1") { span in
                try await sink.send(.update(traced, order: 10))
                return try #require(span.context.inMemorySpanContext).traceID
            }
        }
        try await sink.send(.update(DemoUser(id: 2, name: "plain", age: 41), order: 11))
        try await sink.close()

        let messages = try Self.readMessages(mock.bootstrapServers, topic: topic)
        let headers = messages.map { $0.traceHeaders }
        #expect(headers.filter(\.isEmpty).count == 1, "the event sent outside the span has no header")
        #expect(
            headers.contains { $0.contains(TraceHeader(name: InMemoryTracer.traceIDKey, value: traceID)) },
            "the event sent in the span carries its trace id: \(headers)"
        )

        let store = try InMemoryStateStore<DemoUser>()
        var feed = try await store.changes(from: .now).makeAsyncIterator()
        let materializer = try await KafkaMaterializer(
            configuration: .init(kafka: .init(bootstrapServers: [mock.bootstrapServers]), topic: topic),
            store: store
        )
        let running = withTracer(tracer) { Task { try await materializer.run() } }
        var elements: [ChangeFeedElement<DemoUser>] = []
        while elements.count < 2, let element = try await feed.next() { elements.append(element) }
        running.cancel()
        _ = await running.result
        #expect(elements.first { $0.change.key == 1 }?.traceContext?.inMemorySpanContext?.traceID == traceID)
        #expect(elements.first { $0.change.key == 2 }.map { $0.traceContext == nil } == true)
        #expect(tracer.finishedSpans.filter { $0.operationName == "deltakit.materialize" }.map(\.traceID) == [traceID])
    }

    @Test("a source reads trace headers only when an instrument is active as it starts reading")
    func headersReadOnlyWithAnInstrument() async throws {
        let topic = "trace-gate"
        let tracer = InMemoryTracer()
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        var generator = DemoEventGenerator(seed: 5, users: 10)
        let events = generator.next(20)
        let traceID = try await withTracer(tracer) {
            try await withSpan("write") { span in
                _ = try await sink.send(contentsOf: events)
                return try #require(span.context.inMemorySpanContext).traceID
            }
        }
        try await sink.close()

        /// The events of the topic as a source started in the calling task reads them.
        func read() async throws -> [KafkaConsumedEvent<DemoUser>] {
            let source = try await KafkaEventSource<DemoUser>(
                configuration: .init(
                    kafka: .init(bootstrapServers: [mock.bootstrapServers]),
                    topic: topic,
                    stopWhenCaughtUp: true
                )
            )
            var consumed: [KafkaConsumedEvent<DemoUser>] = []
            for try await event in source.events { consumed.append(event) }
            try await source.close()
            return consumed
        }
        let plain = try await read()
        #expect(plain.count == events.count)
        #expect(plain.allSatisfy { $0.traceHeaders.isEmpty }, "no instrument: the headers are not parsed")
        let traced = try await withTracer(tracer) { try await read() }
        #expect(traced.count == events.count)
        #expect(
            traced.allSatisfy {
                $0.traceHeaders.contains(TraceHeader(name: InMemoryTracer.traceIDKey, value: traceID))
            },
            "an instrument bound around the reader: every event carries the writer's trace"
        )
    }
}
