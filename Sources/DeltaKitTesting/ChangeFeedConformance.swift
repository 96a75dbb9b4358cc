public import DeltaKit
import Synchronization

/// A reusable conformance suite for `ChangeFeedStore` implementations: it checks the change-feed contract of
/// `ChangeFeedStore` (`Documentation/semantics.md`, "The change feed"), and, for a store that promises it, that the
/// feed delivers every change.
///
/// The contract, as the checks test it:
/// - per key, the feed delivers states the key had, in the order it had them, ending at its current state;
///   states in between may be left out (coalesced), but no key's latest state is ever missed and no state is
///   delivered twice;
/// - a change's kind is relative to what the feed delivered before — an insert for a key the feed does not hold,
///   an update or a delete for one it holds — and from `.now` or `.after(position)` relative to the state the feed
///   started from, so an update of a key that existed before is an update;
/// - a `.snapshot` start delivers the state as inserts first, and a change made while the snapshot is taken is
///   neither lost nor delivered twice;
/// - every change after the snapshot carries a position, and `.after(position)` continues with what follows it.
///
/// Nothing is required of the order across keys, which no partitioned store keeps. The backend supplies a fresh
/// store and a way to apply events to it and wait until they are visible (apply them in process, or publish them
/// and wait for the receipts). Every wait for the feed is bounded by `waitLimit`: a feed that leaves a change out
/// fails the check, saying which keys it did not bring to their current state, instead of making it wait forever.
///
/// With `everyChange`, the suite also compares the feed element by element with the changes the events made and
/// requires the positions to count up without a gap.
///
/// It is framework-neutral: it throws ``ConformanceFailure`` instead of calling `#expect` or `XCTAssert`.
public struct ChangeFeedConformance<Store: ChangeFeedStore>: Sendable where Store.Record == DemoUser {
    private let makeStore: @Sendable () async throws -> Store
    private let apply: @Sendable (Store, [ChangeEvent<DemoUser>]) async throws -> Void
    private let everyChange: Bool
    private let waitLimit: Duration

    /// Creates the suite.
    ///
    /// - Parameters:
    ///   - makeStore: Returns a fresh, empty store; called once per check.
    ///   - apply: Applies events to the store and returns once their effect is visible to reads and feeds.
    ///   - everyChange: `true` for a store whose feed promises more than the contract: every visible change, each
    ///     once, in the order they were made (`InMemoryStateStore`, `SQLiteStateStore`). The suite then also
    ///     applies more than 100 changes, many of them to the same keys, compares the feed one element at a time
    ///     with what applying them changed — what the store's own `apply(_:)` returned when it is a
    ///     `MutableStateStore`, otherwise what `LatestState` returns for the same events — and requires positions
    ///     whose text ends in `:<number>` to count up by one; and a resumed feed must repeat exactly what the first
    ///     feed delivered after the position. A store whose feed may coalesce changes to one key (RisingWave's
    ///     subscription keeps the net change per key per checkpoint) passes `false`. Default: `false`.
    ///   - waitLimit: How long a check waits for the feed to bring every key to its current state before it
    ///     fails. Default: 30 s.
    public init(
        makeStore: @escaping @Sendable () async throws -> Store,
        apply: @escaping @Sendable (Store, [ChangeEvent<DemoUser>]) async throws -> Void,
        everyChange: Bool = false,
        waitLimit: Duration = .seconds(30)
    ) {
        self.makeStore = makeStore
        self.apply = apply
        self.everyChange = everyChange
        self.waitLimit = waitLimit
    }

    /// Runs every check and returns the names of those that passed.
    ///
    /// - Throws: ``ConformanceFailure`` naming each failed check.
    @discardableResult
    public func run() async throws -> [String] {
        var runner = CheckRunner(suite: "ChangeFeedConformance<\(Store.self)>")
        await runner.check("a snapshot start replays live records as inserts, then reports changes") {
            try await checkSnapshotStart()
        }
        await runner.check("a start from now reports an update and a delete of existing keys as such") {
            try await checkNow()
        }
        await runner.check("changes made while the snapshot is taken are neither lost nor reported twice") {
            try await checkSnapshotSeam()
        }
        await runner.check("resuming after a position delivers the changes that follow it") {
            try await checkResume()
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

    private static var alice: DemoUser { DemoUser(id: 1, name: "Alice", age: 25) }
    private static var bob: DemoUser { DemoUser(id: 2, name: "Bob", age: 30) }
    private static var initial: [ChangeEvent<DemoUser>] { [.insert(alice, order: 1), .insert(bob, order: 2)] }

    private static func state(after events: [ChangeEvent<DemoUser>]) -> LatestState<DemoUser> {
        var state = LatestState<DemoUser>()
        for event in events { state.apply(event) }
        return state
    }

    private func checkSnapshotStart() async throws -> String? {
        let store = try await makeStore()
        try await apply(store, Self.initial)
        let before = Self.state(after: Self.initial)
        let carol = DemoUser(id: 3, name: "Carol", age: 41)
        let later: [ChangeEvent<DemoUser>] = [.insert(carol, order: 3)]
        var ledger = FeedLedger(before: before, events: later, fromSnapshot: true)
        let feed = FeedReader(try await store.changes(from: .snapshot))
        defer { feed.stop() }
        // The snapshot first: Alice and Bob as snapshot inserts.
        let snapshot = await follow(feed, &ledger, until: before.keyedSnapshot) { element, _ in
            element.isSnapshot ? nil : "expected the snapshot's inserts first, got \(element)"
        }
        if let snapshot { return "the snapshot: \(snapshot)" }
        try await apply(store, later)
        let target = ledger.final
        return await follow(feed, &ledger, until: target)
    }

    private func checkNow() async throws -> String? {
        let store = try await makeStore()
        try await apply(store, Self.initial)
        // Ten updates of one key in one batch — a store may deliver each or only the last — and a delete.
        let updates: [ChangeEvent<DemoUser>] = (0..<10).map { i in
            .update(DemoUser(id: 1, name: "Alice", age: 26 + i), order: 3 + Int64(i))
        }
        let events = updates + [.delete(key: 2, order: 20)]
        var ledger = FeedLedger(before: Self.state(after: Self.initial), events: events, fromSnapshot: false)
        let feed = FeedReader(try await store.changes(from: .now))
        defer { feed.stop() }
        try await apply(store, events)
        let target = ledger.final
        return await follow(feed, &ledger, until: target)
    }

    private func checkSnapshotSeam() async throws -> String? {
        let store = try await makeStore()
        var generator = DemoEventGenerator(seed: 41, users: 50)
        let early = generator.next(200)
        try await apply(store, early)
        let later = generator.next(300)
        var ledger = FeedLedger(before: Self.state(after: early), events: later, fromSnapshot: true)
        let apply = self.apply
        let writer = Task {
            for start in stride(from: 0, to: later.count, by: 10) {
                try await apply(store, Array(later[start..<min(start + 10, later.count)]))
            }
        }
        let feed = FeedReader(try await store.changes(from: .snapshot))
        defer { feed.stop() }
        let target = ledger.final
        let problem = await follow(feed, &ledger, until: target)
        try await writer.value
        if let problem { return problem }
        let held = try await store.snapshot()
        let expected = target.values.sorted { $0.id < $1.id }
        return held == expected ? nil : "the events make \(expected), but the store holds \(held)"
    }

    private func checkResume() async throws -> String? {
        let store = try await makeStore()
        try await apply(store, Self.initial)
        // Five batches of two updates, one per key: at least one change follows the first.
        let batches: [[ChangeEvent<DemoUser>]] = (0..<5).map { batch in
            (0..<2).map { i in
                let n = batch * 2 + i
                return .update(
                    DemoUser(id: 1 + i, name: i == 0 ? "Alice" : "Bob", age: 50 + n),
                    order: 10 + Int64(n)
                )
            }
        }
        var ledger = FeedLedger(
            before: Self.state(after: Self.initial),
            events: batches.flatMap { $0 },
            fromSnapshot: false
        )
        let first = FeedReader(try await store.changes(from: .now))
        defer { first.stop() }
        for batch in batches { try await apply(store, batch) }
        var delivered: [(element: ChangeFeedElement<DemoUser>, ledger: FeedLedger)] = []
        let target = ledger.final
        if let problem = await follow(
            first,
            &ledger,
            until: target,
            inspect: { element, before in
                delivered.append((element, before))
                return nil
            }
        ) {
            return "the first feed: \(problem)"
        }
        guard delivered.count >= 2, let position = delivered[0].element.position else {
            return
                "the first feed delivered \(delivered.map(\.element)) for 10 updates in 5 batches; the check needs two changes with positions to resume between them"
        }
        // The ledger as it stood after the first change: the resumed feed must continue from there.
        var resumedLedger = delivered[0].ledger
        try resumedLedger.consume(delivered[0].element)
        let resumed = FeedReader(try await store.changes(from: .after(position)))
        defer { resumed.stop() }
        var rest: [StateChange<DemoUser>] = []
        if let problem = await follow(
            resumed,
            &resumedLedger,
            until: target,
            inspect: { element, _ in
                rest.append(element.change)
                return nil
            }
        ) {
            return "after \(position): \(problem)"
        }
        let following = delivered.dropFirst().map(\.element.change)
        if everyChange, rest != following {
            return
                "after \(position): expected exactly what the first feed delivered after it, \(following), got \(rest)"
        }
        return nil
    }

    /// Reads `feed` until what it delivered folds to `target` (by key), checking each element against the ledger
    /// (and `inspect`, which sees it first, with the ledger as it was before it); returns what went wrong, or `nil`.
    /// Waits at most the wait limit.
    private func follow(
        _ feed: FeedReader<ChangeFeedElement<DemoUser>>,
        _ ledger: inout FeedLedger,
        until target: [Int: DemoUser],
        inspect: (ChangeFeedElement<DemoUser>, FeedLedger) -> String? = { _, _ in nil }
    ) async -> String? {
        let deadline = ContinuousClock.now + waitLimit
        while ledger.fold != target {
            switch await feed.next(before: deadline) {
            case .element(let element):
                if let problem = inspect(element, ledger) { return problem }
                do { try ledger.consume(element) } catch { return error.problem }
            case .end:
                return "the feed ended before it reached the store's state: \(ledger.difference(to: target))"
            case .failure(let error):
                return "the feed threw \(error) before it reached the store's state: \(ledger.difference(to: target))"
            case .timedOut:
                return
                    "the feed did not reach the store's state within \(waitLimit) (changes left out?): \(ledger.difference(to: target))"
            }
        }
        return nil
    }

    /// The `everyChange` check; returns what went wrong, or `nil`.
    ///
    /// A sentinel insert of a new key follows the events; the feed is read up to it — a store that promises every
    /// change in order delivers it last — so a feed that leaves changes out ends the check instead of making it
    /// wait for them.
    private func checkEveryChange() async throws -> String? {
        let store = try await makeStore()
        var generator = DemoEventGenerator(seed: 43, users: 6)
        let sentinel = ChangeEvent<DemoUser>.insert(DemoUser(id: 10_000, name: "Sentinel", age: 1), order: 1_000_000)
        let events = generator.next(300) + [sentinel]
        let feed = FeedReader(try await store.changes(from: .now))
        defer { feed.stop() }
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
        let deadline = ContinuousClock.now + waitLimit
        var delivered: [ChangeFeedElement<DemoUser>] = []
        while delivered.last?.change.key != sentinel.key {
            switch await feed.next(before: deadline) {
            case .element(let element): delivered.append(element)
            case .end: return "the feed ended after \(delivered.count) of \(expected.count) changes"
            case .failure(let error): return "the feed threw \(error) after \(delivered.count) changes"
            case .timedOut:
                return "the feed delivered \(delivered.count) of \(expected.count) changes within \(waitLimit)"
            }
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

extension LatestState where Record == DemoUser {
    /// The live records by key.
    fileprivate var keyedSnapshot: [Int: DemoUser] {
        Dictionary(uniqueKeysWithValues: snapshot().map { ($0.id, $0) })
    }
}

/// A contract violation found by ``FeedLedger``.
private struct LedgerViolation: Error {
    var problem: String
}

extension Error {
    fileprivate var problem: String { (self as? LedgerViolation)?.problem ?? "\(self)" }
}

/// The states each key went through while a feed was read, and how far the feed has followed them: the contract
/// as a value.
private struct FeedLedger {
    /// Per key, its visible states in order (`nil`: no record), the first being its state when the feed started.
    private let histories: [Int: [DemoUser?]]
    /// Per key, the index in its history of the state the feed last delivered (0 until it delivers one).
    private var reached: [Int: Int] = [:]
    /// What a consumer applying the feed holds.
    private(set) var fold: [Int: DemoUser]
    /// The state after every event.
    let final: [Int: DemoUser]
    private let fromSnapshot: Bool
    private var snapshotOver: Bool

    /// A ledger for a feed started when `before` was the state, during or before which `events` are applied in
    /// order. `fromSnapshot`: the feed starts with a snapshot (the consumer holds nothing yet); otherwise it starts
    /// from now, and its kinds are relative to `before`.
    init(before: LatestState<DemoUser>, events: [ChangeEvent<DemoUser>], fromSnapshot: Bool) {
        var reference = before
        var histories: [Int: [DemoUser?]] = [:]
        for record in before.snapshot() { histories[record.id] = [record] }
        for event in events {
            guard let change = reference.apply(event) else { continue }
            histories[change.key, default: [nil]].append(change.kind == .delete ? nil : change.record)
        }
        self.histories = histories
        self.final = reference.keyedSnapshot
        self.fold = fromSnapshot ? [:] : before.keyedSnapshot
        self.fromSnapshot = fromSnapshot
        self.snapshotOver = !fromSnapshot
    }

    /// Applies one element as a consumer would, after checking it against the contract.
    mutating func consume(_ element: ChangeFeedElement<DemoUser>) throws {
        let change = element.change
        let key = change.key
        if element.isSnapshot {
            guard !snapshotOver else {
                throw LedgerViolation(
                    problem: fromSnapshot
                        ? "a snapshot element after a change: \(element)"
                        : "a snapshot element in a feed that did not start from a snapshot: \(element)"
                )
            }
            guard change.kind == .insert else {
                throw LedgerViolation(problem: "a snapshot element that is not an insert: \(element)")
            }
        } else {
            snapshotOver = true
            guard element.position != nil else {
                throw LedgerViolation(problem: "a change without a position: \(element)")
            }
        }
        switch change.kind {
        case .insert where fold[key] != nil:
            throw LedgerViolation(
                problem: "insert of key \(key), which the feed already had (\(fold[key]!)): \(element)"
            )
        case .update where fold[key] == nil, .delete where fold[key] == nil:
            throw LedgerViolation(problem: "\(change.kind) of key \(key), which the feed does not have: \(element)")
        case .insert, .update:
            guard change.record != nil else {
                throw LedgerViolation(problem: "an \(change.kind) without a record: \(element)")
            }
        case .delete: break
        }
        let state = change.kind == .delete ? nil : change.record
        let history = histories[key] ?? [nil]
        let from = reached[key] ?? 0
        // A snapshot element may be the state the key had when the feed started; a change must be a later one.
        let first = element.isSnapshot ? from : from + 1
        guard let index = history.indices.dropFirst(first).first(where: { history[$0] == state }) else {
            if history.prefix(first).contains(state) {
                throw LedgerViolation(
                    problem:
                        "key \(key): \(Self.describe(state)) delivered after \(Self.describe(history[from])), a later state of the key — out of order or twice; the key's states: \(history.map(Self.describe))"
                )
            }
            throw LedgerViolation(
                problem:
                    "key \(key): \(Self.describe(state)) is not a state the key had; its states: \(history.map(Self.describe))"
            )
        }
        reached[key] = index
        fold[key] = state
    }

    /// The keys on which the fold and `target` differ (the first few).
    func difference(to target: [Int: DemoUser]) -> String {
        let keys = Set(fold.keys).union(target.keys).filter { fold[$0] != target[$0] }.sorted()
        let shown = keys.prefix(5).map { key in
            "key \(key): the feed has \(Self.describe(fold[key])), the store \(Self.describe(target[key]))"
        }
        return shown.joined(separator: "; ") + (keys.count > 5 ? "; and \(keys.count - 5) more keys" : "")
    }

    private static func describe(_ state: DemoUser?) -> String { state.map { "\($0)" } ?? "no record" }
}

/// Reads a feed in a task of its own, so that a check can wait for its next element with a deadline instead of
/// waiting forever for an element that never comes. (Package-wide: DeltaKit's backend tests read feeds with it.)
package final class FeedReader<Element: Sendable>: Sendable {
    /// What a wait gave.
    package enum Item: Sendable {
        case element(Element)
        case end
        case failure(any Error)
        case timedOut
    }

    private struct State {
        var items: [Item] = []
        var waiter: (id: Int, continuation: CheckedContinuation<Item, Never>)?
        /// Waits whose deadline passed before they started waiting.
        var expired: Set<Int> = []
        var nextID = 0
    }

    private let state = Mutex(State())
    private let pump = Mutex<Task<Void, Never>?>(nil)

    /// Starts reading `feed`.
    package init<Feed: AsyncSequence & Sendable>(_ feed: Feed) where Feed.Element == Element {
        let task = Task { [self] in
            do {
                for try await element in feed {
                    put(.element(element))
                    if Task.isCancelled { return }
                }
                put(.end)
            } catch {
                put(.failure(error))
            }
        }
        pump.withLock { $0 = task }
    }

    /// Stops reading the feed (cancels the reading task).
    package func stop() { pump.withLock { $0?.cancel() } }

    /// The next element, the end of the feed or its error — or ``Item/timedOut`` when none came before `deadline`.
    package func next(before deadline: ContinuousClock.Instant) async -> Item {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let timer = Task { [self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            if Task.isCancelled { return }
            let waiter = state.withLock { state -> CheckedContinuation<Item, Never>? in
                if let waiter = state.waiter, waiter.id == id {
                    state.waiter = nil
                    return waiter.continuation
                }
                state.expired.insert(id)
                return nil
            }
            waiter?.resume(returning: .timedOut)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Item? in
                if !state.items.isEmpty { return state.items.removeFirst() }
                if state.expired.remove(id) != nil { return .timedOut }
                state.waiter = (id, continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func put(_ item: Item) {
        let waiter = state.withLock { state -> CheckedContinuation<Item, Never>? in
            guard let waiter = state.waiter else {
                state.items.append(item)
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: item)
    }
}
