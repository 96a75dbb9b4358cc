import DeltaKit
import DeltaKitTesting
import Foundation
import HTTPTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import DeltaKitHTTP

/// The table's shared feed (``Broadcaster``): clients join it without a gap or a repeat, and a stalled client is
/// cut off while the others go on.
@Suite("HTTP change stream: one shared feed per table")
struct FanOutTests {
    /// Waits (yielding, no sleep) until `condition` holds; fails after a generous deadline for a loaded machine.
    func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting until \(what)")
                return
            }
            await Task.yield()
        }
    }

    @Test("a from=snapshot client moves from its own feed to the shared one: every change exactly once")
    func snapshotClientSwitches() async throws {
        let store = try InMemoryStateStore<DemoUser>()
        try await store.apply(contentsOf: (1...100).map { upsert($0, "user \($0)") })
        let table = ServedTable("users", store: store)
        let broadcaster = try #require(table.broadcaster)
        // A buffer that holds every change: this test's client parses slowly, and must not be cut off.
        let app = Application(
            router: try StateServer(tables: [table], configuration: .init(clientBufferLimit: 10_000)).router(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0))
        )
        let changes = 2_000
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await EventStreamClient.with(port: port, path: "/v1/tables/users/changes?from=snapshot") { stream in
                #expect(stream.status == 200)
                // Changes applied while the client reads its snapshot and its own feed: some land in the snapshot,
                // the rest arrive as changes, first from the client's own feed, then from the shared one.
                let applying = Task {
                    for id in 101...(100 + changes) { try await store.apply(upsert(id, "user \(id)")) }
                }
                var snapshot: [Int] = []
                var live: [Int] = []
                while snapshot.count + live.count < 100 + changes, let event = try await stream.next() {
                    let key = try #require(event.key)
                    if event.kind == "snapshot" { snapshot.append(key) } else { live.append(key) }
                }
                try await applying.value
                let all = snapshot + live
                #expect(all.count == 100 + changes)
                #expect(Set(all).count == all.count)
                #expect(Set(all) == Set(1...(100 + changes)))
                // After the snapshot, the changes in the order they were applied, none twice, none left out.
                let inOrder = live == Array((101 + changes - live.count)...(100 + changes))
                #expect(inOrder)
                try await eventually("the client receives the shared feed") { broadcaster.clients.shared == 1 }
                // And it keeps receiving, now from the shared feed.
                try await store.apply(upsert(1, "Alice"))
                let next = try await stream.next()
                #expect(next?.key == 1)
                #expect(next?.kind == "update")
            }
        }
    }

    @Test("Last-Event-ID of a position the shared feed still holds: replayed from it, then live")
    func resumeFromTheRing() async throws {
        let store = try InMemoryStateStore<DemoUser>()
        let table = ServedTable("users", store: store)
        let broadcaster = try #require(table.broadcaster)
        let app = Application(
            router: try StateServer(tables: [table]).router(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0))
        )
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // A first client keeps the shared feed running.
            try await EventStreamClient.with(port: port, path: "/v1/tables/users/changes?from=now") { first in
                try await store.apply(contentsOf: (1...5).map { upsert($0, "user \($0)") })
                let seen = try await first.next(5)
                #expect(seen.map(\.key) == [1, 2, 3, 4, 5])
                let third = try #require(seen[2].id)
                #expect(broadcaster.ringHolds(ChangeFeedPosition(third)))
                try await EventStreamClient.with(
                    port: port,
                    path: "/v1/tables/users/changes",
                    headers: ["Last-Event-ID": third]
                ) { resumed in
                    let replayed = try await resumed.next(2)
                    #expect(replayed.map(\.key) == [4, 5])
                    #expect(replayed.map(\.id) == seen[3...].map(\.id))
                    #expect(broadcaster.clients.shared == 2)
                    #expect(broadcaster.clients.own == 0)
                    try await store.apply(contentsOf: [upsert(6, "user 6"), delete(1)])
                    let live = try await resumed.next(2)
                    #expect(live.map(\.key) == [6, 1])
                    #expect(live.map(\.kind) == ["insert", "delete"])
                }
                let firstLive = try await first.next(2)
                #expect(firstLive.map(\.key) == [6, 1])
            }
        }
        // The last client gone, the shared feed stopped.
        try await eventually("the shared feed stops") {
            broadcaster.clients.shared == 0 && broadcaster.clients.own == 0
        }
    }

    @Test("a stalled client is cut off when its buffer fills; the others go on receiving every change")
    func stalledClientIsCutOff() async throws {
        let store = try InMemoryStateStore<DemoUser>()
        let broadcaster = Broadcaster(open: {
            try await store.changes(from: .now).map { @Sendable element in try StreamEvent(element) }
        })
        let readerLease = try await broadcaster.join()
        let stalledLease = try await broadcaster.join()
        // The events written to the reader (a write may carry several: the writer writes what waits at once).
        let received = Mutex<[String]>([])
        let (progress, announce) = AsyncStream.makeStream(of: Int.self)
        let reader = Task {
            try await ChangeStream.run(
                buffer: ChangeStream.Buffer(limit: 10_000),
                heartbeat: .seconds(3_600),
                feed: { try await broadcaster.follow(.now, into: $0, openOwn: { _ in throw CancellationError() }) },
                write: { buffer in
                    let events = String(buffer: buffer).components(separatedBy: "\n\n").filter { !$0.isEmpty }
                    announce.yield(
                        received.withLock {
                            $0 += events; return $0.count
                        }
                    )
                }
            )
        }
        let stalled = Task {
            try await ChangeStream.run(
                buffer: ChangeStream.Buffer(limit: 8),
                heartbeat: .seconds(3_600),
                feed: { try await broadcaster.follow(.now, into: $0, openOwn: { _ in throw CancellationError() }) },
                write: { _ in
                    // A client that never reads: the write waits until the stream gives up on it.
                    try await Task.sleep(for: .seconds(3_600))
                }
            )
        }
        try await eventually("both clients are subscribed") { broadcaster.clients.shared == 2 }
        try await store.apply(contentsOf: (1...100).map { upsert($0, "user \($0)") })
        #expect(try await stalled.value == .slowClient)
        #expect(broadcaster.clients.shared == 1)
        try await store.apply(contentsOf: (101...200).map { upsert($0, "user \($0)") })
        for await count in progress where count >= 200 { break }
        let frames = received.withLock { $0 }
        let keys = frames.compactMap { frame -> Int? in
            guard let data = frame.split(separator: "\n").first(where: { $0.hasPrefix("data: ") }) else { return nil }
            let object = try? JSONSerialization.jsonObject(with: Data(data.dropFirst(6).utf8)) as? [String: Any]
            return object?["key"] as? Int
        }
        #expect(keys == Array(1...200))
        reader.cancel()
        _ = try? await reader.value
        withExtendedLifetime((readerLease, stalledLease)) {}
    }
}
