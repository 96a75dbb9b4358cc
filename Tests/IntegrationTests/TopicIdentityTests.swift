import DeltaKit
import DeltaKitKafka
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// A topic recreated under a reader's positions (the seed's `docker compose down`/`up`: the broker comes back empty
/// and the producer recreates the topic) must never be resumed silently.
@Suite("A recreated topic is never resumed silently", .requiresKafka, .timeLimit(.minutes(5)))
struct TopicIdentityTests {
    static let topic = "identity"

    static func send(_ broker: PrivateTansu, _ events: [ChangeEvent<DemoUser>]) async throws {
        let sink = try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: .init(bootstrapServers: [broker.address], connectTimeout: .seconds(15)),
                topic: topic,
                idempotence: false,  // Tansu's memory storage forgets producer ids on restart
                createTopic: .init(partitions: 2)
            )
        )
        try await sink.send(contentsOf: events)
        try await sink.close()
    }

    static func configuration(_ broker: PrivateTansu, stopWhenCaughtUp: Bool = true)
        -> KafkaEventSource<DemoUser>.Configuration
    {
        .init(
            kafka: .init(bootstrapServers: [broker.address], connectTimeout: .seconds(15)),
            topic: topic,
            stopWhenCaughtUp: stopWhenCaughtUp
        )
    }

    static func privateBroker() async throws -> PrivateTansu {
        _ = try TestEnvironment.requireKafka()
        let broker = try PrivateTansu(binary: try #require(ProcessInfo.processInfo.environment["DELTAKIT_TANSU_BIN"]))
        try await broker.start()
        return broker
    }

    @Test(
        "at start: a shorter and then a longer recreated topic are refused naming both logs; rebuild reads the new one"
    )
    func refusedAtStart() async throws {
        let broker = try await Self.privateBroker()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-id-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("users.sqlite").path
        let store = try SQLiteStateStore<DemoUser>(configuration: .init(path: path, source: Self.topic))
        var old = DemoEventGenerator(seed: 1, users: 60)
        let oldEvents = old.next(200)
        try await Self.send(broker, oldEvents)
        #expect(try await KafkaMaterializer.materialize(Self.configuration(broker), into: store) == 200)
        let positions = try await store.positions()
        #expect(try await store.fingerprints().count == positions.count)
        let before = try await store.snapshot()

        // The broker comes back empty; the topic is recreated with fewer messages than the stored positions.
        await broker.stop()
        try await broker.start()
        var new = DemoEventGenerator(seed: 2, users: 30)
        let short = new.next(6)
        try await Self.send(broker, short)
        let shorter = await #expect(throws: DeltaKitError.self) {
            try await KafkaMaterializer.materialize(Self.configuration(broker), into: store)
        }
        #expect(shorter?.code == .incompatibleStore, "\(String(describing: shorter))")
        #expect(shorter?.message.contains("'identity'") == true)
        #expect(shorter?.message.contains("ends at offset") == true, "\(String(describing: shorter))")
        #expect(shorter?.message.contains("rebuildOnIncompatibleTopic") == true)
        #expect((shorter?.underlying as? TopicLogChanged)?.partitions.isEmpty == false)

        // More messages than the positions: the message at the stored offset is another one.
        let long = new.next(400)
        try await Self.send(broker, long)
        let longer = await #expect(throws: DeltaKitError.self) {
            try await KafkaMaterializer.materialize(Self.configuration(broker), into: store)
        }
        #expect(longer?.code == .incompatibleStore, "\(String(describing: longer))")
        #expect(longer?.message.contains("holds another message there now") == true, "\(String(describing: longer))")
        // A source made by hand, starting at the store's positions, is checked when the materializer runs.
        var byHand = Self.configuration(broker)
        byHand.startOffsets = positions
        let handMade = try KafkaMaterializer(source: try await KafkaEventSource(configuration: byHand), store: store)
        let refused = await #expect(throws: DeltaKitError.self) { try await handMade.run() }
        #expect(refused?.code == .incompatibleStore, "\(String(describing: refused))")
        #expect(try await store.snapshot() == before, "a refused start changes nothing")
        #expect(try await store.positions() == positions)

        // Rebuild: the file now holds exactly the new log's state.
        let materializer = try await KafkaMaterializer(
            configuration: Self.configuration(broker),
            store: store,
            rebuildOnIncompatibleTopic: true
        )
        try await materializer.run()
        #expect(try await store.snapshot() == KafkaTestSupport.reference(short + long))
        #expect(materializer.appliedEvents == 406)
        // And the rebuilt file resumes like any other.
        #expect(try await KafkaMaterializer.materialize(Self.configuration(broker), into: store) == 0)
        await broker.stop()
    }

    @Test("while running: the broker comes back empty and the topic is recreated — SQLite and in-memory stop")
    func stopsWhileRunning() async throws {
        let broker = try await Self.privateBroker()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-id-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var old = DemoEventGenerator(seed: 3, users: 60)
        let oldEvents = old.next(200)
        try await Self.send(broker, oldEvents)
        let file = try SQLiteStateStore<DemoUser>(
            configuration: .init(path: directory.appendingPathComponent("users.sqlite").path, source: Self.topic)
        )
        let memory = try InMemoryStateStore<DemoUser>()
        let onFile = try await KafkaMaterializer(
            configuration: Self.configuration(broker, stopWhenCaughtUp: false),
            store: file
        )
        let inMemory = try KafkaMaterializer(
            source: try await KafkaEventSource(configuration: Self.configuration(broker, stopWhenCaughtUp: false)),
            store: memory
        )
        let runs = [Task { try await onFile.run() }, Task { try await inMemory.run() }]
        await onFile.waitUntilCaughtUp()
        await inMemory.waitUntilCaughtUp()
        #expect(try await file.snapshot() == KafkaTestSupport.reference(oldEvents))

        await broker.stop()
        try await broker.start()
        var new = DemoEventGenerator(seed: 4, users: 30)
        try await Self.send(broker, new.next(400))  // longer than the old log: offsets 90, 110… exist again
        for (name, run) in zip(["SQLite", "in-memory"], runs) {
            let error = await #expect(throws: DeltaKitError.self, "\(name)") { try await run.value }
            #expect(error?.code == .incompatibleStore, "\(name): \(String(describing: error))")
            #expect(error?.message.contains("not the log this source was reading") == true)
        }
        // Nothing of the new log reached either store.
        #expect(try await file.snapshot() == KafkaTestSupport.reference(oldEvents))
        #expect(try await memory.snapshot() == KafkaTestSupport.reference(oldEvents))
        await broker.stop()
    }
}
