public import DeltaKit

/// A reusable conformance suite for `ChangeFeedStore` implementations.
///
/// The backend supplies a fresh store and a way to apply events to it and wait until they are visible
/// (apply them in process, or publish them and wait for the receipts). The suite checks both starts of the
/// feed, that an update or delete of a key that existed before the feed started is reported as such, that
/// a change made while the snapshot is read is neither lost nor reported twice, and resuming after a position.
/// For a store whose feed promises every change (`everyChange`, the default), it also compares the feed element by
/// element with the changes the events made, and requires the positions to count up without a gap.
///
/// It is framework-neutral: it throws ``ConformanceFailure`` instead of calling `#expect` or `XCTAssert`.
public struct ChangeFeedConformance<Store: ChangeFeedStore>: Sendable where Store.Record == DemoUser {
    private let makeStore: @Sendable () async throws -> Store
    private let apply: @Sendable (Store, [ChangeEvent<DemoUser>]) async throws -> Void
    private let everyChange: Bool

    /// Creates the suite.
    ///
    /// - Parameters:
    ///   - makeStore: Returns a fresh, empty store; called once per check.
    ///   - apply: Applies events to the store and returns once their effect is visible to reads and feeds.
    ///   - everyChange: `true` for a store whose feed delivers every visible change, each once, in the order
    ///     they were made (`InMemoryStateStore`, `SQLiteStateStore`): the suite then applies more than 100
    ///     changes, many of them to the same keys, and compares the feed one element at a time with what applying
    ///     them changed — what the store's own `apply(_:)` returned when it is a `MutableStateStore`, otherwise
    ///     what `LatestState` returns for the same events — and requires positions whose text ends in
    ///     `:<number>` to count up by one. A store whose feed may leave out a change that a later one to the same
    ///     key overwrites passes `false`. Default: `true`.
    public init(
        makeStore: @escaping @Sendable () async throws -> Store,
        apply: @escaping @Sendable (Store, [ChangeEvent<DemoUser>]) async throws -> Void,
        everyChange: Bool = true
    ) {
        self.makeStore = makeStore
        self.apply = apply
        self.everyChange = everyChange
    }

    /// Runs every check and returns the names of those that passed.
    ///
    /// - Throws: ``ConformanceFailure`` naming each failed check.
    @discardableResult
    public func run() async throws -> [String] {
        var runner = CheckRunner(suite: "ChangeFeedConformance<\(Store.self)>")
        let alice = DemoUser(id: 1, name: "Alice", age: 25)
        let bob = DemoUser(id: 2, name: "Bob", age: 30)
        let initial: [ChangeEvent<DemoUser>] = [.insert(alice, order: 1), .insert(bob, order: 2)]

        await runner.check("a snapshot start replays live records as inserts, then reports changes") {
            let store = try await makeStore()
            try await apply(store, initial)
            var feed = try await store.changes(from: .snapshot).makeAsyncIterator()
            var snapshot: [DemoUser] = []
            for _ in 0..<2 {
                guard let element = try await feed.next() else { return "the feed ended during the snapshot" }
                guard element.isSnapshot, element.change.kind == .insert, let record = element.change.record else {
                    return "expected a snapshot insert, got \(element)"
                }
                snapshot.append(record)
            }
            if snapshot != [alice, bob] { return "snapshot: expected [Alice, Bob], got \(snapshot)" }
            let carol = DemoUser(id: 3, name: "Carol", age: 41)
            try await apply(store, [.insert(carol, order: 3)])
            guard let next = try await feed.next() else { return "the feed ended after the snapshot" }
            let expected = StateChange(kind: .insert, key: 3, record: carol)
            return next.change == expected && !next.isSnapshot ? nil : "expected \(expected), got \(next)"
        }

        await runner.check("a start from now reports an update and a delete of existing keys as such") {
            let store = try await makeStore()
            try await apply(store, initial)
            var feed = try await store.changes(from: .now).makeAsyncIterator()
            let older = DemoUser(id: 1, name: "Alice", age: 26)
            try await apply(store, [.update(older, order: 3), .delete(key: 2, order: 4)])
            let expected: [StateChange<DemoUser>] = [
                StateChange(kind: .update, key: 1, record: older),
                StateChange(kind: .delete, key: 2, record: bob),
            ]
            var got: [StateChange<DemoUser>] = []
            for _ in expected {
                guard let element = try await feed.next() else { break }
                got.append(element.change)
            }
            return got == expected ? nil : "expected \(expected), got \(got)"
        }

        await runner.check("changes made while the snapshot is taken are neither lost nor reported twice") {
            let store = try await makeStore()
            var generator = DemoEventGenerator(seed: 41, users: 50)
            try await apply(store, generator.next(200))
            let later = generator.next(300)
            let sentinel = ChangeEvent<DemoUser>.insert(
                DemoUser(id: 10_000, name: "Sentinel", age: 1),
                order: 1_000_000
            )
            async let writer: Void = {
                for start in stride(from: 0, to: later.count, by: 10) {
                    try await apply(store, Array(later[start..<min(start + 10, later.count)]))
                }
                try await apply(store, [sentinel])
            }()
            var folded: [Int: DemoUser] = [:]
            for try await element in try await store.changes(from: .snapshot) {
                let change = element.change
                switch change.kind {
                case .insert:
                    if folded[change.key] != nil { return "insert of key \(change.key), which the feed already had" }
                    folded[change.key] = change.record
                case .update:
                    if folded[change.key] == nil { return "update of key \(change.key), which the feed never had" }
                    folded[change.key] = change.record
                case .delete:
                    if folded.removeValue(forKey: change.key) == nil {
                        return "delete of key \(change.key), which the feed never had"
                    }
                }
                if change.key == sentinel.key { break }
            }
            try await writer
            let snapshot = try await store.snapshot()
            let fromFeed = folded.values.sorted { $0.id < $1.id }
            return fromFeed == snapshot ? nil : "the feed folds to \(fromFeed), the store holds \(snapshot)"
        }

        await runner.check("resuming after a position delivers exactly the changes that follow it") {
            let store = try await makeStore()
            try await apply(store, initial)
            let events: [ChangeEvent<DemoUser>] = (0..<10).map { i in
                .update(DemoUser(id: 1 + i % 2, name: i % 2 == 0 ? "Alice" : "Bob", age: 50 + i), order: 10 + Int64(i))
            }
            // A sentinel insert of a new key ends both reads, so a feed that leaves changes out fails instead of
            // making the check wait for them.
            let sentinel = DemoUser(id: 10_000, name: "Sentinel", age: 1)
            var first: [ChangeFeedElement<DemoUser>] = []
            do {
                var feed = try await store.changes(from: .now).makeAsyncIterator()
                try await apply(store, events + [.insert(sentinel, order: 1_000)])
                for _ in 0..<4 {
                    guard let element = try await feed.next() else { return "the first feed ended early" }
                    if element.change.key == sentinel.id {
                        return "the feed delivered \(first.count) of 10 updates: \(first.map(\.change))"
                    }
                    first.append(element)
                }
            }
            guard let position = first.last?.position else { return "a change carried no position" }
            var resumed = try await store.changes(from: .after(position)).makeAsyncIterator()
            var rest: [StateChange<DemoUser>] = []
            while rest.last?.key != sentinel.id {
                guard let element = try await resumed.next() else { break }
                rest.append(element.change)
            }
            let expected =
                events[4...].map { StateChange(kind: .update, key: $0.key, record: $0.record) }
                + [StateChange(kind: .insert, key: sentinel.id, record: sentinel)]
            return rest == expected ? nil : "after \(position): expected \(expected), got \(rest)"
        }
        if everyChange {
            await runner.check(
                "every change is delivered once, in order, as applying it returned; positions have no gaps"
            ) {
                try await checkEveryChange()
            }
        }
        return try runner.finish()
    }

    /// The `everyChange` check; returns what went wrong, or `nil`.
    ///
    /// A sentinel insert of a new key follows the events; the feed is read up to it, so a feed that leaves changes
    /// out ends the check instead of making it wait for them.
    private func checkEveryChange() async throws -> String? {
        let store = try await makeStore()
        var generator = DemoEventGenerator(seed: 43, users: 6)
        let sentinel = ChangeEvent<DemoUser>.insert(DemoUser(id: 10_000, name: "Sentinel", age: 1), order: 1_000_000)
        let events = generator.next(300) + [sentinel]
        var feed = try await store.changes(from: .now).makeAsyncIterator()
        var expected: [StateChange<DemoUser>] = []
        if let mutable = store as? any MutableStateStore<DemoUser> {
            for event in events {
                if let change = try await mutable.apply(event) { expected.append(change) }
            }
        } else {
            var reference = LatestState<DemoUser>()
            expected = events.compactMap { reference.apply($0) }
            try await apply(store, events)
        }
        guard expected.count > 100, expected.last?.key == sentinel.key else {
            return "the check needs more than 100 changes ending with the sentinel's; applying made \(expected)"
        }
        var delivered: [ChangeFeedElement<DemoUser>] = []
        while delivered.last?.change.key != sentinel.key {
            guard let element = try await feed.next() else {
                return "the feed ended after \(delivered.count) of \(expected.count) changes"
            }
            delivered.append(element)
        }
        var previousNumber: Int64?
        for (index, change) in expected.enumerated() {
            guard index < delivered.count else {
                return
                    "the feed delivered \(delivered.count) changes up to the sentinel, applying made \(expected.count)"
            }
            let element = delivered[index]
            if element.change != change || element.isSnapshot {
                return "change \(index) of \(expected.count): expected \(change), the feed delivered \(element)"
            }
            guard let position = element.position else { return "change \(index) carried no position" }
            if let number = position.description.split(separator: ":").last.flatMap({ Int64($0) }) {
                if let previousNumber, number != previousNumber + 1 {
                    return "change \(index): position \(position) follows number \(previousNumber): a gap"
                }
                previousNumber = number
            }
        }
        return nil
    }
}
