import DeltaKit
import DeltaKitTesting
import Foundation
import MetricsTestKit
import Synchronization
import Testing

@testable import DeltaKitKafka

/// Faults on a private Tansu broker that is stopped and restarted (the mock-cluster faults are unit tests:
/// `DeltaKitKafkaTests/MockClusterTests`).
@Suite("Kafka faults", .timeLimit(.minutes(5)))
struct KafkaFaultTests {
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
        let read = try await KafkaEventSource<DemoUser>.readAll(
            KafkaTestSupport.kafka(broker.address),
            topic: "restart"
        )
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
