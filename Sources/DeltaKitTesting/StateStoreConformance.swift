public import DeltaKit
import Foundation

/// A reusable conformance suite for `StateStore` implementations.
///
/// The backend supplies `load`: given events (shuffled, duplicated, out of order), return a store whose
/// state reflects exactly those events — apply them, or publish them and wait until they are visible.
/// The suite compares the store with `LatestState`, the reference semantics.
///
/// It is framework-neutral: it throws ``ConformanceFailure`` instead of calling `#expect` or `XCTAssert`.
public struct StateStoreConformance<Store: StateStore>: Sendable where Store.Record == DemoUser {
    private let load: @Sendable ([ChangeEvent<DemoUser>]) async throws -> Store
    private let loadWire: (@Sendable ([[UInt8]]) async throws -> Store)?
    private let makeScalarStore: (@Sendable () async throws -> any MutableStateStore<ScalarSample>)?

    /// Creates the suite.
    ///
    /// - Parameters:
    ///   - load: Returns a fresh store holding the given events; called once per check.
    ///   - loadWire: Returns a fresh store fed with the given raw messages (wire JSON, some of them invalid),
    ///     the way the backend reads a topic. When given, the suite checks that invalid messages never
    ///     change state. Default: `nil`.
    ///   - makeScalarStore: Returns a fresh, empty store of ``ScalarSample`` records, for a store DeltaKit writes
    ///     (`MutableStateStore`). When given, the suite checks the batch rule: `apply(contentsOf:)` with one
    ///     invalid event (a non-finite `Double`) throws `serializationFailed` and applies none of the batch.
    ///     Default: `nil`.
    public init(
        load: @escaping @Sendable ([ChangeEvent<DemoUser>]) async throws -> Store,
        loadWire: (@Sendable ([[UInt8]]) async throws -> Store)? = nil,
        makeScalarStore: (@Sendable () async throws -> any MutableStateStore<ScalarSample>)? = nil
    ) {
        self.load = load
        self.loadWire = loadWire
        self.makeScalarStore = makeScalarStore
    }

    /// Messages that break DeltaKit's validity rule, each with a higher order than any valid event for its
    /// key (keys 1, 2 and 3), so that a store applying one would show it. The rule is in
    /// `Documentation/semantics.md`.
    public static var invalidMessages: [String] {
        [
            #"{"id":1,"name":"Mallory","age":1,"op":"upsert","event_order":900,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":1,"name":"Mallory","age":1,"op":"delete","event_order":901,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":2,"name":null,"age":1,"op":"insert","event_order":902,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":2,"name":"Mallory","age":"old","op":"update","event_order":903,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":null,"name":"Mallory","age":1,"op":"insert","event_order":904,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":3,"name":"Mallory","age":1,"op":"insert","event_order":null,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":3,"name":"Mallory","age":1,"op":"insert","ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":3,"name":"Mallory","age":1,"op":null,"event_order":905,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":3,"name":"Mallory","age":1,"op":"delete","event_order":906,"ts":"not a time"}"#,
            #"{"id":1,"name":"Mallory","op":"insert","event_order":907,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":2,"name":null,"age":5,"op":"delete","event_order":908,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":3,"name":"Mallory","age":null,"op":"delete","event_order":909,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            // What another producer may write, and RisingWave's lenient JSON parsing would read into the columns:
            // a numeric string for a number, a number or boolean for a string, an integer `ts`, a string
            // `event_order`, names in another case, a fraction for an integer.
            #"{"id":1,"name":"Mallory","age":"41","op":"update","event_order":910,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":2,"name":42,"age":1,"op":"update","event_order":911,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":3,"name":true,"age":1,"op":"update","event_order":912,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":1,"name":"Mallory","age":1,"op":"update","event_order":913,"ts":1704067200000}"#,
            #"{"id":2,"name":"Mallory","age":1,"op":"update","event_order":"914","ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"ID":3,"name":"Mallory","age":1,"op":"update","event_order":915,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":1,"NAME":"Mallory","age":1,"op":"update","event_order":916,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":2,"name":"Mallory","age":41.0,"op":"update","event_order":917,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            #"{"id":"3","name":"Mallory","age":1,"op":"update","event_order":918,"ts":"2024-01-01T00:00:00.000000+00:00"}"#,
            "not json at all",
            "",
        ]
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
        for (name, first, second) in Self.ties {
            await runner.check("equal-order tie, \(name)") {
                let store = try await load([first, second])
                if let problem = try await Self.compare(store, with: [first, second]) { return problem }
                let reversed = try await load([second, first])
                return try await Self.compare(reversed, with: [first, second]).map {
                    "in the other arrival order: \($0)"
                }
            }
        }
        if let loadWire {
            await runner.check("invalid messages never change state") {
                var generator = DemoEventGenerator(seed: 31, users: 3)
                // Keys 1, 2 and 3 end live (orders 801-803, below every invalid message's), so an invalid delete
                // or upsert that a store accepted would change what it shows — a delete of a key already deleted
                // would not.
                let at = Date(timeIntervalSince1970: 1_704_067_200)
                let valid =
                    generator.next(40)
                    + (1...3).map {
                        .update(
                            DemoUser(id: $0, name: "Live \($0)", age: 20 + $0),
                            order: 800 + Int64($0),
                            timestamp: at
                        )
                    }
                var messages = try valid.map { Array(try $0.jsonData()) }
                messages += Self.invalidMessages.map { Array($0.utf8) }
                var random = SeededRandomNumberGenerator(seed: 31)
                messages.shuffle(using: &random)
                let store = try await loadWire(messages)
                if let problem = try await Self.compare(store, with: valid) { return problem }
                let history = try await store.history(limit: 100)
                let expected = valid.sorted { $0.order > $1.order }
                return history == expected
                    ? nil
                    : "history: expected orders \(expected.map(\.order)), got \(history.map(\.order)): \(history.prefix(3))"
            }
        }
        if let makeScalarStore {
            await runner.check("a batch with an invalid event applies none of its events") {
                try await Self.checkBatchRule(try await makeScalarStore())
            }
        }
        return try runner.finish()
    }

    /// One valid event applied alone, then a batch whose middle event is invalid: the batch must throw
    /// `serializationFailed` and leave the store as the first event left it.
    static func checkBatchRule(_ store: any MutableStateStore<ScalarSample>) async throws -> String? {
        let first = ChangeEvent<ScalarSample>.insert(ScalarSample(id: 1, label: "before"), order: 1)
        try await store.apply(first)
        let batch: [ChangeEvent<ScalarSample>] = [
            .update(ScalarSample(id: 1, label: "valid, before the invalid one"), order: 2),
            .insert(ScalarSample(id: 2, score: .nan), order: 3),
            .insert(ScalarSample(id: 3, label: "valid, after the invalid one"), order: 4),
        ]
        do {
            try await store.apply(contentsOf: batch)
            return "apply(contentsOf:) accepted a batch holding a NaN score"
        } catch let error as DeltaKitError where error.code == .serializationFailed {
        } catch {
            return "expected DeltaKitError(serializationFailed), got \(error)"
        }
        let one = try await store.value(forKey: 1)
        let snapshot = try await store.snapshot()
        guard one?.label == "before", snapshot.map(\.id) == [1] else {
            let label = String(describing: one?.label)
            return "the batch was partly applied: key 1 is \(label), keys \(snapshot.map(\.id))"
        }
        return nil
    }

    /// Pairs of different events for one key with the same order, both arrival orders checked.
    static var ties: [(String, ChangeEvent<DemoUser>, ChangeEvent<DemoUser>)] {
        let at = Date(timeIntervalSince1970: 1_704_067_200)
        return [
            (
                "delete vs upsert (the delete wins)", .delete(key: 1, order: 50, timestamp: at),
                .update(DemoUser(id: 1, name: "Alice", age: 26), order: 50, timestamp: at)
            ),
            (
                "upsert vs upsert (the greater wire JSON wins)",
                .update(DemoUser(id: 2, name: "Bob", age: 31), order: 60, timestamp: at),
                .update(DemoUser(id: 2, name: "Bob", age: 32), order: 60, timestamp: at)
            ),
        ]
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
            // The record and the winning event's order, read together; a store may not know the order (`nil`).
            let ordered = try await store.valueAndOrder(forKey: key)
            let winner = reference.latestEvent(forKey: key).flatMap { $0.record == nil ? nil : $0 }
            if ordered?.record != winner?.record || (ordered?.order != nil && ordered?.order != winner?.order) {
                return
                    "valueAndOrder(forKey: \(key)): expected \(String(describing: winner.map { ($0.record!, $0.order) })), got \(String(describing: ordered))"
            }
        }
        return nil
    }
}
