public import DeltaKit
import Foundation
public import Logging

/// A read-only `StateStore` over the objects of a ``RisingWavePipeline``.
///
/// - ``snapshot()`` reads the latest-state view ordered by key (the demo's
///   `SELECT * FROM latest_user_state ORDER BY id`), streaming rows;
/// - ``history(limit:)`` reads the source newest first (`ORDER BY event_order DESC LIMIT n`);
/// - ``waitUntilVisible(order:timeout:pollInterval:)`` polls until an order is ingested (freshness);
/// - ``watch(since:connection:fetchTimeout:)`` streams state changes from the view's subscription.
///
/// Rows are decoded into the record type; a column that does not fit throws ``RisingWaveDecodingError``.
public final class RisingWaveStateStore<Record: ChangeRecord>: StateStore {
    /// The connection reads go through (queries run one at a time on it).
    public let connection: RisingWaveConnection
    /// The objects read.
    public let pipeline: RisingWavePipeline<Record>
    private let logger: Logger

    /// Creates a store over `pipeline`'s objects, reached through `connection`.
    public init(
        connection: RisingWaveConnection,
        pipeline: RisingWavePipeline<Record>,
        logger: Logger = Logger(label: "deltakit.risingwave.store")
    ) {
        self.connection = connection
        self.pipeline = pipeline
        self.logger = logger
    }

    private func q(_ name: String) -> String { try! SQLText.identifier(name) }
    private var view: String { q(pipeline.viewName) }
    private var stateColumns: String { pipeline.stateColumns.map(q).joined(separator: ", ") }

    /// The snapshot query: every live row ordered by key.
    public var snapshotSQL: String { "SELECT \(stateColumns) FROM \(view) ORDER BY \(q(pipeline.schema.keyField))" }

    /// Every live record, ordered by key.
    public func snapshot() async throws -> [Record] {
        var records: [Record] = []
        for try await record in snapshotRecords() { records.append(record) }
        return records
    }

    /// Every live record, ordered by key, streamed without holding the whole result in memory.
    public func snapshotRecords() -> AsyncThrowingMapSequence<SQLRowSequence, Record> {
        connection.rows(snapshotSQL).map { row in try Record(from: SQLRowDecoder(row: row)) }
    }

    /// The live record for `key`, or `nil`.
    public func value(forKey key: Record.Key) async throws -> Record? {
        let sql = "SELECT \(stateColumns) FROM \(view) WHERE \(q(pipeline.schema.keyField)) = $1"
        let rows = try await connection.query(sql, [try Self.keyText(key)])
        return try rows.first.map { try Record(from: SQLRowDecoder(row: $0)) }
    }

    /// The most recent events, newest first: `SELECT … FROM <source> ORDER BY event_order DESC LIMIT limit`.
    public func history(limit: Int) async throws -> [ChangeEvent<Record>] {
        let columns = pipeline.eventColumns.map { q($0.name) }.joined(separator: ", ")
        let sql =
            "SELECT \(columns) FROM \(q(pipeline.sourceName)) ORDER BY \(q(ChangeEventField.order)) DESC LIMIT $1"
        return try await connection.query(sql, [max(0, limit)]).map(Self.event(from:))
    }

    /// The number of live records.
    public func count() async throws -> Int {
        let rows = try await connection.query("SELECT count(*) AS n FROM \(view)")
        return try rows.first?.decode("n", as: Int.self) ?? 0
    }

    /// The highest `event_order` ingested so far (deletes included), or `nil` when nothing was ingested.
    public func maxIngestedOrder() async throws -> Int64? {
        let rows = try await connection.query("SELECT max_order FROM \(q(pipeline.progressViewName))")
        return try rows.first?.decodeIfPresent("max_order", as: Int64.self)
    }

    /// Waits until an event with order ≥ `order` is visible, polling every `pollInterval`.
    ///
    /// - Throws: `DeltaKitError` with code `timedOut` naming the order
    ///   reached so far.
    public func waitUntilVisible(
        order: Int64,
        timeout: Duration = .seconds(30),
        pollInterval: Duration = .milliseconds(200)
    )
        async throws
    {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var seen: Int64? = nil
        while true {
            seen = try await maxIngestedOrder()
            if let seen, seen >= order { return }
            if clock.now >= deadline { break }
            try await Task.sleep(for: pollInterval)
        }
        throw DeltaKitError(
            code: .timedOut,
            message:
                "order \(order) was not visible in '\(pipeline.progressViewName)' within \(timeout) (highest so far: \(seen.map(String.init) ?? "none")); is RisingWave reading the topic '\(pipeline.configuration.topic)'?"
        )
    }

    /// Streams changes to the latest state from the view's subscription, on a connection of its own.
    ///
    /// - Parameters:
    ///   - since: Resume after this RisingWave commit timestamp (milliseconds, as reported in
    ///     ``RisingWaveChange/timestamp``); `nil` starts with the changes from now on.
    ///   - configuration: How to open the watcher's own connection (a waiting `FETCH` occupies it).
    ///   - fetchTimeout: How long one `FETCH` waits for changes before asking again (whole seconds). Default: 5 s.
    public func watch(
        since: Int64? = nil,
        connection configuration: RisingWaveConnection.Configuration,
        fetchTimeout: Duration = .seconds(5)
    ) -> RisingWaveChangeSequence<Record> {
        RisingWaveChangeSequence(
            configuration: configuration,
            subscription: pipeline.subscriptionName,
            since: since,
            fetchTimeout: fetchTimeout,
            logger: logger
        )
    }

    // MARK: Decoding

    static func keyText(_ key: Record.Key) throws -> String {
        if let text = key as? String { return text }
        let bytes = try ChangeEvent<Record>.delete(key: key, order: 0).keyBytes
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
        return text
    }

    static func event(from row: SQLRow) throws -> ChangeEvent<Record> {
        let opText = try row.decode(ChangeEventField.operation, as: String.self)
        guard let op = ChangeOperation(rawValue: opText) else {
            throw RisingWaveDecodingError(
                column: ChangeEventField.operation,
                value: opText,
                expected: "insert, update or delete",
                reason: "is not an operation"
            )
        }
        let order = try row.decode(ChangeEventField.order, as: Int64.self)
        let ts = try row.decode(ChangeEventField.timestamp, as: Date.self)
        if op == .delete {
            let schema = try Record.schema
            let keyText = try row.decode(schema.keyField, as: String.self)
            let key = try JSONDecoder().decode(
                Record.Key.self,
                from: Data(Self.jsonFragment(keyText, schema.key.type).utf8)
            )
            return .delete(key: key, order: order, timestamp: ts)
        }
        return ChangeEvent(
            operation: op,
            record: try Record(from: SQLRowDecoder(row: row)),
            order: order,
            timestamp: ts
        )
    }

    private static func jsonFragment(_ text: String, _ type: RecordSchema.FieldType) -> String {
        switch type {
        case .string, .uuid, .timestamp:
            let data = try! JSONEncoder().encode(text)
            return String(decoding: data, as: UTF8.self)
        default: return text
        }
    }
}
