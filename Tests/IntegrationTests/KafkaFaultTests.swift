import DeltaKit
import DeltaKitTesting
import Foundation
import MetricsTestKit
import Synchronization
import Testing

@testable import DeltaKitKafka

/// Faults: librdkafka's in-process mock cluster (brokers down, injected request errors) and a private Tansu
/// broker that is stopped and restarted.
@Suite("Kafka faults", .timeLimit(.minutes(5)))
struct KafkaFaultTests {
    static func mockSink(
        topic: String,
        messageTimeout: Duration,
        shutdownTimeout: Duration = .seconds(30),
        metrics: TestMetrics = TestMetrics()
    ) async throws -> KafkaEventSink<DemoUser> {
        try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: .init(
                    bootstrapServers: ["unused:9092"],
                    additionalProperties: ["test.mock.num.brokers": "3", "retry.backoff.ms": "50"]
                ),
                topic: topic,
                messageTimeout: messageTimeout,
                shutdownTimeout: shutdownTimeout
            ),
            metricsFactory: metrics
        )
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
        // Observe the enqueueing (bounded): the 40 events are in librdkafka's queue, none can be delivered.
        for _ in 0..<500 where try sent() < 50 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try sent() == 50)
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
        #expect(try await store.snapshot() == KafkaTestSupport.reference(acknowledged))
        // Event by event: every acknowledged event is on the topic (a duplicate cannot hide a loss).
        let read = try await KafkaTestSupport.readAll(mock.bootstrapServers, topic: topic)
        let missing = Set(acknowledged).subtracting(read)
        #expect(missing.isEmpty, "\(missing.count) acknowledged events are not on the topic")
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
        /// Waits (observing, bounded) until `condition` holds.
        func observe(_ what: String, _ condition: () throws -> Bool) async throws {
            for _ in 0..<1_000 where try !condition() { try await Task.sleep(for: .milliseconds(5)) }
            try #require(try condition(), "\(what) never happened")
        }

        mock.setBroker(1, up: false)
        let first = Task { try await sink.send(.update(DemoUser(id: keyOnBroker1, name: "A", age: 1), order: 100)) }
        try await observe("the first send was enqueued") { try sent() == 7 }
        let flush = Task { try await sink.flush() }
        try await observe("the flush took its snapshot") { sink.flushesStarted == 1 }
        mock.setBroker(2, up: false)
        let laterDone = Atomic<Bool>(false)
        let later = Task {
            _ = try await sink.send(.update(DemoUser(id: keyOnBroker2, name: "B", age: 2), order: 101))
            laterDone.store(true, ordering: .releasing)
        }
        try await observe("the later send was enqueued") { try sent() == 8 }
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

    /// A sink on a private Tansu, with `messageTimeout`.
    static func restartSink(
        _ broker: PrivateTansu,
        messageTimeout: Duration,
        idempotence: Bool = true
    ) async throws -> KafkaEventSink<DemoUser> {
        try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: .init(bootstrapServers: [broker.address], connectTimeout: .seconds(15)),
                topic: "restart",
                idempotence: idempotence,
                messageTimeout: messageTimeout,
                createTopic: .init(partitions: 1)
            )
        )
    }

    @Test(
        "Tansu down for longer than messageTimeout: the send fails with deliveryFailed, then the sink is closed",
        .requiresKafka
    )
    func tansuDownPastTimeout() async throws {
        _ = try TestEnvironment.requireKafka()
        let broker = try PrivateTansu(binary: try #require(ProcessInfo.processInfo.environment["DELTAKIT_TANSU_BIN"]))
        try await broker.start()
        let sink = try await Self.restartSink(broker, messageTimeout: .seconds(3))
        var generator = DemoEventGenerator(seed: 41, users: 5)
        try await sink.send(contentsOf: generator.next(10))
        await broker.stop()
        // The broker stays down until the send has failed: the outcome is determined.
        let error = await #expect(throws: DeltaKitError.self) { try await sink.send(contentsOf: generator.next(10)) }
        #expect(error?.code == .deliveryFailed, "\(String(describing: error))")
        #expect((error?.underlying as? KafkaError)?.code == .messageTimedOut, "\(String(describing: error))")
        let after = await #expect(throws: DeltaKitError.self) { try await sink.send(generator.next()) }
        #expect(after?.code == .closed, "\(String(describing: after))")
        #expect(after?.message.contains("stopped after an earlier failure") == true)
        try? await sink.close()
    }

    @Test(
        "Tansu restarted within messageTimeout: the send waits and succeeds; every event is on the new topic",
        .requiresKafka
    )
    func tansuShortRestart() async throws {
        _ = try TestEnvironment.requireKafka()
        let broker = try PrivateTansu(binary: try #require(ProcessInfo.processInfo.environment["DELTAKIT_TANSU_BIN"]))
        try await broker.start()
        // Not idempotent: Tansu's memory storage forgets the producer id and sequence numbers on restart, so an
        // idempotent producer's retries are never accepted (on a Kafka broker, which keeps them, they would be).
        let sink = try await Self.restartSink(broker, messageTimeout: .seconds(60), idempotence: false)
        var generator = DemoEventGenerator(seed: 42, users: 5)
        try await sink.send(contentsOf: generator.next(10))
        await broker.stop()
        let during = generator.next(50)
        // Sent while the broker is down (it is stopped before the send starts); it comes back well within 60 s.
        let sending = Task { try await sink.send(contentsOf: during) }
        try await broker.start()  // same port; Tansu's memory storage starts empty
        let receipt = try await sending.value
        #expect(!receipt.isEmpty)
        let read = try await KafkaTestSupport.readAll(broker.address, topic: "restart")
        #expect(Set(during).isSubset(of: Set(read)), "every acknowledged event is on the (new) topic")
        try await sink.close()
        await broker.stop()
    }
}

/// A Tansu broker of the test's own, on a free port, that can be stopped and restarted.
final class PrivateTansu: @unchecked Sendable {
    // Used from one test task at a time (start/stop are not called concurrently).
    let binary: String
    let port: Int
    private var process: Process?

    init(binary: String) throws {
        self.binary = binary
        self.port = try Self.freePort()
    }

    var address: String { "127.0.0.1:\(port)" }

    func start() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = [
            "broker", "--listener-url", "tcp://\(address)", "--advertised-listener-url", "tcp://\(address)",
            "--storage-engine", "memory://tansu/",
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        if let pidfile = ProcessInfo.processInfo.environment["DELTAKIT_TANSU_PIDFILE"] {
            try? "\(p.processIdentifier)".write(toFile: pidfile, atomically: true, encoding: .utf8)
        }
        for _ in 0..<100 {
            if Self.canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw DeltaKitError(code: .connectionFailed, message: "private Tansu did not listen on \(address)")
    }

    /// Kills the broker (SIGKILL: an abrupt failure) and waits until it is gone.
    func stop() async {
        guard let p = process else { return }
        process = nil
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        // Process.waitUntilExit spins on Linux off the main thread; poll instead.
        for _ in 0..<100 where p.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
    }

    deinit {
        if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
