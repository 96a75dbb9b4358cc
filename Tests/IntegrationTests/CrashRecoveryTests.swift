import DeltaKit
import DeltaKitKafka
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

@Suite("Crash recovery of the durable embedded table", .requiresKafka, .timeLimit(.minutes(10)))
struct CrashRecoveryTests {
    /// `UserEvents materialize --state` is killed with SIGKILL at seeded random instants — while connecting, in
    /// the middle of a batch, between batches, or idle — while more of a seeded stream arrives between kills.
    /// A last run to the end must leave exactly the state of the whole topic, and positions one past each
    /// partition's last message: a crash never loses an applied event nor applies one twice out of place.
    @Test("SIGKILL at 20+ random points, then a restart: the file equals the reference state of the topic")
    func killedAtRandomPoints() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-crash-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("users.sqlite").path
        let sink = try await KafkaTestSupport.makeSink(brokers)
        var stream = DemoEventGenerator(seed: 2_024, users: 500)
        var random = SeededRandomNumberGenerator(seed: 99)
        var produced: [ChangeEvent<DemoUser>] = []
        var receipt = EventReceipt()
        func produce(_ count: Int) async throws {
            let events = stream.next(count)
            receipt = receipt.merging(try await sink.send(contentsOf: events))
            produced += events
        }
        try await produce(20_000)

        var kills = 0
        var runs = 0
        var outcomes: [String] = []
        // What the file held after each kill: its positions and its state.
        var checkpoints: [(positions: [Int32: Int64], state: [DemoUser])] = []
        while kills < 22 {
            runs += 1
            try #require(runs <= 60, "too few runs were still alive to be killed: \(outcomes)")
            let running = try CLI.Running([
                "materialize", "--brokers", brokers, "--topic", sink.topic, "--state", path,
            ])
            // Fault injection, not synchronisation: the kill lands wherever the process happens to be.
            try await Task.sleep(for: .milliseconds(Int.random(in: 30...1_500, using: &random)))
            let alive = running.process.isRunning
            running.signal(SIGKILL)
            let result = try await running.wait()
            if alive && result.status == SIGKILL && running.process.terminationReason == .uncaughtSignal {
                kills += 1
                outcomes.append("killed")
                if FileManager.default.fileExists(atPath: path) {
                    do {
                        let file = try SQLiteStateStore<DemoUser>(
                            configuration: .init(path: path, source: sink.topic, readOnly: true)
                        )
                        checkpoints.append((try await file.positions(), try await file.snapshot()))
                    } catch let error as DeltaKitError where error.code == .incompatibleStore && checkpoints.isEmpty {
                        // Killed after SQLite made the file and before the first run's one transaction gave it its
                        // tables: it holds no state yet (a reader refuses it as empty), and the next run creates it.
                        outcomes.append("killed before the file had its tables")
                    }
                }
            } else {
                outcomes.append("ended \(result.status): \(result.stderr.suffix(300))")
            }
            if runs % 3 == 0 { try await produce(2_500) }
        }
        try await sink.close()

        let final = try await CLI.run([
            "materialize", "--brokers", brokers, "--topic", sink.topic, "--state", path, "--exit-when-caught-up",
        ])
        #expect(final.status == 0, "\(final.stderr)")
        let store = try SQLiteStateStore<DemoUser>(configuration: .init(path: path, source: sink.topic, readOnly: true))
        #expect(kills >= 20, "\(outcomes)")
        #expect(try await store.snapshot() == KafkaTestSupport.reference(produced))
        #expect(try await store.positions() == receipt.offsets.mapValues { $0 + 1 })

        // After every kill, the file held exactly the state of the topic's messages before its positions.
        let topic = try await Self.readWithOffsets(brokers, topic: sink.topic)
        var behind = 0
        for (positions, state) in checkpoints {
            let prefix = topic.filter { $0.offset < positions[$0.partition] ?? 0 }.map(\.event)
            #expect(state == KafkaTestSupport.reference(prefix), "at positions \(positions)")
            if prefix.count < produced.count { behind += 1 }
        }
        #expect(checkpoints.count >= 18)
        // Kills landed in the middle of the work, not only on an idle, caught-up process.
        #expect(behind >= 5, "kills before the end of the topic: \(behind) of \(checkpoints.count)")
    }

    /// Every event of the topic with its partition and offset.
    static func readWithOffsets(_ brokers: String, topic: String) async throws -> [KafkaConsumedEvent<DemoUser>] {
        let source = try await KafkaEventSource<DemoUser>(
            configuration: .init(kafka: KafkaTestSupport.kafka(brokers), topic: topic, stopWhenCaughtUp: true)
        )
        var events: [KafkaConsumedEvent<DemoUser>] = []
        for try await consumed in source.events { events.append(consumed) }
        try await source.close()
        return events
    }
}
