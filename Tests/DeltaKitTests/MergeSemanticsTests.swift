import DeltaKit
import DeltaKitTesting
import Foundation
import Synchronization
import Testing

/// A plain reference: for each key, sort its events by the documented rule and take the last.
/// Written independently of `LatestStateMerge` (no pairwise comparisons, no incremental state).
func referenceState(_ events: [ChangeEvent<DemoUser>]) -> [DemoUser] {
    var result: [DemoUser] = []
    for (_, group) in Dictionary(grouping: events, by: \.key) {
        // order, delete first, ts, name (UTF-8 bytes, nil lowest), age (nil lowest), op text — as SQL's ORDER BY.
        let ranked = group.map { event in
            (
                event.order, event.operation == .delete ? 1 : 0, event.timestamp,
                Array((event.record?.name ?? "").utf8), event.record == nil ? 0 : 1, event.record?.age ?? Int.min,
                event.operation.rawValue, event
            )
        }
        let winner = ranked.max { a, b in
            if a.0 != b.0 { return a.0 < b.0 }
            if a.1 != b.1 { return a.1 < b.1 }
            if a.2 != b.2 { return a.2 < b.2 }
            if a.4 != b.4 { return a.4 < b.4 }
            if a.3 != b.3 { return a.3.lexicographicallyPrecedes(b.3) }
            if a.5 != b.5 { return a.5 < b.5 }
            return a.6 < b.6
        }!
        if let record = winner.7.record { result.append(record) }
    }
    return result.sorted { $0.id < $1.id }
}

/// Random streams with many ties: few keys, orders from a small range, random names and ages.
func randomStream(seed: UInt64, count: Int) -> [ChangeEvent<DemoUser>] {
    var random = SeededRandomNumberGenerator(seed: seed)
    let names = ["Alice", "Bob", "Charlie", "Dana"]
    return (0..<count).map { _ in
        let id = Int.random(in: 1...8, using: &random)
        let order = Int64.random(in: 1...40, using: &random)
        let ts = Date(timeIntervalSince1970: 1_700_000_000 + Double(Int.random(in: 0...3, using: &random)))
        switch Int.random(in: 0..<3, using: &random) {
        case 0: return .delete(key: id, order: order, timestamp: ts)
        case 1:
            let user = DemoUser(
                id: id,
                name: names.randomElement(using: &random)!,
                age: Int.random(in: 20...40, using: &random)
            )
            return .insert(user, order: order, timestamp: ts)
        default:
            let user = DemoUser(
                id: id,
                name: names.randomElement(using: &random)!,
                age: Int.random(in: 20...40, using: &random)
            )
            return .update(user, order: order, timestamp: ts)
        }
    }
}

@Suite("Merge semantics")
struct MergeSemanticsTests {
    @Test("highest order wins; deletes hide; insert and update both upsert")
    func basics() {
        var state = LatestState<DemoUser>()
        let alice = DemoUser(id: 1, name: "Alice", age: 25)
        #expect(state.apply(.insert(alice, order: 1))?.kind == .insert)
        #expect(state.apply(.update(DemoUser(id: 1, name: "Alice", age: 26), order: 3))?.kind == .update)
        #expect(state.apply(.update(DemoUser(id: 1, name: "Alice", age: 99), order: 2)) == nil)
        #expect(state.value(forKey: 1)?.age == 26)
        #expect(state.apply(.delete(key: 1, order: 4))?.kind == .delete)
        #expect(state.value(forKey: 1) == nil)
        #expect(state.apply(.insert(alice, order: 3)) == nil, "an older insert must not resurrect a deleted key")
        #expect(state.liveCount == 0 && state.tombstoneCount == 1)
        #expect(state.apply(.update(alice, order: 5))?.kind == .insert, "an update after a delete upserts")
        #expect(state.snapshot() == [alice])
    }

    @Test(
        "ties: a delete beats an upsert, then the later ts, then the greater fields in order, in either arrival order"
    )
    func ties() {
        let a = ChangeEvent.update(
            DemoUser(id: 1, name: "Alice", age: 25),
            order: 5,
            timestamp: .init(timeIntervalSince1970: 0)
        )
        let b = ChangeEvent.update(
            DemoUser(id: 1, name: "Bob", age: 25),
            order: 5,
            timestamp: .init(timeIntervalSince1970: 0)
        )
        let d = ChangeEvent<DemoUser>.delete(key: 1, order: 5, timestamp: .init(timeIntervalSince1970: 0))
        #expect(LatestStateMerge.supersedes(b, a) && !LatestStateMerge.supersedes(a, b))
        #expect(LatestStateMerge.supersedes(d, b) && !LatestStateMerge.supersedes(b, d))
        #expect(!LatestStateMerge.supersedes(a, a))
        // The later timestamp wins before any field is compared.
        let later = ChangeEvent.update(
            DemoUser(id: 1, name: "Aaron", age: 1),
            order: 5,
            timestamp: .init(timeIntervalSince1970: 1)
        )
        #expect(LatestStateMerge.supersedes(later, b) && !LatestStateMerge.supersedes(b, later))
        // Fields compare as SQL does: strings by UTF-8 bytes ("Z" < "a"), numbers by value (100 > 99, not as text).
        let upper = ChangeEvent.update(DemoUser(id: 1, name: "Zed", age: 1), order: 5, timestamp: a.timestamp)
        let lower = ChangeEvent.update(DemoUser(id: 1, name: "abe", age: 1), order: 5, timestamp: a.timestamp)
        #expect(LatestStateMerge.supersedes(lower, upper) && !LatestStateMerge.supersedes(upper, lower))
        let young = ChangeEvent.update(DemoUser(id: 1, name: "Al", age: 99), order: 5, timestamp: a.timestamp)
        let old = ChangeEvent.update(DemoUser(id: 1, name: "Al", age: 100), order: 5, timestamp: a.timestamp)
        #expect(LatestStateMerge.supersedes(old, young) && !LatestStateMerge.supersedes(young, old))
        // Equal values: an update wins over an insert.
        let inserted = ChangeEvent.insert(DemoUser(id: 1, name: "Al", age: 99), order: 5, timestamp: a.timestamp)
        #expect(LatestStateMerge.supersedes(young, inserted) && !LatestStateMerge.supersedes(inserted, young))
        for events in [[a, b], [b, a]] {
            var state = LatestState<DemoUser>()
            for e in events { state.apply(e) }
            #expect(state.value(forKey: 1)?.name == "Bob")
        }
        for events in [[a, d, b], [d, b, a], [b, a, d]] {
            var state = LatestState<DemoUser>()
            for e in events { state.apply(e) }
            #expect(state.value(forKey: 1) == nil)
        }
    }

    @Test(
        "ties compare every scalar kind by value as SQL does, not by its JSON text",
        arguments: [
            ("score", ScalarSample(id: 1, score: -1.5), ScalarSample(id: 1, score: 2)),
            ("ratio", ScalarSample(id: 1, ratio: 0.25), ScalarSample(id: 1, ratio: 1e10)),
            ("ratio nil", ScalarSample(id: 1, ratio: nil), ScalarSample(id: 1, ratio: -1)),
            ("amount", ScalarSample(id: 1, amount: Decimal(string: "9.5")!), ScalarSample(id: 1, amount: 10.25)),
            (
                "at", ScalarSample(id: 1, at: Date(timeIntervalSince1970: 999_999_999)),
                ScalarSample(id: 1, at: Date(timeIntervalSince1970: 1_000_000_000))
            ),
            (
                "token", ScalarSample(id: 1, token: UUID(uuidString: "A0000000-0000-0000-0000-000000000000")!),
                ScalarSample(id: 1, token: UUID(uuidString: "b0000000-0000-0000-0000-000000000000")!)
            ),
            ("status", ScalarSample(id: 1, status: .active), ScalarSample(id: 1, status: .suspended)),
            ("tier", ScalarSample(id: 1, tier: .free), ScalarSample(id: 1, tier: .paid)),
            ("flag", ScalarSample(id: 1, flag: false), ScalarSample(id: 1, flag: true)),
            ("small", ScalarSample(id: 1, small: -7), ScalarSample(id: 1, small: 3)),
            ("big", ScalarSample(id: 1, big: 9), ScalarSample(id: 1, big: 10)),
        ]
    )
    func scalarTies(field: String, lower: ScalarSample, higher: ScalarSample) {
        let at = Date(timeIntervalSince1970: 1_704_067_200)
        let low = ChangeEvent.update(lower, order: 7, timestamp: at)
        let high = ChangeEvent.update(higher, order: 7, timestamp: at)
        #expect(LatestStateMerge.supersedes(high, low), "\(field): the greater value wins")
        #expect(!LatestStateMerge.supersedes(low, high), "\(field): the smaller value never wins")
    }

    @Test("2,000 random streams, shuffled, duplicated and replayed, equal the plain reference")
    func property() async throws {
        for seed in UInt64(0)..<2_000 {
            let stream = randomStream(seed: seed, count: 60)
            let expected = referenceState(stream)
            var random = SeededRandomNumberGenerator(seed: seed &* 31)
            var variants: [[ChangeEvent<DemoUser>]] = [stream, stream.shuffled(using: &random)]
            variants.append((stream + stream.prefix(20)).shuffled(using: &random))  // duplicates
            variants.append(stream + stream)  // full replay
            for (i, events) in variants.enumerated() {
                let store = try InMemoryStateStore<DemoUser>()
                try await store.apply(contentsOf: events)
                let snapshot = try await store.snapshot()
                if snapshot != expected {
                    Issue.record("seed \(seed) variant \(i): expected \(expected), got \(snapshot)")
                    return
                }
                #expect(try await store.count() == expected.count)
            }
        }
    }

    @Test("memory is live keys plus tombstones, not events")
    func boundedMemory() async throws {
        var generator = DemoEventGenerator(seed: 5, users: 50)
        let store = try InMemoryStateStore<DemoUser>(historyLimit: 20)
        for _ in 0..<20 { try await store.apply(contentsOf: generator.next(1_000)) }
        #expect(try await store.count() + store.tombstoneCount == 50)
        #expect(try await store.history(limit: 1_000).count == 20)
    }

    @Test("history keeps the newest historyLimit events by order, whatever order they arrive in")
    func historyWindow() async throws {
        for limit in [1, 3, 7] {
            var orders = Array(1...40).map(Int64.init)
            var generator = SystemRandomNumberGenerator()
            orders.shuffle(using: &generator)
            orders += [38, 2, 40]  // duplicates of kept and dropped orders
            let store = try InMemoryStateStore<DemoUser>(historyLimit: limit)
            var applied: [ChangeEvent<DemoUser>] = []
            for (index, order) in orders.enumerated() {
                let event = ChangeEvent.insert(DemoUser(id: index % 5, name: "n\(index)", age: index), order: order)
                applied.append(event)
                if index % 2 == 0 { try store.applyNow(event) } else { try await store.apply(contentsOf: [event]) }
            }
            // The reference: stable by order (equal orders keep arrival order), newest first.
            let expected = Array(
                applied.enumerated().sorted { ($0.element.order, $0.offset) < ($1.element.order, $1.offset) }
                    .map(\.element).suffix(limit).reversed()
            )
            #expect(try await store.history(limit: 1_000) == expected, "limit \(limit)")
            #expect(try await store.history(limit: 1) == Array(expected.prefix(1)), "limit \(limit)")
        }
    }

    @Test("removing old tombstones keeps newer ones")
    func tombstoneCompaction() {
        var state = LatestState<DemoUser>()
        state.apply(.delete(key: 1, order: 10))
        state.apply(.delete(key: 2, order: 30))
        state.apply(.insert(DemoUser(id: 3, name: "C", age: 1), order: 5))
        state.removeTombstones(olderThan: 20)
        #expect(state.tombstoneCount == 1 && state.liveCount == 1)
        #expect(state.latestEvent(forKey: 2)?.operation == .delete)
    }
}

@Suite("HybridLogicalClock")
struct HybridLogicalClockTests {
    final class FakeWall: Sendable {
        let value = Mutex<Int64>(1_000_000)
        var micros: Int64 {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }

    @Test("strictly increasing even when the wall clock stalls or steps back")
    func monotonic() {
        let wall = FakeWall()
        let clock = HybridLogicalClock { Date(timeIntervalSince1970: Double(wall.micros) / 1_000_000) }
        let a = clock.next()
        let b = clock.next()
        wall.micros -= 500_000
        let c = clock.next()
        #expect(a == 1_000_000 && b == 1_000_001 && c == 1_000_002)
        wall.micros += 10_000_000
        #expect(clock.next() == 10_500_000)
    }

    /// Deterministic versions of what the concurrency test below can only catch by luck: another call that lands
    /// between this call's reading of the wall clock and its update (the time source itself calls `next()`), and a
    /// wall clock that stalls, steps back and jumps, interleaved with `observe(_:)`. Every order must exceed every
    /// order issued or observed before it.
    @Test("every order exceeds all before it: a call landing inside another, a stalled, backwards or jumping wall")
    func neverRepeats() {
        final class Interleaving: Sendable {
            let state = Mutex<(wall: Int64, nested: Int, issued: [Int64])>((1_000_000, 0, []))
            let clock = Mutex<HybridLogicalClock?>(nil)
        }
        let interleaving = Interleaving()
        let clock = HybridLogicalClock {
            // Every third reading, another caller's next() completes here, before this call takes its order.
            let (wall, interrupt) = interleaving.state.withLock { state -> (Int64, Bool) in
                state.nested += 1
                return (state.wall, state.nested % 3 == 0)
            }
            if interrupt, let clock = interleaving.clock.withLock({ $0 }) {
                let inner = clock.next()
                interleaving.state.withLock { $0.issued.append(inner) }
            }
            return Date(timeIntervalSince1970: Double(wall) / 1_000_000)
        }
        interleaving.clock.withLock { $0 = clock }
        var random = SeededRandomNumberGenerator(seed: 17)
        var highest: Int64 = 0
        for step in 0..<2_000 {
            // The wall clock: mostly stalled, sometimes a step back, sometimes a jump ahead.
            interleaving.state.withLock { state in
                switch Int.random(in: 0..<10, using: &random) {
                case 0: state.wall -= Int64.random(in: 1...5_000, using: &random)
                case 1: state.wall += Int64.random(in: 1...5_000, using: &random)
                default: break
                }
            }
            if step % 50 == 0 {
                let observed = highest + Int64.random(in: 0...100, using: &random)
                clock.observe(observed)
                highest = max(highest, observed)
            }
            let order = clock.next()
            let nested = interleaving.state.withLock { state in
                defer { state.issued = [] }
                return state.issued
            }
            // Orders issued inside this call were issued before it returned: they come first.
            for earlier in nested {
                #expect(earlier > highest, "step \(step): \(earlier) after \(highest)")
                highest = max(highest, earlier)
            }
            #expect(order > highest, "step \(step): next() returned \(order), not above \(highest)")
            guard order > highest else { return }
            highest = order
        }
    }

    @Test("a restarted producer continues above its old orders; the demo's counter would not")
    func restart() {
        // A burst of 1,000 events within one microsecond of wall time: the clock runs 1,000 µs ahead.
        let first = HybridLogicalClock(now: { Date(timeIntervalSince1970: 1_700_000_000) })
        let before = (0..<1_000).map { _ in first.next() }
        // The restarted process comes up one second later (a restart never takes less than the lead).
        let restarted = HybridLogicalClock(now: { Date(timeIntervalSince1970: 1_700_000_001) })
        #expect(restarted.next() > before.last!)
        // Seeding from the highest order seen survives a wall clock that went backwards.
        let behind = HybridLogicalClock(floor: before.last!, now: { Date(timeIntervalSince1970: 0) })
        #expect(behind.next() == before.last! + 1)
    }

    @Test("observing another producer's order moves this clock past it")
    func observe() {
        let clock = HybridLogicalClock(now: { Date(timeIntervalSince1970: 1) })
        clock.observe(9_000_000_000)
        #expect(clock.next() == 9_000_000_001)
    }

    @Test("concurrent callers never get the same order")
    func concurrent() async {
        let clock = HybridLogicalClock()
        let orders = await withTaskGroup(of: [Int64].self) { group in
            for _ in 0..<8 { group.addTask { (0..<5_000).map { _ in clock.next() } } }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(Set(orders).count == 40_000)
    }
}
