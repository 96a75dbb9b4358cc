import DeltaKit
import DeltaKitHTTP
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// The stores the HTTP conformance suite runs over.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory
    case sqlite

    var description: String { rawValue }
}

/// A store under test: the table the server serves, and how to change its state.
struct Fixture: Sendable {
    let table: ServedTable
    let apply: @Sendable ([ChangeEvent<DemoUser>]) async throws -> Void
    /// Keeps the SQLite file's directory until the fixture goes.
    let directory: HTTPTemporaryDirectory?

    static func make(
        _ kind: StoreKind,
        name: String = "users",
        waitUntilVisible: (@Sendable (EventReceipt, Duration) async throws -> Void)? = nil
    ) throws -> Fixture {
        switch kind {
        case .memory:
            let store = try InMemoryStateStore<DemoUser>()
            return Fixture(
                table: ServedTable(name, store: store, waitUntilVisible: waitUntilVisible),
                apply: { try await store.apply(contentsOf: $0) },
                directory: nil
            )
        case .sqlite:
            let directory = try HTTPTemporaryDirectory()
            let store = try SQLiteStateStore<DemoUser>(
                configuration: .init(
                    path: directory.path("state.sqlite"),
                    source: "user-events",
                    feedPollInterval: .milliseconds(10)
                )
            )
            return Fixture(
                table: ServedTable(name, store: store, waitUntilVisible: waitUntilVisible),
                apply: { try await store.apply(contentsOf: $0) },
                directory: directory
            )
        }
    }
}

/// A fresh directory per fixture, removed at the end.
final class HTTPTemporaryDirectory: Sendable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Orders that count up across a test, so every event wins over the one before it.
let orders = Atomic<Int64>(1)

func upsert(_ id: Int, _ name: String, age: Int = 30) -> ChangeEvent<DemoUser> {
    ChangeEvent(
        operation: .insert,
        record: DemoUser(id: id, name: name, age: age),
        order: orders.add(1, ordering: .relaxed).newValue
    )
}

func delete(_ id: Int) -> ChangeEvent<DemoUser> {
    ChangeEvent.delete(key: id, order: orders.add(1, ordering: .relaxed).newValue)
}

func json(_ buffer: ByteBuffer?) -> Any? {
    guard let buffer else { return nil }
    return try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: [.fragmentsAllowed])
}

/// Checks a problem+json answer and the parameter it names.
func expectProblem(
    _ response: TestResponse,
    _ status: HTTPResponse.Status,
    parameter: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(response.status == status, sourceLocation: sourceLocation)
    #expect(response.headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
    let body = json(response.body) as? [String: Any]
    #expect(body?["status"] as? Int == Int(status.code), sourceLocation: sourceLocation)
    #expect(body?["detail"] is String, sourceLocation: sourceLocation)
    if let parameter {
        #expect(body?["parameter"] as? String == parameter, sourceLocation: sourceLocation)
    }
}

@Suite("HTTP API: the same conformance suite over every store")
struct HTTPConformanceTests {
    func app(_ fixture: Fixture, _ configuration: StateServer.Configuration = .init()) throws
        -> some ApplicationProtocol
    {
        Application(router: try StateServer(tables: [fixture.table], configuration: configuration).router())
    }

    @Test("GET /v1/tables lists the served tables and their key fields", arguments: StoreKind.allCases)
    func tables(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        try await app(fixture).test(.router) { client in
            let response = try await client.execute(uri: "/v1/tables", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            let list = json(response.body) as? [[String: String]]
            #expect(list == [["name": "users", "key": "id"]])
        }
    }

    @Test(
        "rows pages through the snapshot in key order: every row once, next is null at the end",
        arguments: StoreKind.allCases
    )
    func paging(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        // Keys inserted out of order; 250 rows, one deleted.
        try await fixture.apply((1...250).reversed().map { upsert($0, "user \($0)") } + [delete(7)])
        try await app(fixture).test(.router) { client in
            var seen: [Int] = []
            var cursor: String? = nil
            var pages = 0
            repeat {
                let query = cursor.map { "&after=\($0)" } ?? ""
                let response = try await client.execute(uri: "/v1/tables/users/rows?limit=100\(query)", method: .get)
                #expect(response.status == .ok)
                let page = try #require(json(response.body) as? [String: Any])
                let rows = try #require(page["rows"] as? [[String: Any]])
                seen += rows.compactMap { $0["id"] as? Int }
                cursor = (page["next"] as? String)
                pages += 1
            } while cursor != nil && pages < 10
            #expect(seen == Array(1...250).filter { $0 != 7 })
            #expect(pages == 3)
        }
    }

    @Test(
        "bounded limits: a limit out of range or not a number answers 400 naming limit",
        arguments: StoreKind.allCases
    )
    func limits(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        try await app(fixture).test(.router) { client in
            for bad in ["0", "1001", "-1", "ten", ""] {
                let response = try await client.execute(uri: "/v1/tables/users/rows?limit=\(bad)", method: .get)
                expectProblem(response, .badRequest, parameter: "limit")
            }
            let bigPage = try await client.execute(uri: "/v1/tables/users/rows?limit=1000", method: .get)
            #expect(bigPage.status == .ok)
            let badCursor = try await client.execute(uri: "/v1/tables/users/rows?after=abc", method: .get)
            expectProblem(badCursor, .badRequest, parameter: "after")
        }
    }

    @Test(
        "one row: 200 with an ETag from its event_order, If-None-Match → 304 without a body, a changed row → a new ETag, absent → 404",
        arguments: StoreKind.allCases
    )
    func row(kind: StoreKind) async throws {
        let fixture = try Fixture.make(kind)
        let inserted = upsert(1, "Alice", age: 25)
        try await fixture.apply([inserted])
        try await app(fixture).test(.router) { client in
            let first = try await client.execute(uri: "/v1/tables/users/rows/1", method: .get)
            #expect(first.status == .ok)
            let body = json(first.body) as? [String: Any]
            #expect(body?.count == 3)
            #expect(body?["id"] as? Int == 1 && body?["name"] as? String == "Alice" && body?["age"] as? Int == 25)
            let tag = try #require(first.headers[.eTag])
            #expect(tag.hasPrefix("\"\(inserted.order)-") && tag.hasSuffix("\""), "the tag starts with the order")

            // The current tag, alone, weak, in a list or as `*`: 304 with the tag and no body.
            for condition in [tag, "W/\(tag)", "\"other\", \(tag)", "\"a,b\" ,, W/\(tag)", "*"] {
                let cached = try await client.execute(
                    uri: "/v1/tables/users/rows/1",
                    method: .get,
                    headers: [.ifNoneMatch: condition]
                )
                #expect(cached.status == .notModified, "If-None-Match: \(condition)")
                #expect(cached.headers[.eTag] == tag)
                #expect(cached.body.readableBytes == 0)
            }
            // Other tags, or the tag's opaque part split by a comma inside another tag: the row.
            for condition in ["\"other\"", "W/\"other\", \"\(inserted.order)\"", "\"x,\(tag.dropFirst())", "garbage"] {
                let sent = try await client.execute(
                    uri: "/v1/tables/users/rows/1",
                    method: .get,
                    headers: [.ifNoneMatch: condition]
                )
                #expect(sent.status == .ok, "If-None-Match: \(condition)")
                #expect(sent.headers[.eTag] == tag)
            }

            let updated = upsert(1, "Alice", age: 26)
            try await fixture.apply([updated])
            let changed = try await client.execute(
                uri: "/v1/tables/users/rows/1",
                method: .get,
                headers: [.ifNoneMatch: tag]
            )
            #expect(changed.status == .ok, "a stale tag gets the row")
            let newTag = try #require(changed.headers[.eTag])
            #expect(newTag != tag && newTag.hasPrefix("\"\(updated.order)-"))
            #expect((json(changed.body) as? [String: Any])?["age"] as? Int == 26)
            let current = try await client.execute(
                uri: "/v1/tables/users/rows/1",
                method: .get,
                headers: [.ifNoneMatch: newTag]
            )
            #expect(current.status == .notModified)

            // A tie: the same order, a later `ts` — the record changes, so the tag does, order and all.
            let tie = ChangeEvent(
                operation: .update,
                record: DemoUser(id: 1, name: "Alice", age: 27),
                order: updated.order,
                timestamp: updated.timestamp.addingTimeInterval(1)
            )
            try await fixture.apply([tie])
            let tied = try await client.execute(
                uri: "/v1/tables/users/rows/1",
                method: .get,
                headers: [.ifNoneMatch: newTag]
            )
            #expect(tied.status == .ok)
            #expect((json(tied.body) as? [String: Any])?["age"] as? Int == 27)
            #expect(tied.headers[.eTag] != newTag && tied.headers[.eTag]?.hasPrefix("\"\(updated.order)-") == true)

            try await fixture.apply([delete(1)])
            expectProblem(try await client.execute(uri: "/v1/tables/users/rows/1", method: .get), .notFound)
            expectProblem(try await client.execute(uri: "/v1/tables/users/rows/2", method: .get), .notFound)
            expectProblem(
                try await client.execute(uri: "/v1/tables/users/rows/abc", method: .get),
                .badRequest,
                parameter: "key"
            )
            expectProblem(try await client.execute(uri: "/v1/tables/nobody/rows/1", method: .get), .notFound)
            expectProblem(try await client.execute(uri: "/v1/tables/nobody/rows", method: .get), .notFound)
        }
    }

    @Test(
        "visibleAfter waits for the receipt before reading; a timeout is 503; a bad receipt is 400",
        arguments: StoreKind.allCases
    )
    func visibleAfter(kind: StoreKind) async throws {
        let asked = Mutex<[EventReceipt]>([])
        let fixture = try Fixture.make(kind) { receipt, _ in
            asked.withLock { $0.append(receipt) }
            if receipt.offsets[9] != nil {
                throw DeltaKitError(code: .timedOut, message: "partition 9 is behind")
            }
        }
        try await fixture.apply([upsert(1, "Alice")])
        try await app(fixture).test(.router) { client in
            let read = try await client.execute(uri: "/v1/tables/users/rows/1?visibleAfter=0@41,3@7", method: .get)
            #expect(read.status == .ok)
            #expect(asked.withLock { $0 } == [EventReceipt(offsets: [0: 41, 3: 7])])
            let page = try await client.execute(uri: "/v1/tables/users/rows?visibleAfter=1@2", method: .get)
            #expect(page.status == .ok)
            let late = try await client.execute(uri: "/v1/tables/users/rows/1?visibleAfter=9@1", method: .get)
            expectProblem(late, .serviceUnavailable)
            for bad in ["x", "1@", "@1", "1@2,", "-1@3", "1:2"] {
                let response = try await client.execute(
                    uri: "/v1/tables/users/rows/1?visibleAfter=\(bad)",
                    method: .get
                )
                expectProblem(response, .badRequest, parameter: "visibleAfter")
            }
        }
        let unwaitable = try Fixture.make(kind)
        try await app(unwaitable).test(.router) { client in
            let response = try await client.execute(uri: "/v1/tables/users/rows?visibleAfter=0@1", method: .get)
            expectProblem(response, .badRequest, parameter: "visibleAfter")
        }
    }

    @Test("the OpenAPI 3.1 document and the self-contained dashboard page are served")
    func documents() async throws {
        let fixture = try Fixture.make(.memory)
        try await app(fixture).test(.router) { client in
            let document = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(document.status == .ok)
            let object = json(document.body) as? [String: Any]
            #expect(object?["openapi"] as? String == "3.1.0")
            let paths = (object?["paths"] as? [String: Any]).map { Set($0.keys) }
            #expect(
                paths == [
                    "/", "/openapi.json", "/v1/tables", "/v1/tables/{table}/rows", "/v1/tables/{table}/rows/{key}",
                    "/v1/tables/{table}/changes",
                ]
            )

            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let html = String(buffer: page.body)
            #expect(html.contains("EventSource"))
            // Works offline: nothing is loaded from another origin.
            #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("src="))
        }
    }

    @Test("an unknown route is a problem+json 404")
    func unknownRoute() async throws {
        let fixture = try Fixture.make(.memory)
        try await app(fixture).test(.router) { client in
            expectProblem(try await client.execute(uri: "/v2/nothing", method: .get), .notFound)
        }
    }
}
