public import DeltaKit

/// A reusable conformance suite for `StateStore` implementations.
///
/// The backend supplies `load`: given events (shuffled, duplicated, out of order), return a store whose
/// state reflects exactly those events — apply them, or publish them and wait until they are visible.
/// The suite compares the store with `LatestState`, the reference semantics.
///
/// It is framework-neutral: it throws ``ConformanceFailure`` instead of calling `#expect` or `XCTAssert`.
public struct StateStoreConformance<Store: StateStore>: Sendable where Store.Record == DemoUser {
    private let load: @Sendable ([ChangeEvent<DemoUser>]) async throws -> Store

    /// Creates the suite.
    ///
    /// - Parameter load: Returns a fresh store holding the given events; called once per check.
    public init(load: @escaping @Sendable ([ChangeEvent<DemoUser>]) async throws -> Store) {
        self.load = load
    }

    /// Runs every check and returns the names of those that passed.
    ///
    /// - Throws: ``ConformanceFailure`` naming each failed check.
    @discardableResult
    public func run() async throws -> [String] {
        var runner = CheckRunner(suite: "StateStoreConformance<\(Store.self)>")
        await runner.check("empty store") {
            let store = try await load([])
            let snapshot = try await store.snapshot()
            let count = try await store.count()
            let value = try await store.value(forKey: 1)
            let history = try await store.history(limit: 20)
            if !snapshot.isEmpty || count != 0 || value != nil || !history.isEmpty {
                return "expected nothing, got snapshot \(snapshot), count \(count), value \(String(describing: value))"
            }
            return nil
        }
        for seed: UInt64 in [11, 12, 13] {
            await runner.check("seeded stream \(seed): shuffled, duplicated and replayed") {
                var generator = DemoEventGenerator(seed: seed, users: 25)
                let original = generator.next(400)
                var random = SeededRandomNumberGenerator(seed: seed)
                var events = original + original.prefix(100) + original.suffix(50)
                events.shuffle(using: &random)
                let store = try await load(events)
                return try await Self.compare(store, with: original)
            }
        }
        await runner.check("delete hides a key; an older insert does not bring it back; a newer one does") {
            let alice = DemoUser(id: 1, name: "Alice", age: 25)
            let events: [ChangeEvent<DemoUser>] = [
                .delete(key: 1, order: 20),
                .insert(alice, order: 10),
                .update(DemoUser(id: 2, name: "Bob", age: 31), order: 11),
                .delete(key: 2, order: 12),
                .insert(DemoUser(id: 2, name: "Bob", age: 40), order: 13),
            ]
            let store = try await load(events)
            if let value = try await store.value(forKey: 1) {
                return "key 1 was deleted at order 20, store has \(value)"
            }
            let bob = try await store.value(forKey: 2)
            if bob != DemoUser(id: 2, name: "Bob", age: 40) {
                return "key 2 should be Bob 40, store has \(String(describing: bob))"
            }
            let count = try await store.count()
            return count == 1 ? nil : "count should be 1, is \(count)"
        }
        await runner.check("history is newest first and limited") {
            var generator = DemoEventGenerator(seed: 21, users: 5)
            let events = generator.next(60)
            var random = SeededRandomNumberGenerator(seed: 21)
            let store = try await load(events.shuffled(using: &random))
            let history = try await store.history(limit: 20)
            let expected = Array(events.sorted { $0.order > $1.order }.prefix(20))
            return history == expected ? nil : "expected orders \(expected.map(\.order)), got \(history.map(\.order))"
        }
        return try runner.finish()
    }

    /// Compares every read of `store` with the reference state of `events`.
    static func compare(_ store: Store, with events: [ChangeEvent<DemoUser>]) async throws -> String? {
        var reference = LatestState<DemoUser>()
        for event in events { reference.apply(event) }
        let snapshot = try await store.snapshot()
        if snapshot != reference.snapshot() {
            return "snapshot differs: expected \(reference.snapshot()), got \(snapshot)"
        }
        let count = try await store.count()
        if count != reference.liveCount { return "count: expected \(reference.liveCount), got \(count)" }
        for key in Set(events.map(\.key)) {
            let value = try await store.value(forKey: key)
            if value != reference.value(forKey: key) {
                return
                    "value(forKey: \(key)): expected \(String(describing: reference.value(forKey: key))), got \(String(describing: value))"
            }
        }
        return nil
    }
}
