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
            apply: { store, events in try await store.apply(contentsOf: events) }
        ).run()
        #expect(passed.count == 5)
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
