import DeltaKit
import Foundation
import HTTPTypes
import Hummingbird

/// The route handlers: each parses its parameters (a bad one is a 400 naming it), waits for `visibleAfter`,
/// then reads the store.
struct Handlers: Sendable {
    let server: StateServer

    private var configuration: StateServer.Configuration { server.configuration }

    /// Runs a handler, answering any error it throws as problem+json.
    func respond(_ handler: () async throws -> Response) async -> Response {
        do {
            return try await handler()
        } catch {
            return Problem.from(error).response
        }
    }

    func tables(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        for table in server.order.compactMap({ server.tables[$0] }) {
            try await waitIfAsked(request, table)
        }
        let list = server.order.compactMap { server.tables[$0] }.map { TableEntry(name: $0.name, key: $0.keyField) }
        return json(try JSONBody.encode(list))
    }

    func rows(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let table = try table(context)
        let parameters = request.uri.queryParameters
        let limit = try pageLimit(request)
        let after = parameters.get("after")
        try await waitIfAsked(request, table)
        let page = try await table.page(after, limit)
        var body = Data("{\"rows\":[".utf8)
        for (index, row) in page.rows.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(row)
        }
        body.append(contentsOf: Array("],\"next\":".utf8))
        body.append(try JSONBody.encode(page.next))
        body.append(UInt8(ascii: "}"))
        return json(body)
    }

    func row(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let table = try table(context)
        let raw = try context.parameters.require("key")
        // Most keys have no escapes: skip Foundation's decoding (a copy of the text) for them.
        let key = raw.utf8.contains(UInt8(ascii: "%")) ? (raw.removingPercentEncoding ?? raw) : raw
        try await waitIfAsked(request, table)
        guard let row = try await table.row(key) else {
            throw Problem.notFound("table '\(table.name)' has no row with key '\(key.prefix(100))'")
        }
        let tag = ETag.of(row.json, order: row.order)
        if let match = request.headers[.ifNoneMatch], ETag.matches(match, tag) {
            var headers = HTTPFields()
            headers[.eTag] = tag
            headers[.cacheControl] = "no-cache"
            return Response(status: .notModified, headers: headers)
        }
        var response = json(row.json)
        // Appended, not set: the JSON headers have no tag to replace, and the subscript's setter searches for one.
        response.headers.append(HTTPField(name: .eTag, value: tag))
        return response
    }

    func changes(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let table = try table(context)
        guard let follow = table.changes, let broadcaster = table.broadcaster else {
            throw Problem.notFound("table '\(table.name)' has no change feed")
        }
        let parameters = request.uri.queryParameters
        let start: ChangeFeedStart
        switch parameters.get("from") {
        case nil, "snapshot": start = .snapshot
        case "now": start = .now
        case let other?: throw Problem.badParameter("from", "'\(other.prefix(100))' is not 'snapshot' or 'now'")
        }
        // A reconnecting EventSource sends the id of the last event it received: resume right after it.
        let last = request.headers[lastEventID].flatMap { $0.isEmpty ? nil : ChangeFeedPosition($0) }
        let parameter = last == nil ? "from" : "Last-Event-ID"
        try await waitIfAsked(request, table)
        // The shared feed first: it is open before the client's own feed (if any) and before the response, so a
        // `from=now` client misses no change made after its request, and an own feed can meet it.
        let lease: Broadcaster.Lease
        do {
            lease = try await broadcaster.join()
        } catch {
            throw Problem.from(error, parameter: parameter)
        }
        let origin: Broadcaster.Start
        do {
            if let last {
                // From the ring when it holds the position (checked again when the stream starts); otherwise a
                // feed of the client's own, opened here so that a position the store cannot resume is a 410/400.
                origin = broadcaster.ringHolds(last) ? .after(last) : .own(try await follow(.after(last)))
            } else if start == .now {
                origin = .now
            } else {
                origin = .own(try await follow(.snapshot))
            }
        } catch {
            throw Problem.from(error, parameter: parameter)
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        let configuration = configuration
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                // The lease counts this client until the body (and the response holding it) goes.
                withExtendedLifetime(lease) {}
                let shared = SharedWriter(writer)
                // A comment first, so the client sees the stream open before the first change.
                try await shared.write(ByteBuffer(string: ": \(table.name) changes\nretry: 1000\n\n"))
                let outcome = try await ChangeStream.run(
                    buffer: ChangeStream.Buffer(limit: configuration.clientBufferLimit),
                    heartbeat: configuration.heartbeatInterval,
                    feed: { buffer in
                        try await broadcaster.follow(origin, into: buffer, openOwn: { try await follow($0) })
                    },
                    write: { try await shared.write($0) }
                )
                if outcome == .slowClient {
                    // Throwing closes the connection: the client did not read its buffer.
                    throw SlowClientError()
                }
                try await writer.finish(nil)
            }
        )
    }

    // MARK: Parameters

    private func table(_ context: BasicRequestContext) throws -> ServedTable {
        let name = try context.parameters.require("table")
        guard let table = server.tables[name] else {
            throw Problem.notFound("no table '\(name.prefix(100))'; GET /v1/tables lists the served tables")
        }
        return table
    }

    private func pageLimit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return configuration.defaultPageSize }
        guard let limit = Int(text), (1...configuration.maximumPageSize).contains(limit) else {
            throw Problem.badParameter(
                "limit",
                "'\(text.prefix(100))' is not a whole number from 1 to \(configuration.maximumPageSize)"
            )
        }
        return limit
    }

    /// Waits until the table reflects the receipt in `visibleAfter`, when the request gives one.
    private func waitIfAsked(_ request: Request, _ table: ServedTable) async throws {
        guard let text = request.uri.queryParameters.get("visibleAfter") else { return }
        let receipt = try ReceiptText.parse(text[...])
        guard let wait = table.waitUntilVisible else {
            throw Problem.badParameter(
                "visibleAfter",
                "table '\(table.name)' is not served with a materializer to wait for; read without visibleAfter"
            )
        }
        do {
            try await wait(receipt, configuration.visibilityTimeout)
        } catch {
            throw Problem.from(error, parameter: "visibleAfter")
        }
    }

    private func json(_ body: Data) -> Response {
        Response(status: .ok, headers: Self.jsonHeaders, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The headers of every JSON answer, built (and their values validated) once rather than per request.
    private static let jsonHeaders: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-cache"
        return headers
    }()

    private var lastEventID: HTTPField.Name { HTTPField.Name("Last-Event-ID")! }

    private struct TableEntry: Encodable {
        var name: String
        var key: String
    }
}

/// The client of a change stream stopped reading and its buffer filled.
struct SlowClientError: Error {}

/// The response body writer, shared with the task of ``ChangeStream`` that writes to the client.
///
/// `@unchecked Sendable`: the writer is used by one task at a time — the stream's writer task while
/// ``ChangeStream/run(events:bufferLimit:heartbeat:write:)`` runs (the body closure waits for it and writes
/// nothing meanwhile), the body closure before and after.
private final class SharedWriter: @unchecked Sendable {
    private var writer: any ResponseBodyWriter

    init(_ writer: any ResponseBodyWriter) { self.writer = writer }

    func write(_ buffer: ByteBuffer) async throws {
        try await writer.write(buffer)
    }
}

/// `visibleAfter` values: a receipt as `partition@offset` pairs separated by commas (`0@41,3@7`), the text
/// of `EventReceipt.description` without its parentheses.
enum ReceiptText {
    static func parse(_ text: Substring) throws -> EventReceipt {
        var receipt = EventReceipt()
        let pairs = text.split(separator: ",", omittingEmptySubsequences: false)
        guard !text.isEmpty, pairs.count <= 10_000 else {
            throw Problem.badParameter("visibleAfter", "expected partition@offset pairs separated by commas")
        }
        for pair in pairs {
            let parts = pair.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, let partition = Int32(parts[0]), partition >= 0, let offset = Int64(parts[1]),
                offset >= 0
            else {
                throw Problem.badParameter(
                    "visibleAfter",
                    "'\(pair.prefix(100))' is not partition@offset (two whole numbers, e.g. 0@41)"
                )
            }
            receipt.record(partition: partition, offset: offset)
        }
        return receipt
    }
}

/// Strong entity tags of rows, and `If-None-Match` (RFC 9110 §8.8.3, §13.1.2).
enum ETag {
    /// The tag of a row: `"<event_order>-<hash of its JSON>"`, or `"<hash>"` from a store that gives no order.
    ///
    /// The order names the row's version — a later change of the key comes from an event with a higher one — and
    /// lets a client see which of two tags is newer. The hash is there for ties: an event with the same order can
    /// still replace the record under `LatestStateMerge`'s tie rule, and the tag must change whenever the body
    /// does (a strong tag promises the same bytes), so the order alone would answer 304 for a changed row.
    static func of(_ body: Data, order: Int64?) -> String {
        let hash = body.withUnsafeBytes { bytes in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
            return hash
        }
        // Written into one string's storage: a quote, the order and a dash, 16 hex digits at most, a quote.
        return String(unsafeUninitializedCapacity: 48) { bytes in
            var count = 0
            func put(_ byte: UInt8) {
                bytes[count] = byte
                count += 1
            }
            put(UInt8(ascii: "\""))
            if let order {
                if order < 0 { put(UInt8(ascii: "-")) }
                let start = count
                var rest = order.magnitude
                repeat {
                    put(UInt8(ascii: "0") + UInt8(rest % 10))
                    rest /= 10
                } while rest > 0
                bytes[start..<count].reverse()
                put(UInt8(ascii: "-"))
            }
            let start = count
            var rest = hash
            repeat {
                let digit = UInt8(rest & 0xF)
                put(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
                rest >>= 4
            } while rest > 0
            bytes[start..<count].reverse()
            put(UInt8(ascii: "\""))
            return count
        }
    }

    /// Whether an `If-None-Match` value matches `tag` under the weak comparison RFC 9110 prescribes for it:
    /// `*` matches any current row; otherwise a comma-separated list of entity tags, each `"opaque"` or
    /// `W/"opaque"`, matches when one's opaque part equals the tag's (weak or not). An opaque part may hold a
    /// comma, so the list is scanned tag by tag rather than split. A malformed list matches nothing from the
    /// first malformed element on (the condition is then not met, and the row is sent).
    static func matches(_ header: String, _ tag: String) -> Bool {
        let field = Array(header.utf8)
        let wanted = Array(tag.utf8)
        var index = 0
        func skipSeparators() {
            while index < field.count,
                [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: ",")].contains(field[index])
            {
                index += 1
            }
        }
        skipSeparators()
        while index < field.count {
            if field[index] == UInt8(ascii: "*") { return true }
            if field[index] == UInt8(ascii: "W"), index + 1 < field.count, field[index + 1] == UInt8(ascii: "/") {
                index += 2
            }
            guard index < field.count, field[index] == UInt8(ascii: "\"") else { return false }
            let start = index
            index += 1
            // etagc: %x21 / %x23-7E / obs-text — any byte but a quote, a control, a space or DEL.
            while index < field.count, field[index] != UInt8(ascii: "\""), field[index] > 0x20, field[index] != 0x7F {
                index += 1
            }
            guard index < field.count, field[index] == UInt8(ascii: "\"") else { return false }
            index += 1
            if field[start..<index].elementsEqual(wanted) { return true }
            // Between two tags: optional whitespace, then a comma (or the end).
            while index < field.count, field[index] == UInt8(ascii: " ") || field[index] == UInt8(ascii: "\t") {
                index += 1
            }
            guard index == field.count || field[index] == UInt8(ascii: ",") else { return false }
            skipSeparators()
        }
        return false
    }
}
