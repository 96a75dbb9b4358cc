public import DeltaKit
public import DeltaKitRisingWave
import Foundation
import Synchronization

/// A transactional outbox in PostgreSQL: a change event is written in the same transaction as the application's
/// own write, so it is published exactly when that transaction commits (by an ``OutboxRelay``), never for a
/// rollback, and never lost after a crash.
///
/// The outbox is two tables and a trigger, created by ``provision(connection:)`` (or by running ``schemaSQL``
/// with any client):
/// - `<table>`: one row per event waiting to be published;
/// - `<table>_keys`: one row per message key holding the last `event_order` given to that key. Enqueueing
///   updates this row, which locks it until the transaction ends, so two transactions writing the same key
///   serialize there and the later committer always gets the higher order: per key, `event_order` follows commit
///   order (the same lock PostgreSQL already takes when both update the application's row);
/// - a statement trigger that sends `NOTIFY` on ``notificationChannel`` at commit, to wake the relay.
///
/// Enqueue with the driver the application already uses: ``enqueueStatement(_:topic:traceparent:)`` gives the SQL
/// and its parameters in PostgreSQL's text format, for postgres-nio (`PostgresQuery(unsafeSQL:binds:)`),
/// PostgresKit, or any other client, to run inside the application's transaction.
public struct PostgresOutbox: Sendable, Hashable {
    /// The outbox table's name (the key table is `<table>_keys`).
    public let table: String

    /// An outbox in `table`.
    ///
    /// - Throws: `DeltaKitError` with code `invalidConfiguration` unless `table` is a lower-case SQL identifier
    ///   (letters, digits, `_`, starting with a letter or `_`, at most 40 characters), so that it needs no quoting.
    public init(table: String = "deltakit_outbox") throws {
        let scalars = table.unicodeScalars
        let valid =
            !scalars.isEmpty && scalars.count <= 40
            && scalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
            && !("0"..."9").contains(scalars.first!)
        guard valid else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "invalid outbox table name '\(table)': use lower-case letters, digits and '_', starting with a letter or '_', at most 40 characters"
            )
        }
        self.table = table
    }

    /// The channel the outbox's trigger notifies at every commit that enqueued events.
    public var notificationChannel: String { table }

    /// The DDL that creates the outbox (idempotent: `IF NOT EXISTS` / `OR REPLACE`). Requires PostgreSQL 14 or
    /// later.
    public var schemaSQL: String {
        """
        CREATE TABLE IF NOT EXISTS \(table) (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            topic text NOT NULL,
            message_key text NOT NULL,
            event_order bigint NOT NULL,
            payload text NOT NULL,
            traceparent text,
            trace_headers text,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            payload_format text
        );
        ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS trace_headers text;
        ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS payload_format text;
        CREATE INDEX IF NOT EXISTS \(table)_topic_id ON \(table) (topic, id);
        CREATE TABLE IF NOT EXISTS \(table)_keys (
            topic text NOT NULL,
            message_key text NOT NULL,
            last_order bigint NOT NULL,
            PRIMARY KEY (topic, message_key)
        );
        CREATE OR REPLACE FUNCTION \(table)_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('\(notificationChannel)', ''); RETURN NULL; END $$;
        CREATE OR REPLACE TRIGGER \(table)_notify AFTER INSERT ON \(table)
            FOR EACH STATEMENT EXECUTE FUNCTION \(table)_notify();
        """
    }

    /// Creates the outbox (``schemaSQL``) in one transaction (one simple-protocol query, which PostgreSQL runs as
    /// one implicit transaction); safe to run concurrently and repeatedly.
    ///
    /// - Throws: `DeltaKitError` with code `queryFailed` (PostgreSQL's message) or `connectionFailed`.
    public func provision(connection: RisingWaveConnection) async throws {
        // The transaction-scoped advisory lock serializes concurrent provisioning: two concurrent
        // CREATE TABLE IF NOT EXISTS can otherwise both decide to create and one fails on the catalog's unique index.
        try await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('deltakit_outbox_provision', 0)); \(schemaSQL)"
        )
    }

    /// The statement that enqueues `event` for `topic`, and its parameters in PostgreSQL's text format (`nil` is
    /// NULL): run it inside the application's transaction, after the application's own write. It returns one row,
    /// `id` and `event_order`.
    ///
    /// The event is published with the `event_order` the statement returns, not necessarily `event.order`: the
    /// greater of `event.order` and one more than the key's previous order, so that per key the order follows the
    /// order in which PostgreSQL committed the writes, whatever clock the application used. The statement writes
    /// that order into the stored payload too, so that a relay can send the payload as it is.
    ///
    /// - Parameters:
    ///   - event: The change event, as the application's write left the row.
    ///   - topic: The topic the relay of this topic publishes it to.
    ///   - traceparent: The W3C `traceparent` of the span the write belongs to, stored with the event and sent
    ///     as its `traceparent` header. `nil`: the current trace context's, when a span is active — every
    ///     propagation header the bootstrapped instrument writes is stored (column `trace_headers`) and sent.
    /// - Throws: `DeltaKitError` with code `serializationFailed` when the event cannot be encoded.
    public func enqueueStatement<Record>(
        _ event: ChangeEvent<Record>,
        topic: String,
        traceparent: String? = nil
    ) throws -> OutboxStatement {
        // The context's headers, as the active instrument writes them; none (one task-local read) without a span.
        var trace = TraceHeaders.current()
        if let traceparent {
            trace.removeAll { $0.name.lowercased() == "traceparent" }
            trace.append(TraceHeader(name: "traceparent", value: traceparent))
        }
        let storedParent = trace.first { $0.name.lowercased() == "traceparent" }?.value
        let json = try event.jsonData()
        let payload = String(decoding: json, as: UTF8.self)
        let keyBytes = try event.keyBytes
        let key = String(decoding: keyBytes, as: UTF8.self)
        // The statement writes the order it assigns into the payload, in place of the event's own, and marks the
        // row with the record type's wire format, so that a relay of that type forwards the payload as it is
        // instead of decoding and encoding it again. Only when the payload ends as the encoder ends every event
        // and the key's text is its bytes; otherwise the row is written as any other code writes it, unmarked,
        // and the relay decodes it.
        var digitsAndAfter: String?
        var afterDigits: String?
        var format: String?
        if let wireFormat = Self.payloadFormat(of: Record.self), Array(key.utf8).elementsEqual(keyBytes),
            let end = EncodedEvent.orderDigitsFromEnd(of: Array(json), order: event.order)
        {
            digitsAndAfter = String(end.digits + end.after)
            format = wireFormat
            afterDigits = String(end.after)
        }
        let sql = """
            WITH next AS (
                INSERT INTO \(table)_keys AS k (topic, message_key, last_order) VALUES ($1, $2, GREATEST($3::bigint, 1))
                ON CONFLICT (topic, message_key) DO UPDATE SET last_order = GREATEST(k.last_order + 1, $3::bigint)
                RETURNING last_order
            )
            INSERT INTO \(table) (topic, message_key, event_order, payload, traceparent, trace_headers, payload_format)
            SELECT $1, $2, last_order,
                CASE WHEN $7::int IS NULL THEN $4
                    ELSE left($4, -$7::int) || last_order::text || right($4, $8::int) END,
                $5, $6, $9
            FROM next
            RETURNING id, event_order
            """
        return OutboxStatement(
            sql: sql,
            bindings: [
                topic, key, String(event.order), payload, storedParent, TraceHeaders.text(trace), digitsAndAfter,
                afterDigits, format,
            ]
        )
    }

    /// The mark of a row whose payload is `Record`'s wire JSON as DeltaKit's encoder wrote it, with the order the
    /// outbox assigned: the record type's name and its schema, hashed. A relay whose sink's record type has the same
    /// mark forwards such a payload as it is; any other row it decodes. `nil` (no row marked) for a type without a
    /// schema, or one that checks its values after decoding (its decoding may refuse what its encoding wrote).
    package static func payloadFormat<Record: ChangeRecord>(of _: Record.Type) -> String? {
        if let cached = formats.withLock({ $0[ObjectIdentifier(Record.self)] }) { return cached }
        var format: String?
        if let schema = try? Record.schema, !schema.checksValuesAfterDecoding {
            // FNV-1a, 64 bits: stable across processes and builds, unlike `Hasher`.
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in "\(String(reflecting: Record.self))\n\(schema)".utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
            format = "deltakit-wire-1:" + String(hash, radix: 16)
        }
        formats.withLock { $0[ObjectIdentifier(Record.self)] = format }
        return format
    }

    private static let formats = Mutex<[ObjectIdentifier: String?]>([:])
}

/// One SQL statement and its parameters (`$1`, `$2`, …) in PostgreSQL's text format; `nil` is NULL.
///
/// With postgres-nio:
/// ```swift
/// var binds = PostgresBindings()
/// for value in statement.bindings { binds.append(value) }
/// try await connection.query(PostgresQuery(unsafeSQL: statement.sql, binds: binds), logger: logger)
/// ```
public struct OutboxStatement: Sendable, Hashable {
    /// The SQL text.
    public let sql: String
    /// The parameters, in order, as text (PostgreSQL casts them to the column types).
    public let bindings: [String?]

    /// A statement.
    public init(sql: String, bindings: [String?]) {
        self.sql = sql
        self.bindings = bindings
    }
}

extension PostgresOutbox {
    /// Runs ``enqueueStatement(_:topic:traceparent:)`` on a libpq connection, inside whatever transaction the
    /// caller opened on it; returns the row's id and event order. Package API for the example and the tests.
    package func enqueue<Record>(
        _ event: ChangeEvent<Record>,
        topic: String,
        traceparent: String? = nil,
        on connection: RisingWaveConnection
    ) async throws -> (id: Int64, order: Int64) {
        let statement = try enqueueStatement(event, topic: topic, traceparent: traceparent)
        let rows = try await connection.query(statement.sql, text: statement.bindings)
        guard let row = rows.first, let id = row["id"].flatMap({ Int64($0) }),
            let order = row["event_order"].flatMap({ Int64($0) })
        else {
            throw DeltaKitError(code: .queryFailed, message: "the outbox insert into \(table) returned no row")
        }
        return (id, order)
    }
}

/// A PostgreSQL array literal of text values (`{"a","b"}`), for a `$n::text[]` parameter.
func postgresTextArray(_ values: some Sequence<String>) -> String {
    let items = values.map { value -> String in
        // Most keys need no escaping: quote them whole rather than character by character (the relay builds this
        // for every key of the batch in flight, every round).
        if !value.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + value + "\""
        }
        var escaped = "\""
        for character in value {
            if character == "\"" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped + "\""
    }
    return "{" + items.joined(separator: ",") + "}"
}

/// A PostgreSQL array literal of integers (`{1,2}`), for a `$n::bigint[]` parameter.
func postgresBigintArray(_ values: [Int64]) -> String {
    "{" + values.map(String.init).joined(separator: ",") + "}"
}
