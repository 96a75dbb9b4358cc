import DeltaKit
import DeltaKitHTTP
import DeltaKitRisingWave
import DeltaKitTesting
import Foundation
import HTTPTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The HTTP API's read checks (the in-memory and SQLite suite is `DeltaKitHTTPTests`) over the real
/// `RisingWaveStateStore` on PostgreSQL, `visibleAfter` waiting through the store's `waitUntilVisible`.
@Suite("HTTP API over the RisingWave store on PostgreSQL", .requiresPostgres, .timeLimit(.minutes(5)))
struct RisingWaveOnPostgresHTTPTests {
    static func json(_ buffer: ByteBuffer) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: [.fragmentsAllowed])
    }

    @Test(
        "rows pages in key order, one row has an ETag from its event_order and 304, absent is 404, visibleAfter waits for the receipt"
    )
    func reads() async throws {
        var emulation = try await PostgresEmulation.make(try TestEnvironment.requirePostgres())
        let store = emulation.store
        let receipt = try await emulation.load(
            (1...25).reversed().map { .insert(DemoUser(id: $0, name: "user \($0)", age: 20 + $0), order: Int64($0)) }
        )
        let table = ServedTable(
            "users",
            store: store,
            waitUntilVisible: { receipt, timeout in try await store.waitUntilVisible(receipt, timeout: timeout) }
        )
        let app = Application(router: try StateServer(tables: [table]).router())
        let visible = receipt.offsets.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: ",")
        let tag = try await app.test(.router) { client -> String in
            var seen: [Int] = []
            var cursor: String? = nil
            repeat {
                let after = cursor.map { "&after=\($0)" } ?? ""
                let response = try await client.execute(
                    uri: "/v1/tables/users/rows?limit=10&visibleAfter=\(visible)\(after)",
                    method: .get
                )
                #expect(response.status == .ok)
                let page = try #require(Self.json(response.body) as? [String: Any])
                seen += (page["rows"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
                cursor = page["next"] as? String
            } while cursor != nil && seen.count < 100
            #expect(seen == Array(1...25))

            let row = try await client.execute(uri: "/v1/tables/users/rows/7", method: .get)
            #expect(row.status == .ok)
            #expect((Self.json(row.body) as? [String: Any])?["name"] as? String == "user 7")
            let tag = try #require(row.headers[.eTag])
            #expect(tag.hasPrefix("\"7-"), "the tag starts with the row's event_order")
            let cached = try await client.execute(
                uri: "/v1/tables/users/rows/7",
                method: .get,
                headers: [.ifNoneMatch: tag]
            )
            #expect(cached.status == .notModified)
            #expect(cached.headers[.eTag] == tag)
            #expect(cached.body.readableBytes == 0)
            let absent = try await client.execute(uri: "/v1/tables/users/rows/99", method: .get)
            #expect(absent.status == .notFound)
            #expect(absent.headers[.contentType] == "application/problem+json")
            return tag
        }

        let update = try await emulation.load([.update(DemoUser(id: 7, name: "user seven", age: 70), order: 100)])
        let updated = update.offsets.map { "\($0.key)@\($0.value)" }.joined(separator: ",")
        try await app.test(.router) { client in
            let changed = try await client.execute(
                uri: "/v1/tables/users/rows/7?visibleAfter=\(updated)",
                method: .get,
                headers: [.ifNoneMatch: tag]
            )
            #expect(changed.status == .ok, "a stale tag gets the row")
            #expect((Self.json(changed.body) as? [String: Any])?["name"] as? String == "user seven")
            let newTag = try #require(changed.headers[.eTag])
            #expect(newTag != tag && newTag.hasPrefix("\"100-"))
            let current = try await client.execute(
                uri: "/v1/tables/users/rows/7",
                method: .get,
                headers: [.ifNoneMatch: newTag]
            )
            #expect(current.status == .notModified)
        }
    }

    @Test(
        "the change stream over the emulated subscription: snapshot events, then changes with ids; Last-Event-ID resumes after the last one received"
    )
    func changeStream() async throws {
        // The store's feed statements rewritten for the subscription emulation (`EmulatedRisingWaveStore`).
        let store = EmulatedRisingWaveStore(
            try await PostgresEmulation.subscribed(try TestEnvironment.requirePostgres())
        )
        try await store.apply([
            .insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1),
            .insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2),
        ])
        let table = ServedTable("users", store: store)
        let app = Application(
            router: try StateServer(tables: [table]).router(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0))
        )
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let last = try await EventStreamClient.with(port: port, path: "/v1/tables/users/changes") { stream in
                #expect(stream.status == 200)
                let snapshot = try await stream.next(2)
                #expect(snapshot.map(\.kind) == ["snapshot", "snapshot"])
                #expect(Set(snapshot.compactMap(\.key)) == [1, 2])
                try await store.apply([.update(DemoUser(id: 1, name: "Alice", age: 26), order: 3)])
                let change = try #require(try await stream.next(1).first)
                #expect(change.kind == "update")
                #expect(change.key == 1)
                #expect((change.change?["record"] as? [String: Any])?["age"] as? Int == 26)
                return try #require(change.id, "a change after the snapshot carries its feed position")
            }

            // Changes while the client is away, then a reconnect with the last id it received.
            try await store.apply([
                .insert(DemoUser(id: 3, name: "Carol", age: 35), order: 4),
                .delete(key: 2, order: 5),
            ])
            let rest = try await EventStreamClient.with(
                port: port,
                path: "/v1/tables/users/changes",
                headers: ["Last-Event-ID": last]
            ) { resumed in
                try await resumed.next(2)
            }
            // No order across keys: compare by key. Key 1's update is not delivered again.
            let kinds = Dictionary(
                uniqueKeysWithValues: rest.compactMap { event in event.key.map { ($0, event.kind) } }
            )
            #expect(kinds == [3: "insert", 2: "delete"])
            #expect(rest.allSatisfy { $0.id != nil })
        }
    }
}
