import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@Suite("Change feed")
struct ChangeFeedTests {
    @Test("the in-memory store passes the change feed conformance suite")
    func conformance() async throws {
        let passed = try await ChangeFeedConformance(
            makeStore: { try InMemoryStateStore<DemoUser>() },
            apply: { store, events in try await store.apply(contentsOf: events) },
            everyChange: true
        ).run()
        #expect(passed.count == 5)
    }

    /// An in-memory store whose feed is rewritten element by element: a feed that breaks the contract, or one that
    /// keeps it while coalescing, made on purpose. `rewrite` is made once per feed (it may keep state).
    struct RewrittenFeed: ChangeFeedStore {
        /// Turns one element of the underlying feed into what the rewritten feed delivers.
        typealias Rewrite = (ChangeFeedElement<DemoUser>) async throws -> [ChangeFeedElement<DemoUser>]
        /// Makes a feed's ``Rewrite`` (once per feed).
        typealias MakeRewrite = @Sendable (InMemoryStateStore<DemoUser>) -> Rewrite

        let store: InMemoryStateStore<DemoUser>
        let makeRewrite: MakeRewrite
        func snapshot() async throws -> [DemoUser] { try await store.snapshot() }
        func value(forKey key: Int) async throws -> DemoUser? { try await store.value(forKey: key) }
        func history(limit: Int) async throws -> [ChangeEvent<DemoUser>] { try await store.history(limit: limit) }
        func count() async throws -> Int { try await store.count() }
        func changes(from start: ChangeFeedStart) async throws -> AsyncThrowingStream<
            ChangeFeedElement<DemoUser>, any Error
        > {
            let feed = try await store.changes(from: start)
            let (store, makeRewrite) = (store, makeRewrite)
            return AsyncThrowingStream { continuation in
                let task = Task {
                    let rewrite = makeRewrite(store)
                    do {
                        for try await element in feed {
                            for rewritten in try await rewrite(element) { continuation.yield(rewritten) }
                        }
                        continuation.finish()
                    } catch { continuation.finish(throwing: error) }
                }
                continuation.onTermination = { _ in task.cancel() }
            }
        }

        static func suite(
            everyChange: Bool = false,
            waitLimit: Duration = .seconds(2),
            _ makeRewrite: @escaping MakeRewrite
        ) -> ChangeFeedConformance<RewrittenFeed> {
            ChangeFeedConformance(
                makeStore: { RewrittenFeed(store: try InMemoryStateStore<DemoUser>(), makeRewrite: makeRewrite) },
                apply: { store, events in try await store.store.apply(contentsOf: events) },
                everyChange: everyChange,
                waitLimit: waitLimit
            )
        }
    }

    @Test("the contract fails a feed that misses a key's latest state — within the wait limit, saying which key")
    func contractCatchesMissedLatestState() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let error = await #expect(throws: ConformanceFailure.self) {
            // Leaves every delete out: a deleted key's last state never reaches the consumer.
            try await RewrittenFeed.suite { _ in { $0.change.kind == .delete ? [] : [$0] } }.run()
        }
        let now = error?.failures.first { $0.hasPrefix("a start from now reports an update") }
        #expect(now?.contains("did not reach the store's state within") == true, "\(String(describing: now))")
        #expect(
            now?.contains(#"key 2: the feed has DemoUser(id: 2, name: "Bob""#) == true,
            "\(String(describing: now))"
        )
        // Bounded: every check waits at most its limit (2 s here), never for ever.
        #expect(clock.now - started < .seconds(60))
    }

    @Test("the contract fails a feed that delivers a key's states out of order, even when it ends at the latest")
    func contractCatchesOutOfOrder() async throws {
        let error = await #expect(throws: ConformanceFailure.self) {
            // The first update of a key the feed saw before is followed by the key's older state, then by the
            // update again: the feed ends at the right state, but went back in between.
            try await RewrittenFeed.suite { _ in
                var previous: [Int: DemoUser] = [:]
                var reordered = false
                return { element in
                    defer { if let record = element.change.record { previous[element.change.key] = record } }
                    guard !reordered, element.change.kind == .update, let old = previous[element.change.key] else {
                        return [element]
                    }
                    reordered = true
                    var stale = element
                    stale.change.record = old
                    return [element, stale, element]
                }
            }.run()
        }
        let now = error?.failures.first { $0.hasPrefix("a start from now reports an update") }
        #expect(now?.contains("out of order or twice") == true, "\(String(describing: now))")
    }

    @Test("a feed that coalesces updates passes the contract and fails the every-change mode")
    func coalescingFeed() async throws {
        // Leaves out an update that a later change to the same key already overwrote — as RisingWave's
        // subscription does within a checkpoint. Inserts and deletes pass, so every kind stays right.
        let coalescing: RewrittenFeed.MakeRewrite = { store in
            { element in
                guard element.change.kind == .update,
                    try await store.value(forKey: element.change.key) != element.change.record
                else { return [element] }
                return []
            }
        }
        let passed = try await RewrittenFeed.suite(waitLimit: .seconds(30), coalescing).run()
        #expect(passed.count == 4)
        let error = await #expect(throws: ConformanceFailure.self) {
            try await RewrittenFeed.suite(everyChange: true, waitLimit: .seconds(30), coalescing).run()
        }
        #expect(error?.failures.contains { $0.hasPrefix("every change is delivered once") } == true)
    }

    /// Reports every change as an insert: what `watch --from-now` did before the feed existed.
    struct EverythingIsAnInsert: ChangeFeedStore {
        let store: InMemoryStateStore<DemoUser>
        func snapshot() async throws -> [DemoUser] { try await store.snapshot() }
        func value(forKey key: Int) async throws -> DemoUser? { try await store.value(forKey: key) }
        func history(limit: Int) async throws -> [ChangeEvent<DemoUser>] { try await store.history(limit: limit) }
        func count() async throws -> Int { try await store.count() }
        func changes(from start: ChangeFeedStart) async throws -> AsyncThrowingStream<
            ChangeFeedElement<DemoUser>, any Error
        > {
            let feed = try await store.changes(from: start)
            return AsyncThrowingStream { continuation in
                let task = Task {
                    do {
                        for try await var element in feed {
                            element.change.kind = .insert
                            continuation.yield(element)
                        }
                        continuation.finish()
                    } catch { continuation.finish(throwing: error) }
                }
                continuation.onTermination = { _ in task.cancel() }
            }
        }
    }

    @Test("the suite fails a feed that reports updates and deletes as inserts")
    func suiteCatchesWrongKinds() async throws {
        let error = await #expect(throws: ConformanceFailure.self) {
            try await ChangeFeedConformance(
                makeStore: { EverythingIsAnInsert(store: try InMemoryStateStore<DemoUser>()) },
                apply: { store, events in try await store.store.apply(contentsOf: events) }
            ).run()
        }
        #expect(error?.failures.contains { $0.hasPrefix("a start from now reports an update") } == true)
    }

    @Test("a feed that falls behind the buffer ends with changesUnavailable after what it buffered")
    func overflow() async throws {
        let store = try InMemoryStateStore<DemoUser>(changeBufferLimit: 3)
        let feed = try await store.changes(from: .now)
        for i in 1...5 { try await store.apply(.insert(DemoUser(id: i, name: "u\(i)", age: i), order: Int64(i))) }
        var received: [Int] = []
        await #expect {
            for try await element in feed { received.append(element.change.key) }
        } throws: { error in
            (error as? DeltaKitError)?.code == .changesUnavailable
        }
        #expect(received == [1, 2, 3])
        #expect(store.activeFeeds == 0)
    }

    @Test("a position from another store, or one no longer kept, is refused")
    func positions() async throws {
        let store = try InMemoryStateStore<DemoUser>(changeBufferLimit: 2)
        let other = try InMemoryStateStore<DemoUser>()
        try await other.apply(.insert(DemoUser(id: 1, name: "a", age: 1), order: 1))
        var otherFeed = try await other.changes(from: .snapshot).makeAsyncIterator()
        let foreign = try #require(try await otherFeed.next()?.position)
        await #expect {
            _ = try await store.changes(from: .after(foreign))
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration
        }
        var feed = try await store.changes(from: .now).makeAsyncIterator()
        try await store.apply(.insert(DemoUser(id: 1, name: "a", age: 1), order: 1))
        let first = try #require(try await feed.next()?.position)
        for i in 2...6 { try await store.apply(.insert(DemoUser(id: i, name: "u", age: i), order: Int64(i))) }
        await #expect {
            _ = try await store.changes(from: .after(first))
        } throws: { error in
            (error as? DeltaKitError)?.code == .changesUnavailable
        }
    }

    @Test("cancelling the consumer unregisters its feed")
    func cancellation() async throws {
        let store = try InMemoryStateStore<DemoUser>()
        let feed = try await store.changes(from: .now)
        #expect(store.activeFeeds == 1)
        let consumer = Task { for try await _ in feed {} }
        consumer.cancel()
        _ = await consumer.result
        #expect(store.activeFeeds == 0)
    }
}
