import DeltaKit
import DeltaKitTesting
import Testing

@Suite("In-memory outbox")
struct InMemoryOutboxTests {
    struct Rollback: Error {}

    @Test("the in-memory outbox passes the outbox conformance suite")
    func conformance() async throws {
        let passed = try await OutboxConformance(
            makeOutbox: { InMemoryOutbox<DemoUser>() },
            relay: { outbox, sink in try await outbox.relay(into: sink) }
        ).run()
        #expect(passed.count == 6)
    }

    @Test("committed events become pending with per-key orders in commit order; rolled-back ones never do")
    func commitAndRollback() async throws {
        let outbox = InMemoryOutbox<DemoUser>()
        try await outbox.withTransaction { transaction in
            try await transaction.enqueue(.update(DemoUser(id: 1, name: "a", age: 1), order: 50))
            try await transaction.enqueue(.delete(key: 2, order: 0))
        }
        await #expect(throws: Rollback.self) {
            try await outbox.withTransaction { transaction in
                try await transaction.enqueue(.update(DemoUser(id: 3, name: "rolled back", age: 1), order: 0))
                throw Rollback()
            }
        }
        try await outbox.withTransaction { transaction in
            try await transaction.enqueue(.update(DemoUser(id: 1, name: "b", age: 1), order: 7))
        }
        #expect(outbox.pending.map(\.key) == [1, 2, 1])
        #expect(outbox.pending.map(\.order) == [50, 1, 51])
        let sink = InMemoryEventSink<DemoUser>()
        #expect(try await outbox.publishPending(into: sink) == 3)
        #expect(sink.events.map(\.key) == [1, 2, 1])
        #expect(outbox.pending.isEmpty)
        #expect(try await outbox.publishPending(into: sink) == 0)
    }

    @Test("an event the sink refuses stays pending and holds back only its key; a failing sink loses nothing")
    func poisonedAndFailing() async throws {
        let outbox = InMemoryOutbox<DemoUser>()
        for (id, name) in [(1, "poison"), (2, "x"), (1, "behind"), (3, "y")] {
            try await outbox.withTransaction {
                try await $0.enqueue(.update(DemoUser(id: id, name: name, age: 1), order: 0))
            }
        }
        let sink = InMemoryEventSink<DemoUser>()
        sink.refuse { $0.record?.name == "poison" }
        #expect(try await outbox.publishPending(into: sink) == 2)
        #expect(sink.events.map(\.key) == [2, 3])
        #expect(outbox.blockedKeys == [1])
        #expect(outbox.pending.map { $0.record?.name } == ["poison", "behind"])
        sink.stopFailing()
        sink.failNextSends(1)
        await #expect(throws: DeltaKitError.self) { try await outbox.publishPending(into: sink) }
        #expect(outbox.pending.count == 2)
        #expect(try await outbox.publishPending(into: sink) == 2)
        #expect(sink.events.map { $0.record?.name } == ["x", "y", "poison", "behind"])
        #expect(outbox.blockedKeys.isEmpty)
    }

    /// An outbox that commits whatever happens: the suite must catch it.
    struct CommitsRollbacks: TransactionalOutbox {
        let base = InMemoryOutbox<DemoUser>()
        func withTransaction<Result: Sendable>(
            _ body: (InMemoryOutbox<DemoUser>.Transaction) async throws -> Result
        ) async throws -> Result {
            var result: Result?
            var failure: (any Error)?
            try await base.withTransaction { transaction in
                do { result = try await body(transaction) } catch { failure = error }
            }
            if let failure { throw failure }
            return result!
        }
    }

    @Test("the suite fails an outbox that publishes rolled-back events")
    func suiteCatchesPublishedRollbacks() async throws {
        let error = await #expect(throws: ConformanceFailure.self) {
            try await OutboxConformance(
                makeOutbox: { CommitsRollbacks() },
                relay: { outbox, sink in try await outbox.base.relay(into: sink) },
                timeout: .seconds(5)
            ).run()
        }
        #expect(error?.failures.count == 1)
        #expect(error?.failures.first?.hasPrefix("committed events are published, rolled-back ones never") == true)
    }
}
