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

@Suite("HTTP change stream (Server-Sent Events) over every store")
struct ChangeStreamTests {
    func app(_ fixture: Fixture, heartbeat: Duration = .seconds(15)) throws -> some ApplicationProtocol {
        let configuration = StateServer.Configuration(heartbeatInterval: heartbeat)
        return Application(
            router: try StateServer(tables: [fixture.table], configuration: configuration).router(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0))
        )
    }

    @Test(
        "from=snapshot: the rows as snapshot events, then insert, update and delete with ids",
        arguments: StoreKind.allCases
    )
    func snapshotThenChanges(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        try await fixture.apply([upsert(2, "Bob"), upsert(1, "Alice")])
        try await app(fixture).test(.live) { client in
            let port = try #require(client.port)
            try await EventStreamClient.with(port: port, path: "/v1/tables/users/changes") { stream in
                #expect(stream.status == 200)
                #expect(stream.headers["content-type"] == "text/event-stream")
                let snapshot = try await stream.next(2)
                #expect(snapshot.map(\.kind) == ["snapshot", "snapshot"])
                #expect(Set(snapshot.compactMap(\.key)) == [1, 2])

                try await fixture.apply([upsert(3, "Carol"), upsert(1, "Alice B."), delete(2)])
                let changes = try await stream.next(3)
                #expect(changes.map(\.kind) == ["insert", "update", "delete"])
                #expect(changes.map(\.key) == [3, 1, 2])
                #expect(changes.allSatisfy { $0.id != nil })
                #expect((changes[1].change?["record"] as? [String: Any])?["name"] as? String == "Alice B.")
                #expect(changes[2].change?["record"] is NSNull)
            }
        }
    }

    @Test("Last-Event-ID resumes right after that event: no gap, no repeat", arguments: StoreKind.allCases)
    func resume(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        try await app(fixture).test(.live) { client in
            let port = try #require(client.port)
            let seen = try await EventStreamClient.with(port: port, path: "/v1/tables/users/changes?from=now") {
                first in
                try await fixture.apply((1...5).map { upsert($0, "user \($0)") })
                return try await first.next(3)
            }
            #expect(seen.map(\.key) == [1, 2, 3])
            let last = try #require(seen.last?.id)

            // Changes made while the client is away, then a reconnect with the last id it received.
            try await fixture.apply([upsert(6, "user 6"), delete(1)])
            let rest = try await EventStreamClient.with(
                port: port,
                path: "/v1/tables/users/changes",
                headers: ["Last-Event-ID": last]
            ) { resumed in
                try await resumed.next(4)
            }
            #expect(rest.map(\.key) == [4, 5, 6, 1])
            #expect(rest.map(\.kind) == ["insert", "insert", "insert", "delete"])
        }
    }

    @Test(
        "from=now: only changes after the stream started; an idle stream gets heartbeat comments",
        arguments: StoreKind.allCases
    )
    func nowAndHeartbeat(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        try await fixture.apply([upsert(1, "Alice")])
        try await app(fixture, heartbeat: .milliseconds(50)).test(.live) { client in
            let port = try #require(client.port)
            try await EventStreamClient.with(port: port, path: "/v1/tables/users/changes?from=now") { stream in
                #expect(try await stream.nextHeartbeat())
                try await fixture.apply([upsert(1, "Alice B.")])
                let change = try await stream.next()
                #expect(change?.kind == "update")
                #expect(change?.key == 1)
            }
        }
    }

    @Test(
        "a bad from, a foreign Last-Event-ID and a table without a feed are problems naming the cause",
        arguments: StoreKind.allCases
    )
    func streamErrors(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        try await app(fixture).test(.router) { client in
            expectProblem(
                try await client.execute(uri: "/v1/tables/users/changes?from=yesterday", method: .get),
                .badRequest,
                parameter: "from"
            )
            let foreign = try await client.execute(
                uri: "/v1/tables/users/changes",
                method: .get,
                headers: [.init("Last-Event-ID")!: "another-store:5"]
            )
            #expect(foreign.status == .badRequest || foreign.status == .gone)
            #expect((json(foreign.body) as? [String: Any])?["parameter"] as? String == "Last-Event-ID")
            expectProblem(
                try await client.execute(uri: "/v1/tables/nobody/changes", method: .get),
                .notFound
            )
        }
        let plain = try StateServer(tables: [ServedTable("plain", store: PlainStore())])
        try await Application(router: plain.router()).test(.router) { client in
            expectProblem(try await client.execute(uri: "/v1/tables/plain/changes", method: .get), .notFound)
            let rows = try await client.execute(uri: "/v1/tables/plain/rows", method: .get)
            #expect(rows.status == .ok)
        }
    }
}

/// A store without a change feed.
struct PlainStore: StateStore {
    func snapshot() async throws -> [DemoUser] { [DemoUser(id: 1, name: "Alice", age: 25)] }
    func value(forKey key: Int) async throws -> DemoUser? { key == 1 ? DemoUser(id: 1, name: "Alice", age: 25) : nil }
    func history(limit: Int) async throws -> [ChangeEvent<DemoUser>] { [] }
    func count() async throws -> Int { 1 }
}

@Suite("HTTP change stream: a client that stops reading")
struct SlowClientTests {
    @Test("is cut off when its bounded buffer fills, while the feed is read on at the store's pace")
    func slowClientIsCutOff() async throws {
        let delivered = Mutex(0)
        let events = AsyncThrowingStream<StreamEvent, any Error> { continuation in
            for index in 0..<10_000 {
                continuation.yield(StreamEvent(data: Data("{\"n\":\(index)}".utf8), id: "\(index)"))
            }
        }
        let counted = events.map { @Sendable event in
            delivered.withLock { $0 += 1 }
            return event
        }
        let outcome = try await ChangeStream.run(
            events: counted,
            bufferLimit: 16,
            heartbeat: .seconds(60),
            write: { _ in
                // A client that never reads: the write waits until the stream gives up on it.
                try await Task.sleep(for: .seconds(3_600))
            }
        )
        #expect(outcome == .slowClient)
        // The reader took events as fast as the feed had them, without waiting for the stalled writer.
        #expect(delivered.withLock { $0 } > 16)
    }

    @Test("a feed that ends ends the stream after every buffered event is written")
    func feedEnds() async throws {
        let written = Mutex<[String]>([])
        let events = AsyncThrowingStream<StreamEvent, any Error> { continuation in
            for index in 0..<100 {
                continuation.yield(StreamEvent(data: Data("{\"n\":\(index)}".utf8), id: "p\(index)"))
            }
            continuation.finish()
        }
        let outcome = try await ChangeStream.run(
            events: events,
            bufferLimit: 1_000,
            heartbeat: .seconds(60),
            write: { buffer in written.withLock { $0.append(String(buffer: buffer)) } }
        )
        #expect(outcome == .feedEnded)
        // The writer writes what waits at once: split the bytes it wrote into events.
        let all = written.withLock { $0.joined() }.components(separatedBy: "\n\n").dropLast()
        #expect(all.count == 100)
        #expect(all.first == "id: p0\ndata: {\"n\":0}")
        #expect(all.last == "id: p99\ndata: {\"n\":99}")
    }
}
