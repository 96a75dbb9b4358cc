import DeltaKit
import DeltaKitTesting
import Foundation
import Logging
import MetricsTestKit
import ServiceLifecycle
import Synchronization
import Testing

@testable import DeltaKitKafka

@Suite("Kafka on a real broker", .requiresKafka, .timeLimit(.minutes(5)))
struct KafkaIntegrationTests {
    @Test("KafkaEventSink passes the EventSink conformance suite")
    func sinkConformance() async throws {
        let brokers = try TestEnvironment.requireKafka()
        try await EventSinkConformance(
            makeSink: { try await KafkaTestSupport.makeSink(brokers) },
            readBack: { sink in
                try await sink.flush()
                return try await KafkaEventSource<DemoUser>.readAll(KafkaTestSupport.kafka(brokers), topic: sink.topic)
            },
            makeScalarSink: {
                let sink = try await KafkaEventSink<ScalarSample>(
                    configuration: .init(
                        kafka: KafkaTestSupport.kafka(brokers),
                        topic: TestEnvironment.uniqueTopic(),
                        createTopic: .init(partitions: 2)
                    )
                )
                return (
                    sink,
                    {
                        try await sink.flush()
                        let source = try await KafkaEventSource<ScalarSample>(
                            configuration: .init(
                                kafka: KafkaTestSupport.kafka(brokers),
                                topic: sink.topic,
                                stopWhenCaughtUp: true
                            )
                        )
                        var events: [ChangeEvent<ScalarSample>] = []
                        for try await consumed in source.events { events.append(consumed.event) }
                        try await source.close()
                        return events
                    }
                )
            }
        ).run()
    }

    /// Runs in scripts/test's pass on the system librdkafka (Debian 12: 2.0.2, which cannot talk to Tansu).
    @Test(
        "oldLibrdkafka: a librdkafka too old for the broker is named as the cause, with what librdkafka said",
        .enabled(if: RdKafka.version < 0x0202_0000, "needs a librdkafka older than 2.2 (scripts/test's system pass)")
    )
    func oldLibrdkafka() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let error = await #expect(throws: DeltaKitError.self) {
            _ = try await KafkaEventSink<DemoUser>(
                configuration: .init(
                    kafka: .init(bootstrapServers: [brokers], connectTimeout: .seconds(5)),
                    topic: TestEnvironment.uniqueTopic()
                )
            )
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("ApiVersionRequest failed") == true, "\(String(describing: error))")
        #expect(error?.message.contains("too old") == true && error?.message.contains("answered,") == true)
        #expect((error?.underlying as? KafkaError)?.code == .unsupportedFeature, "\(String(describing: error))")
    }

    @Test("KafkaEventSource and KafkaMaterializer pass the StateStore conformance suite")
    func materializerConformance() async throws {
        let brokers = try TestEnvironment.requireKafka()
        // The same suite, and the same invalid messages, as the in-memory store's: both leave the same state.
        try await StateStoreConformance(
            load: { events in
                let sink = try await KafkaTestSupport.makeSink(brokers)
                try await sink.send(contentsOf: events)
                try await sink.close()
                let store = try InMemoryStateStore<DemoUser>()
                try await KafkaMaterializer.materialize(
                    .init(kafka: KafkaTestSupport.kafka(brokers), topic: sink.topic, groupID: nil),
                    into: store
                )
                return store
            },
            loadWire: { messages in
                let topic = TestEnvironment.uniqueTopic()
                let admin = try KafkaTopicAdmin(configuration: KafkaTestSupport.kafka(brokers))
                try await admin.ensureTopic(topic, partitions: 4)
                try KafkaTestSupport.produceRawViaPython(brokers, topic: topic, values: messages)
                let store = try InMemoryStateStore<DemoUser>()
                let malformed = Counter()
                try await KafkaMaterializer.materialize(
                    .init(kafka: KafkaTestSupport.kafka(brokers), topic: topic),
                    into: store,
                    onMalformed: { _ in malformed.increment() }
                )
                #expect(malformed.value == StateStoreConformance<InMemoryStateStore<DemoUser>>.invalidMessages.count)
                return store
            }
        ).run()
    }

    @Test("10,000 seeded demo events on 4 partitions, materialized, equal the in-memory reference")
    func tenThousand() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var generator = DemoEventGenerator(seed: 2024, users: 50)
        let events = generator.next(10_000)
        try await sink.send(contentsOf: events)
        try await sink.close()
        let store = try InMemoryStateStore<DemoUser>()
        let applied = try await KafkaMaterializer.materialize(
            .init(kafka: KafkaTestSupport.kafka(brokers), topic: sink.topic, groupID: nil),
            into: store
        )
        #expect(applied == 10_000)
        #expect(try await store.snapshot() == KafkaTestSupport.reference(events))
        let admin = try KafkaTopicAdmin(configuration: KafkaTestSupport.kafka(brokers))
        #expect(try await admin.partitions(of: sink.topic)?.count == 4)
    }

    @Test("the bytes on the topic are the demo's JSON, keyed by id (read by an independent client)")
    func wireBytes() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var generator = DemoEventGenerator(seed: 9)
        let events = generator.next(30)
        try await sink.send(contentsOf: events)
        try await sink.close()
        let raw = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: sink.topic)
        #expect(raw.count == 30)
        var partitionOfKey: [String: String] = [:]
        for message in raw {
            let value = try #require(message["value"] ?? nil)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(value.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["id", "name", "age", "op", "event_order", "ts"])
            let key = try #require(message["key"] ?? nil)
            #expect(key == "\(object["id"]!)", "the message key is the record key as text")
            let partition = try #require(message["partition"] ?? nil)
            #expect(partitionOfKey[key, default: partition] == partition, "one key, one partition")
            partitionOfKey[key] = partition
        }
    }

    @Test("with a group, malformed messages at a partition's end are committed past once the batch is applied")
    func malformedCommittedWithGroup() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers, partitions: 1)
        var generator = DemoEventGenerator(seed: 12, users: 3)
        try await sink.send(contentsOf: generator.next(3))  // offsets 0…2
        try await sink.close()
        try KafkaTestSupport.produceRawViaPython(
            brokers,
            topic: sink.topic,
            values: [Array("not json".utf8), Array("{}".utf8)]
        )  // offsets 3, 4
        let source = try await KafkaEventSource<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: sink.topic,
                groupID: "malformed-\(UUID().uuidString.prefix(8))",
                sessionTimeout: .seconds(6)
            )
        )
        let materializer = try KafkaMaterializer(source: source, store: try InMemoryStateStore<DemoUser>())
        let running = Task { try await materializer.run() }
        await materializer.waitUntilCaughtUp()
        try await source.commit()
        // Past both malformed messages: a restart in this group does not report them again.
        #expect(await source.committedOffsets() == [0: 5])
        running.cancel()
        try await running.value
    }

    @Test("malformed messages are reported with their offsets, never reach state, and the stream goes on")
    func malformed() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic()
        let admin = try KafkaTopicAdmin(configuration: KafkaTestSupport.kafka(brokers))
        try await admin.ensureTopic(topic, partitions: 1)
        let sink = try await KafkaTestSupport.makeSink(brokers, topic: topic, partitions: 1)
        let raw = try RawMessageSink(kafka: KafkaTestSupport.kafka(brokers), topic: topic, logger: .init(label: "test"))
        let alice = DemoUser(id: 1, name: "Alice", age: 25)
        try await sink.send(.insert(alice, order: 1))  // offset 0
        try await raw.send(key: Array("1".utf8), value: Array("not json".utf8))  // offset 1
        try await raw.send(
            key: Array("1".utf8),
            value: Array(
                #"{"id":1,"name":"Mallory","age":1,"op":"upsert","event_order":99,"ts":"2024-01-01T00:00:00+00:00"}"#
                    .utf8
            )
        )  // offset 2
        try await sink.send(.update(DemoUser(id: 1, name: "Alice", age: 26), order: 3))  // offset 3
        try await raw.close()
        try await sink.close()

        let reports = Mutex<[MalformedMessage]>([])
        let dlq = TestEnvironment.uniqueTopic("dlq")
        try await admin.ensureTopic(dlq, partitions: 1)
        let store = try InMemoryStateStore<DemoUser>()
        let applied = try await KafkaMaterializer.materialize(
            .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: topic,
                groupID: nil,
                malformedPolicy: .deadLetter(topic: dlq)
            ),
            into: store,
            onMalformed: { message in reports.withLock { $0.append(message) } }
        )
        #expect(applied == 2)
        #expect(try await store.snapshot() == [DemoUser(id: 1, name: "Alice", age: 26)])
        let seen = reports.withLock { $0 }
        #expect(seen.map(\.offset) == [1, 2])
        #expect(seen.allSatisfy { $0.topic == topic && $0.partition == 0 })
        #expect(seen[0].error.field == nil)
        #expect(seen[1].error.field == "op" && seen[1].error.value == "\"upsert\"")
        let deadLettered = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: dlq)
        #expect(deadLettered.compactMap { $0["value"] ?? nil }.first == "not json")
        #expect(deadLettered.count == 2)
    }

    @Test("a consumer group commits only acknowledged offsets and resumes after them")
    func atLeastOnce() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers, partitions: 1)
        var generator = DemoEventGenerator(seed: 77)
        let events = generator.next(100)
        try await sink.send(contentsOf: events)
        try await sink.close()
        let group = "group-\(UUID().uuidString.prefix(8))"
        let config = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: sink.topic,
            groupID: group,
            sessionTimeout: .seconds(6)  // the test broker answers a join after about half of it
        )

        let first = try await KafkaEventSource<DemoUser>(configuration: config)
        var taken: [KafkaConsumedEvent<DemoUser>] = []
        for try await consumed in first.events {
            taken.append(consumed)
            if taken.count <= 40 { first.acknowledge(consumed) }
            if taken.count == 50 { break }
        }
        #expect(taken.map(\.event) == Array(events.prefix(50)))
        try await first.close()

        let second = try await KafkaEventSource<DemoUser>(configuration: config)
        var rest: [ChangeEvent<DemoUser>] = []
        for try await consumed in second.events {
            rest.append(consumed.event)
            second.acknowledge(consumed)
            if rest.count == 60 { break }
        }
        #expect(rest == Array(events[40...]), "the 10 taken but unacknowledged events are delivered again")
        try await second.commit()
        #expect(await second.committedOffsets()[0] == 100)
        try await second.close()
    }

    @Test("a full local queue suspends the sender; nothing fails and nothing is dropped")
    func queueFull() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic()
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: topic,
                queueMaxMessages: 50,
                createTopic: .init()
            )
        )
        var generator = DemoEventGenerator(seed: 5, users: 20)
        let events = generator.next(3_000)
        try await sink.send(contentsOf: events)
        #expect(sink.queueFullWaits > 0, "the sender waited for queue space")
        // The single-event path: many concurrent sends into a queue of 50 wait their turn too.
        let singles = generator.next(300)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for event in singles { group.addTask { try await sink.send(event) } }
            try await group.waitForAll()
        }
        try await sink.close()
        let read = try await KafkaEventSource<DemoUser>.readAll(KafkaTestSupport.kafka(brokers), topic: topic)
        // Event by event (per key, in order): a duplicate cannot hide a loss.
        #expect(
            EventSinkConformance<KafkaEventSink<DemoUser>>.compare(
                sent: events,
                got: read.filter { event in
                    !singles.contains(event)
                }
            ) == nil
        )
        #expect(read.filter { singles.contains($0) }.count == singles.count)
        #expect(Set(read).isSuperset(of: singles))
    }

    @Test("graceful shutdown waits for every outstanding delivery")
    func shutdownDrains() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic()
        let metrics = TestMetrics()
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: topic,
                linger: .seconds(60),
                createTopic: .init()
            ),
            metricsFactory: metrics
        )
        let group = ServiceGroup(services: [sink], logger: Logger(label: "test.service-group"))
        let running = Task { try await group.run() }
        var generator = DemoEventGenerator(seed: 6, users: 10)
        let events = generator.next(2_000)
        let sending = Task { try await sink.send(contentsOf: events) }
        let dimensions = [("topic", topic)]
        let sent = { try metrics.expectCounter("deltakit_kafka_events_sent_total", dimensions).totalValue }
        while try sent() == 0 { try await Task.sleep(for: .milliseconds(2)) }
        let acknowledgedAtTrigger = try metrics.expectCounter(
            "deltakit_kafka_events_acknowledged_total",
            dimensions
        ).totalValue
        let sentAtTrigger = try sent()
        await group.triggerGracefulShutdown()  // what SIGTERM does
        // Deliveries were outstanding when shutdown began (they linger 60 s): the drain below is exercised. It sends
        // them at once; waiting for linger would outlast shutdownTimeout (30 s) and purge them.
        #expect(acknowledgedAtTrigger < sentAtTrigger, "\(acknowledgedAtTrigger) of \(sentAtTrigger) acknowledged")
        try await running.value

        // Whatever was enqueued when shutdown began was delivered; the rest was refused loudly, never dropped.
        let enqueued = try sent()
        #expect(
            try metrics.expectCounter("deltakit_kafka_events_acknowledged_total", dimensions).totalValue == enqueued
        )
        switch await sending.result {
        case .success: #expect(enqueued == 2_000)
        case .failure(let error): #expect((error as? DeltaKitError)?.code == .closed)
        }
        #expect(
            Int64(try await KafkaEventSource<DemoUser>.readAll(KafkaTestSupport.kafka(brokers), topic: topic).count)
                == enqueued
        )
        await #expect(throws: DeltaKitError.self) { try await sink.send(events[0]) }
    }

    @Test("an unreachable broker fails fast with an error naming the servers")
    func unreachable() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let (logger, logs) = CapturingLogHandler.logger("unreachable")
        let error = await #expect(throws: DeltaKitError.self) {
            _ = try await KafkaEventSink<DemoUser>(
                configuration: .init(
                    kafka: .init(bootstrapServers: ["127.0.0.1:1"], connectTimeout: .seconds(2)),
                    topic: "t"
                ),
                logger: logger
            )
        }
        #expect(logs.messages.contains { $0.contains("127.0.0.1:1") }, "librdkafka's own log lines reach swift-log")
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("127.0.0.1:1") == true)
        #expect(clock.now - start < .seconds(30), "never a hang")
    }

    @Test("an unknown librdkafka property fails construction with librdkafka's own message")
    func invalidProperty() async throws {
        let error = await #expect(throws: DeltaKitError.self) {
            _ = try await KafkaEventSink<DemoUser>(
                configuration: .init(kafka: .init(additionalProperties: ["no.such.property": "1"]), topic: "t")
            )
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("No such configuration property") == true)
    }

    /// How the application in ``backPressure(_:)`` falls behind.
    enum Slowness: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// 100 ms every 250 events, without a group.
        case shortStalls
        /// The same in a consumer group: the source stops taking messages, it does not pause its partitions.
        case shortStallsInGroup
        /// One stall longer than `groupStallBeforePause` in a group: the partitions are paused, then resumed.
        case longStallInGroup
        var testDescription: String { rawValue }
        var inGroup: Bool { self != .shortStalls }
    }

    @Test(
        "a slow consumer with a small buffer holds at most that many events and still gets every event in order",
        arguments: Slowness.allCases
    )
    func backPressure(_ slowness: Slowness) async throws {
        let brokers = try TestEnvironment.requireKafka()
        let bufferSize = 50
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var generator = DemoEventGenerator(seed: 8, users: 40)
        let events = generator.next(3_000)
        try await sink.send(contentsOf: events)
        try await sink.close()
        var configuration = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: sink.topic,
            groupID: slowness.inGroup ? "back-pressure-\(UUID().uuidString)" : nil,
            bufferSize: bufferSize,
            stopWhenCaughtUp: true
        )
        // A loaded CI machine can keep the reader behind for more than a second around a 100 ms stall (the
        // application's task not scheduled) — a long stall by definition — so the short stalls are judged against
        // a threshold 100 times their length; the long stall outlasts the default threshold three times over (the
        // buffer fills a fetch or two after it begins, and the poll thread may wake late).
        if slowness == .shortStallsInGroup { configuration.groupStallBeforePause = .seconds(10) }
        let longStall = configuration.groupStallBeforePause * 3
        let source = try await KafkaEventSource<DemoUser>(configuration: configuration)
        var read: [ChangeEvent<DemoUser>] = []
        for try await consumed in source.events {
            read.append(consumed.event)
            // A slow application: the stalls are the fault under test, not synchronisation.
            if slowness == .longStallInGroup, read.count == 1_000 { try await Task.sleep(for: longStall) }
            if read.count % 250 == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        let statistics = source.backPressureStatistics
        try await source.close()
        #expect(EventSinkConformance<KafkaEventSink<DemoUser>>.compare(sent: events, got: read) == nil)
        // Back-pressure engaged and was released again, and the hand-off stayed bounded; without it the 3,000
        // events would all be buffered while the application sleeps. Short stalls only stop the taking (no
        // re-fetch); a group member behind for longer pauses its partitions to keep serving the group.
        #expect(statistics.engaged > 0, "\(statistics)")
        #expect(statistics.released > 0, "\(statistics)")
        #expect((statistics.paused > 0) == (slowness == .longStallInGroup), "\(statistics)")
        // One message may still arrive while a group's partitions pause.
        #expect(statistics.peakBuffered <= bufferSize + (slowness == .longStallInGroup ? 1 : 0), "\(statistics)")
    }

    @Test("a materializer service resumes from its group's commits, and a full replay leaves the same state")
    func materializerService() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var generator = DemoEventGenerator(seed: 123, users: 60)
        let first = generator.next(1_500)
        try await sink.send(contentsOf: first)
        let store = try InMemoryStateStore<DemoUser>()
        func config(_ group: String) -> KafkaEventSource<DemoUser>.Configuration {
            .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: sink.topic,
                groupID: group,
                sessionTimeout: .seconds(6)
            )
        }
        let group = "materializer-\(UUID().uuidString.prefix(8))"

        // Run as a service until caught up, then stop it (what graceful shutdown or cancellation does).
        let one = try KafkaMaterializer(source: try await KafkaEventSource(configuration: config(group)), store: store)
        let running = Task { try await one.run() }
        await one.waitUntilCaughtUp()
        #expect(try await store.snapshot() == KafkaTestSupport.reference(first))
        running.cancel()
        try await running.value

        // More events while no materializer runs; a new one in the same group picks up after the commits.
        let second = generator.next(500)
        try await sink.send(contentsOf: second)
        try await sink.close()
        let resumedStore = try InMemoryStateStore<DemoUser>(historyLimit: 10_000)
        let two = try KafkaMaterializer(
            source: try await KafkaEventSource(configuration: config(group)),
            store: resumedStore
        )
        let resumed = Task { try await two.run() }
        await two.waitUntilCaughtUp()
        resumed.cancel()
        try await resumed.value
        #expect(try await resumedStore.history(limit: 10_000).count == 500, "only the events after the commit")
        #expect(try await resumedStore.snapshot() == KafkaTestSupport.reference(second))

        // Replaying the whole topic (another group, from the start) over the state leaves the right state,
        // and replaying it again changes nothing.
        try await KafkaMaterializer.materialize(config("replay-\(UUID().uuidString.prefix(8))"), into: store)
        #expect(try await store.snapshot() == KafkaTestSupport.reference(first + second))
        let before = try await store.snapshot()
        try await KafkaMaterializer.materialize(config("replay-\(UUID().uuidString.prefix(8))"), into: store)
        #expect(try await store.snapshot() == before)
    }

    @Test("graceful shutdown: a materializer service returns once its source is closed and what it applied committed")
    func materializerGracefulShutdown() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var generator = DemoEventGenerator(seed: 321, users: 40)
        let events = generator.next(800)
        try await sink.send(contentsOf: events)
        try await sink.close()
        let config = KafkaEventSource<DemoUser>.Configuration(
            kafka: KafkaTestSupport.kafka(brokers),
            topic: sink.topic,
            groupID: "shutdown-\(UUID().uuidString.prefix(8))",
            sessionTimeout: .seconds(6)
        )
        let store = try InMemoryStateStore<DemoUser>()
        let materializer = try await KafkaMaterializer(configuration: config, store: store)
        let group = ServiceGroup(services: [materializer], logger: Logger(label: "test.service-group"))
        let running = Task { try await group.run() }
        await materializer.waitUntilCaughtUp()
        #expect(try await store.snapshot() == KafkaTestSupport.reference(events))
        await group.triggerGracefulShutdown()  // what SIGTERM does
        try await running.value  // no cancellation: the shutdown alone ends run()

        // run() returned after the source's close: its commit is in, so the group has nothing left to read.
        let again = try InMemoryStateStore<DemoUser>()
        #expect(try await KafkaMaterializer.materialize(config, into: again) == 0)
    }

    @Test("swift-metrics: sent, acknowledged, latency, consumed and malformed are counted")
    func metrics() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let metrics = TestMetrics()
        let topic = TestEnvironment.uniqueTopic()
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: topic,
                createTopic: .init(partitions: 1)
            ),
            metricsFactory: metrics
        )
        var generator = DemoEventGenerator(seed: 10)
        try await sink.send(contentsOf: generator.next(100))
        try await sink.close()
        let raw = try RawMessageSink(kafka: KafkaTestSupport.kafka(brokers), topic: topic, logger: .init(label: "test"))
        try await raw.send(key: nil, value: Array("{}".utf8))
        try await raw.close()
        let dimensions = [("topic", topic)]
        #expect(try metrics.expectCounter("deltakit_kafka_events_sent_total", dimensions).totalValue == 100)
        #expect(try metrics.expectCounter("deltakit_kafka_events_acknowledged_total", dimensions).totalValue == 100)
        #expect(try metrics.expectTimer("deltakit_kafka_delivery_latency", dimensions).values.count == 100)

        let source = try await KafkaEventSource<DemoUser>(
            configuration: .init(
                kafka: KafkaTestSupport.kafka(brokers),
                topic: topic,
                groupID: nil,
                stopWhenCaughtUp: true
            ),
            metricsFactory: metrics
        )
        var consumed = 0
        for try await _ in source.events { consumed += 1 }
        try await source.close()
        #expect(consumed == 100)
        #expect(try metrics.expectCounter("deltakit_kafka_events_consumed_total", dimensions).totalValue == 100)
        #expect(try metrics.expectCounter("deltakit_kafka_messages_malformed_total", dimensions).totalValue == 1)
    }

    @Test("a second reader of the same source (another task, or a later loop) gets a clear error, not stolen events")
    func concurrentIteration() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers, partitions: 1)
        try await sink.send(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        try await sink.close()
        let source = try await KafkaEventSource<DemoUser>(
            configuration: .init(kafka: KafkaTestSupport.kafka(brokers), topic: sink.topic, groupID: nil)
        )
        let first = Task { for try await _ in source.events {} }
        await source.waitUntilCaughtUp()  // the first task reads (it took the end-of-partition marker)
        let second = Task { for try await _ in source.events {} }
        // Never hang: if the second task were (wrongly) allowed to wait, closing the source ends it.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(10))
            try await source.close()
        }
        let error = await #expect(throws: DeltaKitError.self) { try await second.value }
        #expect(error?.message.contains("another task") == true)
        watchdog.cancel()
        try await source.close()
        try await first.value
        // A source has one reader: a later loop, after the first one ended, is refused too.
        await #expect(throws: DeltaKitError.self) { for try await _ in source.events {} }
    }
}

/// A thread-safe counter for callbacks.
final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
