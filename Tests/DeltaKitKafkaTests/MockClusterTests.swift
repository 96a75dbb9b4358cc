import DeltaKit
import DeltaKitTesting
import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing

@testable import DeltaKitKafka

/// Faults on librdkafka's in-process mock cluster (brokers down, injected request errors): no broker needed, so
/// these run as unit tests, and `scripts/test` runs them again on the system librdkafka (Debian's 2.0.2).
@Suite("Kafka faults on librdkafka's mock cluster", .timeLimit(.minutes(5)))
struct MockClusterTests {
    /// Every message of `topic` as a plain librdkafka consumer reads it (no DeltaKit source): partition, offset,
    /// and the event it decodes to (`nil` if it does not decode), in log order per partition.
    static func readLog(
        _ brokers: String,
        topic: String
    ) throws -> [(partition: Int32, offset: Int64, event: ChangeEvent<DemoUser>?)] {
        let handle = try RdKafkaHandle(
            kind: .consumer,
            properties: [
                ("bootstrap.servers", brokers), ("group.id", "deltakit-test-log"), ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
            ],
            callbacks: RdKafkaCallbacks(logger: Logger(label: "deltakit.test.log"))
        )
        let partitions = try #require(try handle.partitions(of: topic, timeoutMs: 5_000))
        try handle.assign(topic: topic, partitions: partitions, offset: -2)
        var ended = Set<Int32>()
        var log: [(partition: Int32, offset: Int64, event: ChangeEvent<DemoUser>?)] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ended.count < partitions.count {
            try #require(ContinuousClock.now < deadline, "the log of '\(topic)' was not read to its end within 60 s")
            guard let message = handle.consumerPoll(timeoutMs: 500) else { continue }
            if message.isPartitionEOF {
                ended.insert(message.partition)
            } else if message.error == nil {
                log.append(
                    (message.partition, message.offset, try? ChangeEvent<DemoUser>(jsonData: message.value ?? []))
                )
            }
        }
        return log.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
    }

    /// Prints, for each acknowledged event a test did not read back, where a plain consumer finds it in the log (a
    /// reader that skipped it) or that the log lacks it (acknowledged but never written), and each partition's
    /// offsets (a gap would be a lost message).
    static func explainMissing(_ missing: Set<ChangeEvent<DemoUser>>, in brokers: String, topic: String) throws {
        let log = try readLog(brokers, topic: topic)
        for event in missing.sorted(by: { $0.order < $1.order }) {
            let places = log.filter { $0.event == event }.map { "\($0.partition)@\($0.offset)" }
            print(
                "order \(event.order), key \(event.key): "
                    + (places.isEmpty ? "not in the log" : "in the log at \(places.joined(separator: ", "))")
            )
        }
        for partition in Set(log.map(\.partition)).sorted() {
            let offsets = log.filter { $0.partition == partition }.map(\.offset)
            let gaps = zip(offsets, offsets.dropFirst()).filter { $1 != $0 + 1 }.map { "\($0)→\($1)" }
            print(
                "partition \(partition): \(offsets.count) messages, gaps: \(gaps.isEmpty ? "none" : gaps.joined(separator: " "))"
            )
        }
    }

    /// The reference state of `events`.
    static func reference(_ events: [ChangeEvent<DemoUser>]) -> [DemoUser] {
        var state = LatestState<DemoUser>()
        for event in events { state.apply(event) }
        return state.snapshot()
    }

    static func mockSink(
        topic: String,
        messageTimeout: Duration,
        shutdownTimeout: Duration = .seconds(30),
        linger: Duration = .milliseconds(5),
        batchMessages: Int = 10_000,
        metrics: TestMetrics = TestMetrics()
    ) async throws -> KafkaEventSink<DemoUser> {
        try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: .init(
                    bootstrapServers: ["unused:9092"],
                    additionalProperties: ["test.mock.num.brokers": "3", "retry.backoff.ms": "50"]
                ),
                topic: topic,
                linger: linger,
                batchMessages: batchMessages,
                messageTimeout: messageTimeout,
                shutdownTimeout: shutdownTimeout
            ),
            metricsFactory: metrics
        )
    }

    /// Waits (observing, bounded: 5 s) until `condition` holds; the test stops if it never does.
    static func observe(_ what: String, _ condition: () throws -> Bool) async throws {
        for _ in 0..<1_000 where try !condition() { try await Task.sleep(for: .milliseconds(5)) }
        try #require(try condition(), "\(what) never happened")
    }

    @Test("flush() and close() send what is lingering at once: with linger 60 s both return long before it")
    func waitsSendLingeringMessages() async throws {
        let metrics = TestMetrics()
        let sink = try await Self.mockSink(
            topic: "linger",
            messageTimeout: .seconds(120),
            shutdownTimeout: .seconds(30),
            linger: .seconds(60),
            metrics: metrics
        )
        let clock = ContinuousClock()
        let start = clock.now
        var generator = DemoEventGenerator(seed: 11, users: 5)
        let (firstEvents, secondEvents) = (generator.next(20), generator.next(30))
        let dimensions = [("topic", "linger")]
        let sent = { try metrics.expectCounter("deltakit_kafka_events_sent_total", dimensions).totalValue }
        let acknowledged = {
            try metrics.expectCounter("deltakit_kafka_events_acknowledged_total", dimensions).totalValue
        }

        let first = Task { try await sink.send(contentsOf: firstEvents) }
        try await Self.observe("the first 20 events were enqueued") { try sent() == 20 }
        #expect(try acknowledged() == 0, "the batch lingers (60 s)")
        try await sink.flush()
        #expect(try acknowledged() == 20)
        _ = try await first.value

        let second = Task { try await sink.send(contentsOf: secondEvents) }
        try await Self.observe("the next 30 events were enqueued") { try sent() == 50 }
        #expect(try acknowledged() == 20, "the batch lingers (60 s)")
        try await sink.close()  // shutdownTimeout 30 s < linger: without sending at once it would purge and throw
        #expect(try acknowledged() == 50)
        _ = try await second.value
        #expect(clock.now - start < .seconds(60), "neither flush() nor close() waited for linger.ms")
    }

    @Test("mockClusterPurge: brokers down at close: close waits shutdownTimeout, purges, throws; failed = purged")
    func mockClusterPurgeOnClose() async throws {
        let metrics = TestMetrics()
        let sink = try await Self.mockSink(
            topic: "purge",
            messageTimeout: .seconds(120),
            shutdownTimeout: .seconds(1),
            metrics: metrics
        )
        let mock = try #require(sink.mockCluster)
        var generator = DemoEventGenerator(seed: 9, users: 5)
        try await sink.send(contentsOf: generator.next(10))
        for id: Int32 in 1...3 { mock.setBroker(id, up: false) }
        let stuck = generator.next(40)
        let sending = Task { try await sink.send(contentsOf: stuck) }
        let dimensions = [("topic", "purge")]
        let sent = { try metrics.expectCounter("deltakit_kafka_events_sent_total", dimensions).totalValue }
        // The 40 events are in librdkafka's queue, none can be delivered.
        try await Self.observe("the 40 events were enqueued") { try sent() == 50 }
        let closing = await #expect(throws: DeltaKitError.self) { try await sink.close() }
        #expect(closing?.code == .deliveryFailed && closing?.message.contains("purged") == true)
        let failed = try metrics.expectCounter("deltakit_kafka_events_failed_total", dimensions).totalValue
        let acknowledged = try metrics.expectCounter("deltakit_kafka_events_acknowledged_total", dimensions).totalValue
        #expect(failed == 40, "every purged event is counted as failed")
        #expect(acknowledged == 10)
        let result = await sending.result
        #expect(throws: DeltaKitError.self) { try result.get() }
    }

    @Test("acknowledged before, during and after broker outages and request errors: all in the final state")
    func mockClusterOutage() async throws {
        let topic = "faults"
        let sink = try await Self.mockSink(topic: topic, messageTimeout: .seconds(60))
        let mock = try #require(sink.mockCluster)
        print("librdkafka \(KafkaTopicAdmin.librdkafkaVersion), mock cluster at \(mock.bootstrapServers)")
        var generator = DemoEventGenerator(seed: 31, users: 12)
        var acknowledged: [ChangeEvent<DemoUser>] = []

        let before = generator.next(500)
        try await sink.send(contentsOf: before)
        acknowledged += before

        // Retriable broker errors on Produce: NOT_LEADER_FOR_PARTITION (6) and REQUEST_TIMED_OUT (7).
        mock.failProduceRequests(count: 3, errorCode: 6)
        mock.failProduceRequests(count: 2, errorCode: 7)
        let withErrors = generator.next(500)
        try await sink.send(contentsOf: withErrors)
        acknowledged += withErrors

        // All brokers down while a batch is being sent; back up a second later.
        for id: Int32 in 1...3 { mock.setBroker(id, up: false) }
        let during = generator.next(500)
        let clock = ContinuousClock()
        let sending = Task {
            _ = try await sink.send(contentsOf: during)
            return clock.now
        }
        try await Task.sleep(for: .seconds(1))  // the outage's length (fault injection, not synchronisation)
        let backUp = clock.now
        for id: Int32 in 1...3 { mock.setBroker(id, up: true) }
        let delivered = try await sending.value
        #expect(
            delivered >= backUp,
            "the outage took effect: nothing could be acknowledged while every broker was down"
        )
        acknowledged += during

        let after = generator.next(500)
        try await sink.send(contentsOf: after)
        acknowledged += after

        let store = try InMemoryStateStore<DemoUser>()
        let applied = try await KafkaMaterializer.materialize(
            .init(kafka: .init(bootstrapServers: [mock.bootstrapServers]), topic: topic, groupID: nil),
            into: store
        )
        #expect(applied >= acknowledged.count, "no acknowledged event is missing (retries may duplicate)")
        #expect(try await store.snapshot() == Self.reference(acknowledged))
        // Event by event: every acknowledged event is on the topic (a duplicate cannot hide a loss).
        let read = try await KafkaEventSource<DemoUser>.readAll(
            .init(bootstrapServers: [mock.bootstrapServers]),
            topic: topic
        )
        let missing = Set(acknowledged).subtracting(read)
        #expect(missing.isEmpty, "\(missing.count) acknowledged events are not on the topic")
        if !missing.isEmpty { try Self.explainMissing(missing, in: mock.bootstrapServers, topic: topic) }
        try await sink.close()
    }

    @Test(
        "a request that fails while the partition's next one is on its way: every acknowledged event is on the topic, in order"
    )
    func failedRequestWithAnotherInFlight() async throws {
        let topic = "pipelined"
        // One event per request, and every response 300 ms late: the five events are five requests, and without a
        // limit of one request in flight, the second is on its way when the first fails.
        let sink = try await Self.mockSink(topic: topic, messageTimeout: .seconds(60), batchMessages: 1)
        let mock = try #require(sink.mockCluster)
        try await sink.send(.insert(DemoUser(id: 1, name: "A", age: 1), order: 1))  // producer id and leader known
        for id: Int32 in 1...3 { mock.setRoundTripTime(broker: id, milliseconds: 300) }
        mock.failProduceRequests(count: 1, errorCode: 6)  // NOT_LEADER_FOR_PARTITION: not written, retried
        let events = (2...6).map { ChangeEvent.update(DemoUser(id: 1, name: "A", age: $0), order: Int64($0)) }
        try await sink.send(contentsOf: events)  // acknowledged
        for id: Int32 in 1...3 { mock.setRoundTripTime(broker: id, milliseconds: 0) }
        let log = try Self.readLog(mock.bootstrapServers, topic: topic)
        // librdkafka reports an event "implicitly acknowledged" when a later batch of its partition succeeds; the mock
        // cluster accepts that batch although the earlier one was not written (it does not check the idempotent
        // producer's sequence numbers), so with requests in flight behind it, order 2 was acknowledged and lost.
        #expect(log.map { $0.event?.order ?? -1 } == Array(1...6))
        try await sink.close()
    }

    @Test("an event that cannot be delivered is reported, and the sink stops instead of skipping it")
    func mockClusterPermanentOutage() async throws {
        let sink = try await Self.mockSink(topic: "dead", messageTimeout: .seconds(2))
        let mock = try #require(sink.mockCluster)
        try await sink.send(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        for id: Int32 in 1...3 { mock.setBroker(id, up: false) }
        let failed = await #expect(throws: DeltaKitError.self) {
            try await sink.send(.update(DemoUser(id: 1, name: "Alice", age: 26), order: 2))
        }
        #expect(failed?.code == .deliveryFailed)
        #expect((failed?.underlying as? KafkaError)?.code == .messageTimedOut)
        #expect((failed?.underlying as? KafkaError)?.name == "_MSG_TIMED_OUT")
        #expect(failed?.message.contains("key 1") == true)
        for id: Int32 in 1...3 { mock.setBroker(id, up: true) }
        let next = await #expect(throws: DeltaKitError.self) {
            try await sink.send(.update(DemoUser(id: 1, name: "Alice", age: 27), order: 3))
        }
        #expect(next?.code == .closed, "a later send must not leave a gap behind a failed one")
        await #expect(throws: DeltaKitError.self) { try await sink.flush() }
        try? await sink.close()
    }

    @Test("flush waits for the sends in progress, not for a send that starts later and is stuck")
    func flushIgnoresLaterSends() async throws {
        let topic = "flush"
        let metrics = TestMetrics()
        let sink = try await Self.mockSink(topic: topic, messageTimeout: .seconds(60), metrics: metrics)
        let mock = try #require(sink.mockCluster)
        mock.createTopic(topic, partitions: 2)
        mock.setLeader(topic: topic, partition: 0, broker: 1)
        mock.setLeader(topic: topic, partition: 1, broker: 2)
        // Learn which keys land on which partition.
        let probes = (1...6).map { ChangeEvent.insert(DemoUser(id: $0, name: "P", age: $0), order: Int64($0)) }
        try await sink.send(contentsOf: probes)
        let source = try await KafkaEventSource<DemoUser>(
            configuration: .init(
                kafka: .init(bootstrapServers: [mock.bootstrapServers]),
                topic: topic,
                groupID: nil,
                stopWhenCaughtUp: true
            )
        )
        var partitionOfKey: [Int: Int32] = [:]
        for try await consumed in source.events { partitionOfKey[consumed.event.key] = consumed.partition }
        try await source.close()
        let keyOnBroker1 = try #require(partitionOfKey.first { $0.value == 0 }?.key)
        let keyOnBroker2 = try #require(partitionOfKey.first { $0.value == 1 }?.key)
        let sent = { try metrics.expectCounter("deltakit_kafka_events_sent_total", [("topic", topic)]).totalValue }

        mock.setBroker(1, up: false)
        let first = Task { try await sink.send(.update(DemoUser(id: keyOnBroker1, name: "A", age: 1), order: 100)) }
        try await Self.observe("the first send was enqueued") { try sent() == 7 }
        let flush = Task { try await sink.flush() }
        try await Self.observe("the flush took its snapshot") { sink.flushesStarted == 1 }
        mock.setBroker(2, up: false)
        let laterDone = Atomic<Bool>(false)
        let later = Task {
            _ = try await sink.send(.update(DemoUser(id: keyOnBroker2, name: "B", age: 2), order: 101))
            laterDone.store(true, ordering: .releasing)
        }
        try await Self.observe("the later send was enqueued") { try sent() == 8 }
        mock.setBroker(1, up: true)
        _ = try await first.value
        try await flush.value
        // Broker 2 is still down: the later send cannot have been acknowledged, yet the flush returned.
        let laterDoneAtFlush = laterDone.load(ordering: .acquiring)
        #expect(!laterDoneAtFlush, "flush returned without waiting for the later send")
        mock.setBroker(2, up: true)
        try await later.value
        let laterDoneAtEnd = laterDone.load(ordering: .acquiring)
        #expect(laterDoneAtEnd)
        try await sink.close()
    }
}

@Suite("Partitions added while reading", .timeLimit(.minutes(5)))
struct PartitionDiscoveryTests {
    /// 600 events on a mock-cluster topic (spread over its partitions), and a source configuration that starts as if
    /// the topic had only partition 0 (librdkafka's mock cluster cannot add partitions to a topic).
    static func setUp(topic: String, refresh: Duration, stopWhenCaughtUp: Bool) async throws -> (
        sink: KafkaEventSink<DemoUser>, events: [ChangeEvent<DemoUser>], receipt: EventReceipt,
        configuration: KafkaEventSource<DemoUser>.Configuration
    ) {
        let sink = try await MockClusterTests.mockSink(topic: topic, messageTimeout: .seconds(30))
        let mock = try #require(sink.mockCluster)
        var generator = DemoEventGenerator(seed: 21, users: 40)
        let events = generator.next(600)
        let receipt = try await sink.send(contentsOf: events)
        var configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: .init(bootstrapServers: [mock.bootstrapServers]),
            topic: topic,
            stopWhenCaughtUp: stopWhenCaughtUp
        )
        configuration.initialPartitions = [0]
        configuration.partitionRefreshInterval = refresh
        return (sink, events, receipt, configuration)
    }

    @Test("a materializer without a group reads partitions added while it runs, from their beginning")
    func addedPartitionsAreRead() async throws {
        let (sink, events, receipt, configuration) = try await Self.setUp(
            topic: "grows",
            refresh: .milliseconds(200),
            stopWhenCaughtUp: false
        )
        #expect(receipt.offsets.count > 1, "the events are spread over several partitions")
        // Partition discovery must find the others and read them from offset 0.
        let store = try InMemoryStateStore<DemoUser>()
        let materializer = try KafkaMaterializer(
            source: try await KafkaEventSource(configuration: configuration),
            store: store
        )
        let run = Task { try await materializer.run() }
        try await MockClusterTests.observe("every event applied") { materializer.appliedEvents == 600 }
        #expect(try await store.snapshot() == MockClusterTests.reference(events))
        run.cancel()
        _ = await run.result
        try await sink.close()
    }

    @Test("without discovery the same source reads only partition 0 (the test's premise)")
    func premise() async throws {
        let (sink, _, receipt, configuration) = try await Self.setUp(
            topic: "grows-premise",
            refresh: .seconds(3600),
            stopWhenCaughtUp: true
        )
        let store = try InMemoryStateStore<DemoUser>()
        let applied = try await KafkaMaterializer.materialize(configuration, into: store)
        #expect(applied == Int(try #require(receipt.offsets[0])) + 1)
        try await sink.close()
    }
}
