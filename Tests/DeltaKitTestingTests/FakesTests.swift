import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@Suite("In-memory fakes")
struct FakesTests {
    @Test("the in-memory sink passes the EventSink conformance suite")
    func sinkConformance() async throws {
        let passed = try await EventSinkConformance(
            makeSink: { InMemoryEventSink<DemoUser>() },
            readBack: { $0.events },
            makeScalarSink: {
                let sink = InMemoryEventSink<ScalarSample>()
                return (sink, { sink.events })
            }
        ).run()
        #expect(passed.count == 7)
    }

    /// A fresh in-memory store holding `events`.
    @Sendable static func loadInMemory(_ events: [ChangeEvent<DemoUser>]) async throws -> InMemoryStateStore<DemoUser> {
        let store = try InMemoryStateStore<DemoUser>()
        try await store.apply(contentsOf: events)
        return store
    }

    @Test("the in-memory store passes the StateStore conformance suite")
    func storeConformance() async throws {
        let passed = try await StateStoreConformance(
            load: Self.loadInMemory,
            loadWire: { messages in
                // What the Kafka materializer does: decode each message; skip (and report) the invalid ones.
                let store = try InMemoryStateStore<DemoUser>()
                for message in messages {
                    if let event = try? ChangeEvent<DemoUser>(jsonData: message) { try await store.apply(event) }
                }
                return store
            },
            makeScalarStore: { try InMemoryStateStore<ScalarSample>() }
        ).run()
        #expect(passed.count == 10)
    }

    @Test("the store suite fails a store that keeps the events before an invalid one of a batch")
    func storeSuiteCatchesPartialBatches() async throws {
        let error = await #expect(throws: ConformanceFailure.self) {
            try await StateStoreConformance(load: Self.loadInMemory, makeScalarStore: { try PrefixApplyingStore() })
                .run()
        }
        #expect(error?.failures.count == 1)
        #expect(error?.failures.first?.hasPrefix("a batch with an invalid event applies none of its events:") == true)
    }

    @Test("the pipeline's store passes the StateStore conformance suite through the sink")
    func pipelineConformance() async throws {
        try await StateStoreConformance { events in
            let pipeline = try InMemoryPipeline<DemoUser>()
            try await pipeline.sink.send(contentsOf: events)
            return pipeline.store
        }.run()
    }

    @Test("the store suite fails a store that applies invalid messages")
    func storeSuiteCatchesLenientDecoding() async throws {
        let error = await #expect(throws: ConformanceFailure.self) {
            try await StateStoreConformance(
                load: Self.loadInMemory,
                loadWire: { messages in
                    // Lenient, like the seed's RisingWave view: any op but "delete" upserts, null fields default.
                    let store = try InMemoryStateStore<DemoUser>()
                    for message in messages {
                        guard let object = try? JSONSerialization.jsonObject(with: Data(message)) as? [String: Any],
                            let id = object["id"] as? Int, let order = object["event_order"] as? Int
                        else { continue }
                        if object["op"] as? String == "delete" {
                            try await store.apply(.delete(key: id, order: Int64(order)))
                        } else {
                            let user = DemoUser(
                                id: id,
                                name: object["name"] as? String ?? "",
                                age: object["age"] as? Int ?? 0
                            )
                            try await store.apply(.update(user, order: Int64(order)))
                        }
                    }
                    return store
                }
            ).run()
        }
        #expect(error?.failures.contains { $0.hasPrefix("invalid messages never change state") } == true)
    }

    /// A sink that loses every third event: the conformance suite must notice.
    final class LossySink: EventSink, Sendable {
        let inner = InMemoryEventSink<DemoUser>()
        let counter = InMemoryEventSink<DemoUser>()
        func send(_ event: ChangeEvent<DemoUser>) async throws -> EventReceipt {
            let receipt = try await counter.send(event)
            if counter.events.count % 3 != 0 { try await inner.send(event) }
            return receipt
        }
        func flush() async throws {}
    }

    @Test("the sink suite fails a sink that loses events, naming the check")
    func sinkSuiteCatchesLoss() async throws {
        let error = await #expect(throws: ConformanceFailure.self) {
            try await EventSinkConformance(makeSink: { LossySink() }, readBack: { $0.inner.events }).run()
        }
        #expect(error?.failures.contains { $0.hasPrefix("batch keeps every event") } == true)
    }

    /// A store that applies events in arrival order, ignoring `order`: the suite must notice.
    final class LastWriteWinsStore: StateStore, Sendable {
        let store: InMemoryStateStore<DemoUser>
        init(_ events: [ChangeEvent<DemoUser>]) async throws {
            store = try InMemoryStateStore<DemoUser>()
            // Renumber so arrival order wins — the demo's bug after a counter restart.
            for (i, e) in events.enumerated() {
                let renumbered: ChangeEvent<DemoUser> =
                    e.record.map { .update($0, order: Int64(i + 1), timestamp: e.timestamp) }
                    ?? .delete(key: e.key, order: Int64(i + 1), timestamp: e.timestamp)
                try await store.apply(renumbered)
            }
        }
        func snapshot() async throws -> [DemoUser] { try await store.snapshot() }
        func value(forKey key: Int) async throws -> DemoUser? { try await store.value(forKey: key) }
        func history(limit: Int) async throws -> [ChangeEvent<DemoUser>] { try await store.history(limit: limit) }
        func count() async throws -> Int { try await store.count() }
    }

    @Test("the store suite fails a store that lets arrival order win")
    func storeSuiteCatchesWrongMerge() async throws {
        let error = await #expect(throws: ConformanceFailure.self) {
            try await StateStoreConformance { try await LastWriteWinsStore($0) }.run()
        }
        #expect(error?.failures.contains { $0.contains("shuffled") } == true)
    }

    @Test("failures on demand: the failed event is not recorded, later ones are")
    func failureInjection() async throws {
        let sink = InMemoryEventSink<DemoUser>()
        var generator = DemoEventGenerator(seed: 1)
        let events = generator.next(4)
        try await sink.send(events[0])
        sink.failNextSends(1)
        await #expect(throws: DeltaKitError.self) { try await sink.send(events[1]) }
        try await sink.send(events[2])
        sink.failAllSends(with: DeltaKitError(code: .connectionFailed, message: "broker down"))
        let error = await #expect(throws: DeltaKitError.self) { try await sink.send(contentsOf: [events[3]]) }
        #expect(error?.code == .connectionFailed)
        sink.stopFailing()
        try await sink.send(events[3])
        #expect(sink.events == [events[0], events[2], events[3]])
        #expect(sink.popEvents().count == 3 && sink.events.isEmpty)
    }

    @Test("the generator reproduces the demo's users and is deterministic per seed")
    func generator() {
        var a = DemoEventGenerator(seed: 42)
        var b = DemoEventGenerator(seed: 42)
        let first = a.next(300)
        #expect(first == b.next(300))
        #expect(Set(first.map(\.key)) == [1, 2, 3])
        #expect(Set(first.compactMap(\.record?.name)) == ["Alice", "Bob", "Charlie"])
        #expect(Set(first.map(\.operation)) == Set(ChangeOperation.allCases))
        let inserts = first.filter { $0.operation == .insert }.compactMap(\.record)
        #expect(Set(inserts) == Set(DemoEventGenerator.demoUsers))
        #expect(first.map(\.order) == Array(1...300))
        var c = DemoEventGenerator(seed: 43)
        #expect(c.next(300) != first)
    }

    @Test("the in-memory pipeline applies through the wire format")
    func pipeline() async throws {
        let pipeline = try InMemoryPipeline<DemoUser>(historyLimit: 20)
        var generator = DemoEventGenerator(seed: 7)
        let events = generator.next(100)
        try await pipeline.sink.send(contentsOf: events)
        var reference = LatestState<DemoUser>()
        for e in events { reference.apply(e) }
        #expect(try await pipeline.store.snapshot() == reference.snapshot())
        #expect(try await pipeline.store.history(limit: 20).map(\.order) == Array((81...100).reversed()))
    }
}

/// A store that applies a batch event by event and stops at the first invalid one, keeping the events before it:
/// what the batch rule forbids.
private struct PrefixApplyingStore: MutableStateStore {
    let base: InMemoryStateStore<ScalarSample>
    init() throws { base = try InMemoryStateStore<ScalarSample>() }
    func apply(_ event: ChangeEvent<ScalarSample>) async throws -> StateChange<ScalarSample>? {
        try await base.apply(event)
    }
    func apply(contentsOf events: [ChangeEvent<ScalarSample>]) async throws {
        for event in events { try await base.apply(event) }
    }
    func snapshot() async throws -> [ScalarSample] { try await base.snapshot() }
    func value(forKey key: Int) async throws -> ScalarSample? { try await base.value(forKey: key) }
    func history(limit: Int) async throws -> [ChangeEvent<ScalarSample>] { try await base.history(limit: limit) }
    func count() async throws -> Int { try await base.count() }
}
