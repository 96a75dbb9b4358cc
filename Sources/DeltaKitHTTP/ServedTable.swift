public import DeltaKit
import Foundation
import Hummingbird

/// One table the HTTP API serves: a `StateStore` under a name, with its change feed when the store has one.
///
/// The store is erased to what the routes need — pages of rows, one row, a stream of changes, a wait for a
/// receipt — so one server serves stores of different record types, and the routes never see the store's type.
public struct ServedTable: Sendable {
    /// The table's name in the URL (`/v1/tables/{name}/…`).
    public let name: String
    /// The name of the field that holds the key (the record type's `keyField`).
    public let keyField: String
    /// The pattern of the key's URL text, for the OpenAPI document: integers and UUIDs have one; `nil` for a key
    /// type whose text can be anything (a string).
    let keyPattern: String?

    let page: @Sendable (_ after: String?, _ limit: Int) async throws -> Page
    let row: @Sendable (_ key: String) async throws -> Row?
    let changes:
        (@Sendable (_ start: ChangeFeedStart) async throws -> any AsyncSequence<StreamEvent, any Error> & Sendable)?
    let waitUntilVisible: (@Sendable (_ receipt: EventReceipt, _ timeout: Duration) async throws -> Void)?
    /// The table's one live feed, fanned out to its change-stream clients; `nil` without a change feed.
    let broadcaster: Broadcaster?

    /// Serves a store that has no change feed: `…/changes` answers 404.
    ///
    /// - Parameters:
    ///   - name: The table's name in the URL: letters, digits, `_` and `-`.
    ///   - store: The store to read.
    ///   - waitUntilVisible: What `?visibleAfter=RECEIPT` waits for (a materializer's or a RisingWave store's
    ///     `waitUntilVisible`); without it, a request with `visibleAfter` answers 400.
    public init<Store: StateStore>(
        _ name: String,
        store: Store,
        waitUntilVisible: (@Sendable (EventReceipt, Duration) async throws -> Void)? = nil
    ) {
        self.init(name, store: store, changes: nil, waitUntilVisible: waitUntilVisible)
    }

    /// Serves a store and its change feed.
    ///
    /// - Parameters:
    ///   - name: The table's name in the URL: letters, digits, `_` and `-`.
    ///   - store: The store to read and follow.
    ///   - waitUntilVisible: What `?visibleAfter=RECEIPT` waits for (a materializer's or a RisingWave store's
    ///     `waitUntilVisible`); without it, a request with `visibleAfter` answers 400.
    public init<Store: ChangeFeedStore>(
        _ name: String,
        store: Store,
        waitUntilVisible: (@Sendable (EventReceipt, Duration) async throws -> Void)? = nil
    ) {
        self.init(
            name,
            store: store,
            changes: { start in
                try await store.changes(from: start).map { @Sendable element in
                    try StreamEvent(element)
                }
            },
            waitUntilVisible: waitUntilVisible
        )
    }

    private init<Store: StateStore>(
        _ name: String,
        store: Store,
        changes: (@Sendable (ChangeFeedStart) async throws -> any AsyncSequence<StreamEvent, any Error> & Sendable)?,
        waitUntilVisible: (@Sendable (EventReceipt, Duration) async throws -> Void)?
    ) {
        self.name = name
        self.keyField = Store.Record.keyField
        self.keyPattern = KeyText.pattern(of: Store.Record.Key.self)
        self.page = { after, limit in
            let key = try after.map { try KeyText.key(Store.Record.Key.self, from: $0, parameter: "after") }
            let records = try await store.snapshot(after: key, limit: limit)
            let rows = try records.map { try JSONBody.encode($0) }
            // A full page may have more after it; a short one is the end.
            let next = records.count == limit ? try records.last.map { try KeyText.text(of: $0.key) } : nil
            return Page(rows: rows, next: next)
        }
        let parseKey = KeyText.parser(for: Store.Record.Key.self)
        self.row = { text in
            let key = try parseKey(text, "key")
            // Record and order in one read, so the tag names the version whose body is sent.
            guard let found = try await store.valueAndOrder(forKey: key) else { return nil }
            return Row(json: try JSONBody.encode(found.record), order: found.order)
        }
        self.changes = changes
        self.broadcaster = changes.map { open in Broadcaster(open: { try await open(.now) }) }
        self.waitUntilVisible = waitUntilVisible
    }

    /// One page of rows: each row's JSON, and the cursor of the next page (`nil` at the end).
    struct Page: Sendable {
        var rows: [Data]
        var next: String?
    }

    /// One row's JSON, and the order of the event it comes from when the store knows it.
    struct Row: Sendable {
        var json: Data
        var order: Int64?
    }
}

/// One server-sent event of the change stream, already encoded in the text/event-stream format: `id:` when it
/// has a position, then `data:`.
///
/// Encoded once per element: the table's ``Broadcaster`` hands the same event — the same `ByteBuffer`, whose
/// storage is shared, not copied — to every client.
struct StreamEvent: Sendable {
    /// The whole event, ready to write.
    var frame: ByteBuffer
    /// The `id:` line: the feed position, when the element has one.
    var id: String?

    init(data: Data, id: String?) {
        self.init(id: id) { $0.writeBytes(data) }
    }

    /// The `data:` line: `{"kind":…,"key":…,"record":…}`.
    init<Record: ChangeRecord>(_ element: ChangeFeedElement<Record>) throws {
        let kind = element.isSnapshot ? "snapshot" : element.change.kind.rawValue
        let record = element.change.kind == .delete ? nil : element.change.record
        let data = try JSONBody.encode(Wire(kind: kind, key: element.change.key, record: record))
        self.init(id: element.position?.description) { $0.writeBytes(data) }
    }

    private init(id: String?, data: (inout ByteBuffer) -> Void) {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(256)
        if let id {
            buffer.writeString("id: ")
            buffer.writeString(id)
            buffer.writeString("\n")
        }
        buffer.writeString("data: ")
        data(&buffer)
        buffer.writeString("\n\n")
        self.frame = buffer
        self.id = id
    }

    private struct Wire<Record: ChangeRecord>: Encodable {
        var kind: String
        var key: Record.Key
        var record: Record?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(kind, forKey: .kind)
            try container.encode(key, forKey: .key)
            // Explicit null: every event has the same three keys.
            try container.encode(record, forKey: .record)
        }

        enum CodingKeys: String, CodingKey { case kind, key, record }
    }
}

/// JSON for response bodies: dates as ISO 8601, keys in a stable order.
enum JSONBody {
    /// One encoder for every body: its configuration never changes after this, and `encode` keeps no state
    /// between calls, so concurrent requests share it (making one per call cost more than the encoding of a row).
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func encode(_ value: some Encodable) throws -> Data {
        try encoder.encode(value)
    }
}

/// Keys as URL text: a string key as itself, any other key as its JSON text (`42`, a UUID's text).
enum KeyText {
    static func text<Key: Encodable>(of key: Key) throws -> String {
        if let string = key as? String { return string }
        let json = String(decoding: try JSONBody.encode([key]), as: UTF8.self)
        let inner = String(json.dropFirst().dropLast())
        if inner.hasPrefix("\""), let string = try? JSONDecoder().decode([String].self, from: Data(json.utf8)).first {
            return string
        }
        return inner
    }

    /// The pattern of a key type's text, when it has one.
    static func pattern(of type: Any.Type) -> String? {
        if type is any FixedWidthInteger.Type { return "^-?[0-9]{1,18}$" }
        if type == UUID.self { return "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$" }
        return nil
    }

    /// ``key(_:from:parameter:)`` for one key type, with the type's case chosen once rather than on every call
    /// (each runtime cast costs about as much as parsing the key).
    static func parser<Key: Decodable & Sendable>(
        for type: Key.Type
    ) -> @Sendable (_ text: String, _ parameter: String) throws -> Key {
        if type == String.self { return { text, _ in text as! Key } }
        if type == Int.self {
            // The usual key type, parsed without a runtime cast per request (a cast costs more than the parsing).
            return { text, parameter in
                guard let value = Int(text, radix: 10) else {
                    throw Problem.badParameter(
                        parameter,
                        "'\(text.prefix(100))' is not a key of this table (a whole number)"
                    )
                }
                // `Key` is `Int` (checked above): the bit cast is the identity.
                return unsafeBitCast(value, to: Key.self)
            }
        }
        if let integer = Key.self as? any (FixedWidthInteger & Sendable).Type {
            return { text, parameter in
                if let value = integer.init(text, radix: 10) as? Key { return value }
                throw Problem.badParameter(
                    parameter,
                    "'\(text.prefix(100))' is not a key of this table (a whole number)"
                )
            }
        }
        return { text, parameter in try key(type, from: text, parameter: parameter) }
    }

    static func key<Key: Decodable>(_ type: Key.Type, from text: String, parameter: String) throws -> Key {
        if let key = text as? Key { return key }
        // Integers in decimal, leading zeros allowed (JSON would refuse `007`).
        if let integer = Key.self as? any FixedWidthInteger.Type {
            if let value = integer.init(text, radix: 10) as? Key { return value }
            throw Problem.badParameter(parameter, "'\(text.prefix(100))' is not a key of this table (a whole number)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        if let key = try? decoder.decode([Key].self, from: Data("[\(text)]".utf8)).first { return key }
        if let quoted = try? JSONBody.encode([text]),
            let key = try? decoder.decode([Key].self, from: quoted).first
        {
            return key
        }
        throw Problem.badParameter(parameter, "'\(text.prefix(100))' is not a key of this table")
    }
}
