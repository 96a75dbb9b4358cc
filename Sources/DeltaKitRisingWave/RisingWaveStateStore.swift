public import DeltaKit
import Foundation
public import Logging

/// A read-only `StateStore` over the objects of a ``RisingWavePipeline``.
///
/// - ``snapshot()`` reads the latest-state view ordered by key (the demo's
///   `SELECT * FROM latest_user_state ORDER BY id`), streaming rows;
/// - ``history(limit:)`` reads the bounded history view newest first (a query on the source, such as
///   `SELECT * FROM user_events ORDER BY event_order DESC LIMIT 20`, would scan the whole topic on every call);
/// - ``waitUntilVisible(_:timeout:pollInterval:)`` waits until a sink's receipt is ingested (read-your-writes);
/// - ``changes(from:)`` follows the state through the view's subscription (``RisingWaveChangeFeed``).
///
/// Rows are decoded into the record type; a column that does not fit throws ``RisingWaveDecodingError``.
public final class RisingWaveStateStore<Record: ChangeRecord>: StateStore, ChangeFeedStore {
    /// The connection reads go through (queries run one at a time on it).
    let connection: RisingWaveConnection
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

    /// Every live record, ordered by key.
    public func snapshot() async throws -> [Record] {
        var records: [Record] = []
        for try await record in snapshotRecords() { records.append(record) }
        return records
    }

    /// Every live record, ordered by key, streamed without holding the whole result in memory.
    public func snapshotRecords() -> some AsyncSequence<Record, any Error> {
        connection.rows(pipeline.queries.snapshot).map { row in try Self.record(from: row) }
    }

    /// A page of live records after `key` in key order, at most `limit` (an index range scan on the view's key).
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) when `limit` is negative.
    public func snapshot(after key: Record.Key?, limit: Int) async throws -> [Record] {
        try DeltaKitError.check(limit, in: 0...Int.max, "snapshot page limit")
        guard limit > 0 else { return [] }
        let query = pipeline.queries.snapshotPage(after: key != nil, limit: limit)
        let parameters: [(any SQLEncodable)?] = try key.map { [try Self.keyText($0)] } ?? []
        return try await connection.query(query, parameters).map(Self.record(from:))
    }

    /// The live record for `key`, or `nil`.
    public func value(forKey key: Record.Key) async throws -> Record? {
        let rows = try await connection.query(pipeline.queries.value, [try Self.keyText(key)])
        return try rows.first.map(Self.record(from:))
    }

    /// The live record for `key` with its `event_order`, from the same row of the latest-state view.
    public func valueAndOrder(forKey key: Record.Key) async throws -> (record: Record, order: Int64?)? {
        let rows = try await connection.query(pipeline.queries.value, [try Self.keyText(key)])
        guard let row = rows.first else { return nil }
        let order = try Self.namingKey(of: row) { try row.decode(ChangeEventField.order, as: Int64.self) }
        return (try Self.record(from: row), order)
    }

    /// The most recent valid events, newest first, from the history view: at most
    /// `min(limit, historySize)` (``RisingWavePipeline/Configuration/historySize``).
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) when `limit` is negative.
    public func history(limit: Int) async throws -> [ChangeEvent<Record>] {
        try DeltaKitError.check(limit, in: 0...Int.max, "history limit")
        let bounded = min(limit, pipeline.configuration.historySize)
        return try await connection.query(pipeline.queries.history(limit: bounded)).map(Self.event(from:))
    }

    /// The number of live records.
    public func count() async throws -> Int {
        let rows = try await connection.query(pipeline.queries.count)
        return try rows.first?.decode("n", as: Int.self) ?? 0
    }

    /// Per Kafka partition, the highest offset ingested so far.
    public func ingestedOffsets() async throws -> [Int32: Int64] {
        var offsets: [Int32: Int64] = [:]
        for row in try await connection.query(pipeline.queries.progress) {
            guard let partition = try row.decodeIfPresent("kafka_partition", as: Int32.self),
                let offset = try row.decodeIfPresent("max_offset", as: Int64.self)
            else { continue }
            offsets[partition] = offset
        }
        return offsets
    }

    /// The highest `event_order` ingested so far over all partitions (deletes included), or `nil` when nothing
    /// was ingested. Not a freshness barrier: partitions are ingested independently; use
    /// ``waitUntilVisible(_:timeout:pollInterval:)`` with the sink's receipt.
    public func maxIngestedOrder() async throws -> Int64? {
        try await connection.query(pipeline.queries.progress).compactMap {
            try $0.decodeIfPresent("max_order", as: Int64.self)
        }.max()
    }

    /// Waits until every event in `receipt` (what `KafkaEventSink.send` returned) is ingested: each partition
    /// in it has reached its offset in the progress view. Then a read sees those events (read-your-writes): the
    /// views read one source and are updated in the same checkpoints.
    ///
    /// Except right after provisioning a pipeline on a topic that already holds data: each new view then backfills
    /// the topic on its own (RisingWave's source backfill, `SourceCachingUp`) and joins the shared source only when
    /// the source has caught up with it, so for a while the progress view — created last — can be ahead of the
    /// latest-state view, and this can return before the events are in the state. It holds again once the source's
    /// reader has passed the offsets the views backfilled to. Provision before producing (the usual order), or allow
    /// for that catch-up when provisioning over existing data (`Documentation/operations.md`).
    ///
    /// - Throws: `DeltaKitError` with code `timedOut` naming the partitions still behind and how far.
    public func waitUntilVisible(
        _ receipt: EventReceipt,
        timeout: Duration = .seconds(30),
        pollInterval: Duration = .milliseconds(200)
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var behind: [(Int32, Int64, Int64?)] = []
        while true {
            let offsets = try await ingestedOffsets()
            behind = receipt.offsets.sorted { $0.key < $1.key }.compactMap { partition, offset in
                let seen = offsets[partition]
                return (seen ?? -1) >= offset ? nil : (partition, offset, seen)
            }
            if behind.isEmpty { return }
            if clock.now >= deadline { break }
            try await Task.sleep(for: pollInterval)
        }
        let detail = behind.map { "partition \($0.0) at \($0.2.map(String.init) ?? "nothing"), needs \($0.1)" }
        throw DeltaKitError(
            code: .timedOut,
            message:
                "events were not visible in '\(pipeline.progressViewName)' within \(timeout): \(detail.joined(separator: "; ")); is RisingWave reading the topic '\(pipeline.configuration.topic)'?"
        )
    }

    /// Starts a change feed of the latest-state view on a connection of its own (a waiting `FETCH` occupies
    /// it), opened with the store's connection settings; see ``RisingWaveChangeFeed``. The cursor is declared
    /// before this returns.
    ///
    /// The feed keeps the contract of `ChangeFeedStore` and coalesces: several changes to one key within one
    /// checkpoint (about a second) arrive as one, the key's latest.
    ///
    /// - Throws: `DeltaKitError` — `changesUnavailable` for a position older than the subscription's retention,
    ///   `invalidConfiguration` for a position this feed did not deliver, `connectionFailed` or `queryFailed` as the
    ///   connection reports them.
    public func changes(from start: ChangeFeedStart) async throws -> RisingWaveChangeFeed<Record> {
        try await changes(from: start, connection: connection.configuration)
    }

    /// Starts a change feed on a connection opened with `configuration`.
    ///
    /// - Parameters:
    ///   - start: Where the feed starts.
    ///   - configuration: How to open the feed's own connection.
    ///   - fetchTimeout: How long one `FETCH` waits for changes before asking again (whole seconds, at least 1, at
    ///     most 60). It also bounds how long cancelling the iterating task (or closing the feed's connection) takes on
    ///     RisingWave v3.0.3 and earlier, where a waiting `FETCH` ignores the cancel request. Default: 5 s.
    /// - Throws: `DeltaKitError` — `invalidConfiguration` for a `fetchTimeout` over 60 s, otherwise as
    ///   ``changes(from:)``.
    public func changes(
        from start: ChangeFeedStart,
        connection configuration: RisingWaveConnection.Configuration,
        fetchTimeout: Duration = .seconds(5)
    ) async throws -> RisingWaveChangeFeed<Record> {
        try await changes(
            from: start,
            connection: configuration,
            fetchTimeout: fetchTimeout,
            fetchCount: 500,
            rewrite: { $0 }
        )
    }

    /// The longest `FETCH` wait a feed may ask for: on RisingWave v3.0.3 and earlier, cancellation waits for it.
    static var maximumFetchTimeout: Duration { .seconds(60) }

    /// Starts a change feed that fetches up to `fetchCount` rows at a time and passes its cursor statements through
    /// `rewrite` (tests run them on PostgreSQL).
    func changes(
        from start: ChangeFeedStart,
        connection configuration: RisingWaveConnection.Configuration,
        fetchTimeout: Duration,
        fetchCount: Int,
        rewrite: @escaping @Sendable (String) -> String
    ) async throws -> RisingWaveChangeFeed<Record> {
        guard fetchTimeout <= Self.maximumFetchTimeout else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "fetchTimeout \(fetchTimeout) is over \(Self.maximumFetchTimeout): RisingWave v3.0.3 lets a waiting FETCH run out its timeout even when it is cancelled, so cancelling a feed would take that long"
            )
        }
        return try await RisingWaveChangeFeed.open(
            configuration: configuration,
            pipeline: pipeline,
            start: start,
            fetchTimeout: fetchTimeout,
            fetchCount: fetchCount,
            logger: logger,
            rewrite: rewrite
        )
    }

    // MARK: Decoding

    /// The key as its column's text (the form a query parameter and a result row carry).
    static func keyText(_ key: Record.Key) throws -> String {
        if let text = key as? String { return text }
        let keyField = try Record.schema.keyField
        return try ScalarType.require(Record.Key.self, field: keyField).textForm(of: key, field: keyField)
    }

    /// Decodes a state row; a bad value is reported with the row's key and the column.
    static func record(from row: SQLRow) throws -> Record {
        try namingKey(of: row) { try Record(from: SQLRowDecoder(row: row)) }
    }

    /// Runs `body`, adding the row's key to a decoding error.
    static func namingKey<T>(of row: SQLRow, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var error as RisingWaveDecodingError {
            if error.key == nil, let keyField = try? Record.schema.keyField { error.key = row[keyField] ?? "NULL" }
            throw error
        }
    }

    static func event(from row: SQLRow) throws -> ChangeEvent<Record> {
        try namingKey(of: row) { try decodeEvent(from: row) }
    }

    private static func decodeEvent(from row: SQLRow) throws -> ChangeEvent<Record> {
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
            let key = try parseSQLScalar(Record.Key.self, text: keyText, column: schema.keyField)
            return .delete(key: key, order: order, timestamp: ts)
        }
        return ChangeEvent(
            operation: op,
            record: try Record(from: SQLRowDecoder(row: row)),
            order: order,
            timestamp: ts
        )
    }
}
