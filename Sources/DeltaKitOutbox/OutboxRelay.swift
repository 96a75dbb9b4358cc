public import DeltaKit
public import DeltaKitRisingWave
import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
import Tracing

/// Publishes the events of one topic of a ``PostgresOutbox`` through an `EventSink` (a `KafkaEventSink` in
/// production) and deletes each row once the sink acknowledged it: a swift-service-lifecycle `Service`.
///
/// - **Nothing lost, nothing invented**: only committed rows are visible to it, and a row is deleted only after
///   the sink made its event durable. A crash between the two publishes the event again; DeltaKit's merge makes
///   the replay change nothing.
/// - **Per key in order**: it publishes each key's rows in `event_order`, which follows commit order.
/// - **No skipped rows**: it keeps no high-water mark over ids; every round reads whatever rows exist, so a
///   transaction that took a low id and committed late is published in a later round.
/// - **A poisoned row blocks only its key**: a row whose event cannot be decoded or serialized stays in the table,
///   its key is held back (later rows of that key wait behind it), and every other key keeps flowing; held keys are
///   retried every ``Configuration/blockedKeyRetryInterval``.
/// - **One relay at a time**: it publishes only while it holds a session-level advisory lock for the outbox and
///   topic; another relay waits, retrying every ``Configuration/leadershipRetryInterval``, and takes over when the
///   leader's session ends (a crash closes it). After its own session broke and was re-established it holds no
///   lock any more, and competes again before publishing anything.
/// - **Wakes on `NOTIFY`**, falling back to polling every ``Configuration/pollInterval`` (a connection pooler in
///   transaction mode loses notifications).
///
/// A graceful shutdown lets the batch in flight finish (published and deleted), then ends.
///
/// It reads PostgreSQL through DeltaKit's own libpq client, the one `RisingWaveConnection` uses, on a session of
/// its own (the advisory lock and `LISTEN` are per session).
public final class OutboxRelay<Sink: EventSink>: Service, Sendable {
    /// Settings of a relay.
    public struct Configuration: Sendable {
        /// The topic whose rows this relay publishes (the sink's topic).
        public var topic: String
        /// Rows read, published and deleted per round (1…100,000).
        public var batchSize: Int
        /// How long to wait for a notification before looking anyway.
        public var pollInterval: Duration
        /// How often a relay that is not the leader tries to become it.
        public var leadershipRetryInterval: Duration
        /// How long a key whose head row could not be published is held back before it is tried again.
        public var blockedKeyRetryInterval: Duration
        /// How often the outbox's depth and oldest age are measured for the metrics.
        public var metricsInterval: Duration
        /// End (successfully) once a round finds nothing to publish, instead of waiting for more: for scripts.
        public var exitWhenEmpty: Bool

        /// Settings for `topic`.
        public init(
            topic: String,
            batchSize: Int = 2_000,
            pollInterval: Duration = .seconds(1),
            leadershipRetryInterval: Duration = .seconds(1),
            blockedKeyRetryInterval: Duration = .seconds(30),
            metricsInterval: Duration = .seconds(5),
            exitWhenEmpty: Bool = false
        ) {
            self.topic = topic
            self.batchSize = batchSize
            self.pollInterval = pollInterval
            self.leadershipRetryInterval = leadershipRetryInterval
            self.blockedKeyRetryInterval = blockedKeyRetryInterval
            self.metricsInterval = metricsInterval
            self.exitWhenEmpty = exitWhenEmpty
        }
    }

    /// A row that could not be published, holding back its key.
    public struct HeldBackRow: Sendable, Hashable {
        /// The outbox row's id.
        public var id: Int64
        /// Its message key (the key's later rows wait behind it).
        public var key: String
        /// Why it could not be published.
        public var reason: String
    }

    private struct Counters {
        var published = 0
        var forwarded = 0
        var isLeader = false
        var blockedKeys: Set<String> = []
        var heldBack: [String: HeldBackRow] = [:]
    }

    private let outbox: PostgresOutbox
    private let connectionConfiguration: RisingWaveConnection.Configuration
    private let sink: Sink
    private let configuration: Configuration
    private let logger: Logger
    private let counters = Mutex(Counters())
    private let metrics: RelayMetrics
    /// The mark of rows whose payload this relay's sink can send as it is (``PostgresOutbox/payloadFormat(of:)``
    /// of its record type); `nil` when the sink sends only events it encodes itself.
    private let forwardedFormat: String?

    /// A relay of `configuration.topic`'s rows of `outbox` to `sink`, reading PostgreSQL at `connection`.
    ///
    /// Its metrics (see Documentation/outbox.md) go to `metricsFactory` (default: `MetricsSystem.factory`).
    ///
    /// - Throws: `DeltaKitError` with code `invalidConfiguration` for a setting out of range.
    public init(
        outbox: PostgresOutbox,
        connection: RisingWaveConnection.Configuration,
        sink: Sink,
        configuration: Configuration,
        logger: Logger = Logger(label: "deltakit.outbox"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws {
        guard (1...100_000).contains(configuration.batchSize) else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "batchSize must be 1…100,000, got \(configuration.batchSize)"
            )
        }
        for (name, value) in [
            ("pollInterval", configuration.pollInterval),
            ("leadershipRetryInterval", configuration.leadershipRetryInterval),
            ("metricsInterval", configuration.metricsInterval),
        ] where value <= .zero {
            throw DeltaKitError(code: .invalidConfiguration, message: "\(name) must be positive, got \(value)")
        }
        try connection.validate()
        self.outbox = outbox
        self.connectionConfiguration = connection
        self.sink = sink
        self.configuration = configuration
        self.logger = logger
        self.metrics = RelayMetrics(table: outbox.table, topic: configuration.topic, factory: metricsFactory)
        self.forwardedFormat =
            sink is any EncodedEventSending<Sink.Record> ? PostgresOutbox.payloadFormat(of: Sink.Record.self) : nil
    }

    /// Events published and deleted so far by this relay.
    public var published: Int { counters.withLock { $0.published } }

    /// Events sent as their rows' payloads hold them, without decoding (rows DeltaKit's enqueue marked), so far;
    /// the others were decoded. For tests.
    package var forwarded: Int { counters.withLock { $0.forwarded } }

    /// Whether this relay currently holds the outbox's leadership.
    public var isLeader: Bool { counters.withLock { $0.isLeader } }

    /// The message keys currently held back behind a row that could not be published.
    public var blockedKeys: Set<String> { counters.withLock { $0.blockedKeys } }

    /// The rows currently holding back their keys (one per key in ``blockedKeys``), in id order, with why each
    /// could not be published.
    public var heldBack: [HeldBackRow] {
        counters.withLock { counters in
            counters.heldBack.values.filter { counters.blockedKeys.contains($0.key) }.sorted { $0.id < $1.id }
        }
    }

    /// Relays until a graceful shutdown (or, with ``Configuration/exitWhenEmpty``, until nothing is left to
    /// publish).
    ///
    /// - Throws: `CancellationError` when cancelled; `DeltaKitError` with code `connectionFailed` when PostgreSQL
    ///   cannot be reached at start. Failures after that (a lost session, a sink that fails) are logged and retried.
    public func run() async throws {
        let connection = try await RisingWaveConnection(configuration: connectionConfiguration, logger: logger)
        defer { setLeader(false) }
        do {
            try await relay(connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    private var stopping: Bool { Task.isShuttingDownGracefully || Task.isCancelled }

    private func relay(_ connection: RisingWaveConnection) async throws {
        var failures = 0
        while !stopping {
            do {
                guard try await becomeLeader(connection) else { return }
                let session = await connection.reconnects
                try await connection.execute("LISTEN \(outbox.notificationChannel)")
                if try await lead(connection, session: session) { return }
                failures = 0
            } catch let error where !(error is CancellationError) {
                // Leadership stays as it is: a failed round (a sink that fails) keeps the lock; a lost session is
                // noticed by the next attempt to lead, which reconnects and tries the lock again.
                failures += 1
                logger.warning("outbox relay of '\(configuration.topic)': \(error); retrying")
                try await pause(.milliseconds(min(100 << min(failures, 6), 5_000)))
            }
        }
    }

    /// Waits until this session holds the advisory lock; `false` when the relay is stopping instead.
    private func becomeLeader(_ connection: RisingWaveConnection) async throws -> Bool {
        var announced = false
        while !stopping {
            let rows = try await connection.query(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS acquired",
                text: ["deltakit_outbox_relay:\(outbox.table):\(configuration.topic)"]
            )
            if rows.first?["acquired"] == "t" {
                setLeader(true)
                logger.info("outbox relay of '\(configuration.topic)' is the leader")
                return true
            }
            setLeader(false)
            if !announced {
                logger.info("outbox relay of '\(configuration.topic)' waits: another relay is the leader")
                announced = true
            }
            try await pause(configuration.leadershipRetryInterval)
        }
        return false
    }

    /// What a batch's send ended with: the ids the sink acknowledged and the keys newly held back.
    private typealias Outcome = (published: [Int64], blocked: Set<String>)

    /// Publishes while this session is the leader. Returns `true` when the relay is done (stopping, or empty with
    /// `exitWhenEmpty`), `false` when the session was re-established and leadership must be won again.
    ///
    /// One batch at a time: read it, decode it, send it, and delete what the sink acknowledged. Two alternatives
    /// were tried and not kept (Documentation/outbox.md, Performance): reading the next batch while the sink
    /// awaits the acknowledgements, and taking each batch with one `DELETE … RETURNING` in a transaction that
    /// commits after them; with writers running both cost the database more than they saved.
    private func lead(_ connection: RisingWaveConnection, session: Int) async throws -> Bool {
        var blocked: [String: ContinuousClock.Instant] = [:]
        var lastMetrics: ContinuousClock.Instant?
        let clock = ContinuousClock()
        while !stopping {
            let now = clock.now
            blocked = blocked.filter { now - $0.value < configuration.blockedKeyRetryInterval }
            counters.withLock { $0.blockedKeys = Set(blocked.keys) }
            metrics.blockedKeys.record(blocked.count)
            if lastMetrics.map({ now - $0 >= configuration.metricsInterval }) ?? true {
                try await measure(connection)
                lastMetrics = now
            }
            let rows = try await connection.query(
                """
                SELECT id, message_key, event_order, payload, traceparent, trace_headers,
                    (extract(epoch FROM created_at) * 1000000)::bigint AS enqueued_us, payload_format
                FROM \(outbox.table)
                WHERE topic = $1 AND NOT (message_key = ANY($2::text[]))
                ORDER BY id LIMIT $3
                """,
                text: [configuration.topic, postgresTextArray(blocked.keys), String(configuration.batchSize)]
            )
            // Rows read on a session that was re-established are not ours to publish: the lock went with the old one.
            guard await connection.reconnects == session else {
                setLeader(false)
                return false
            }
            if rows.isEmpty {
                if configuration.exitWhenEmpty {
                    for row in heldBack {
                        logger.warning(
                            "outbox relay of '\(configuration.topic)' ends with key \(row.key) held back at row \(row.id): \(row.reason)"
                        )
                    }
                    return true
                }
                try await waitForWork(connection)
                continue
            }
            let (batch, poisoned) = prepare(rows)
            let outcome = try await publish(batch)
            for key in poisoned.union(outcome.blocked) { blocked[key] = clock.now }
            counters.withLock { $0.blockedKeys = Set(blocked.keys) }
            if !outcome.published.isEmpty {
                _ = try await connection.query(
                    "DELETE FROM \(outbox.table) WHERE id = ANY($1::bigint[])",
                    text: [postgresBigintArray(outcome.published)]
                )
                counted(outcome.published.count)
            }
        }
        return true
    }

    private func counted(_ deleted: Int) {
        counters.withLock { $0.published += deleted }
        metrics.published.increment(by: Int64(deleted))
    }

    /// Decodes `rows` (in id order) into events with the order the outbox assigned them; a row that does not
    /// decode holds back its key (returned), and the key's later rows of this batch are left out.
    ///
    /// A row that DeltaKit's enqueue marked with the sink's record type's wire format, and whose payload holds the
    /// order the outbox assigned, is not decoded: its payload is what the sink would encode for the decoded event,
    /// so it is sent as it is.
    private func prepare(_ rows: [SQLRow]) -> (batch: PreparedBatch<Sink.Record>, blocked: Set<String>) {
        var blocked: Set<String> = []
        var batch = PreparedBatch<Sink.Record>()
        batch.rows.reserveCapacity(rows.count)
        // One schema lookup for the batch rather than one per row.
        let schema = try? Sink.Record.schema
        for row in rows {
            // The columns in the order the SELECT names them.
            let values = row.values
            let key = values[1] ?? ""
            if blocked.contains(key) { continue }
            guard let id = values[0].flatMap({ Int64($0) }) else { continue }
            do {
                let order = try values[2].flatMap { Int64($0) }.orThrow("event_order")
                let payload = values[3] ?? ""
                var prepared = PreparedRow(
                    id: id,
                    key: key,
                    enqueuedMicros: values[6].flatMap { Int64($0) } ?? 0,
                    trace: Self.traceHeaders(traceparent: values[4], headers: values[5])
                )
                if let forwardedFormat, values[7] == forwardedFormat,
                    let encoded = EncodedEvent(key: key, json: payload, order: order, trace: prepared.trace)
                {
                    prepared.encoded = encoded
                    batch.rows.append(prepared)
                    continue
                }
                let decoded =
                    try payload.utf8.withContiguousStorageIfAvailable {
                        try ChangeEvent<Sink.Record>.decodeWire(UnsafeRawBufferPointer($0), schema: schema)
                    } ?? ChangeEvent<Sink.Record>(jsonData: Array(payload.utf8))
                let event =
                    decoded.record.map {
                        ChangeEvent(
                            operation: decoded.operation,
                            record: $0,
                            order: order,
                            timestamp: decoded.timestamp
                        )
                    }
                    ?? .delete(key: decoded.key, order: order, timestamp: decoded.timestamp)
                prepared.event = batch.events.count
                batch.events.append(event)
                batch.rows.append(prepared)
            } catch {
                blocked.insert(key)
                holdBack(id: id, key: key, reason: "\(error)")
                logger.error(
                    "outbox row \(id) (key \(key)) of '\(configuration.topic)' cannot be published, its key waits: \(error)"
                )
            }
        }
        return (batch, blocked)
    }

    /// Publishes `batch` (in id order) and returns the ids the sink acknowledged and the keys newly held back.
    private func publish(_ batch: PreparedBatch<Sink.Record>) async throws -> Outcome {
        let pending = batch.rows
        return try await withPublishSpan(pending) {
            do {
                try await send(pending, events: batch.events)
            } catch let error as DeltaKitError where error.code == .serializationFailed {
                // One event the sink refuses must not hold back the others: find it by sending one at a time, in
                // order.
                var blocked: Set<String> = []
                var sent: [Int64] = []
                for item in pending where !blocked.contains(item.key) {
                    do {
                        try await send([item], events: batch.events)
                        sent.append(item.id)
                    } catch let error as DeltaKitError where error.code == .serializationFailed {
                        blocked.insert(item.key)
                        holdBack(id: item.id, key: item.key, reason: "\(error)")
                        logger.error(
                            "outbox row \(item.id) (key \(item.key)) of '\(configuration.topic)' cannot be published, its key waits: \(error)"
                        )
                    }
                }
                let sentIDs = Set(sent)
                let acknowledged = pending.filter { sentIDs.contains($0.id) }
                recordLatency(acknowledged.map(\.enqueuedMicros))
                countForwarded(acknowledged)
                return (sent, blocked)
            }
            recordLatency(pending.map(\.enqueuedMicros))
            countForwarded(pending)
            return (pending.map(\.id), [])
        }
    }

    private func countForwarded(_ rows: [PreparedRow]) {
        let forwarded = rows.reduce(0) { $0 + ($1.encoded == nil ? 0 : 1) }
        if forwarded > 0 { counters.withLock { $0.forwarded += forwarded } }
    }

    /// Runs `body`, a batch's send, in a span of its own when rows of the batch were enqueued in a trace that the
    /// active instrument reads (none otherwise: a relay without a tracer, or a batch of untraced rows, runs no
    /// span and its messages stay as they were).
    ///
    /// One span per batch, `deltakit.outbox.publish` (kind `producer`), not one per event: a batch holds up to
    /// thousands of events, and a span for each would cost more than their send. When the batch's traced rows all
    /// come from one context (the common case at low rates: one request's events) the span continues that trace as
    /// its child; when they come from several, it starts a trace of its own and links each context (at most
    /// ``maximumSpanLinks``), as OpenTelemetry's messaging conventions do for a batch publish. Each message still
    /// carries its own row's context, so a consumer continues the trace that wrote the event either way.
    private func withPublishSpan<Result>(
        _ batch: [PreparedRow],
        _ body: () async throws -> Result
    ) async throws -> Result {
        var contexts: [ServiceContext] = []
        var seen: Set<[TraceHeader]> = []
        for item in batch where !item.trace.isEmpty && seen.insert(item.trace).inserted {
            if let context = TraceHeaders.context(from: item.trace) { contexts.append(context) }
        }
        guard let first = contexts.first else { return try await body() }
        let parent = contexts.count == 1 ? first : ServiceContext.topLevel
        return try await withSpan("deltakit.outbox.publish", context: parent, ofKind: .producer) { span in
            span.attributes["messaging.destination.name"] = configuration.topic
            span.attributes["messaging.batch.message_count"] = batch.count
            if contexts.count > 1 {
                for context in contexts.prefix(Self.maximumSpanLinks) {
                    span.addLink(SpanLink(context: context, attributes: [:]))
                }
            }
            return try await body()
        }
    }

    /// The most trace contexts a batch's span links (tracing backends cap links per span, commonly at 128).
    static var maximumSpanLinks: Int { 128 }

    /// Sends through the sink, each event with the trace headers its row was enqueued with when the sink can
    /// (a `KafkaEventSink`, DeltaKitTesting's `InMemoryEventSink`), a payload that needs no decoding as it is; a
    /// sink that cannot gets the events alone (and then every row was decoded: ``forwardedFormat`` is `nil`).
    private func send(_ rows: [PreparedRow], events: [ChangeEvent<Sink.Record>]) async throws {
        let traced = rows.contains { !$0.trace.isEmpty }
        if let forwarding = sink as? any EncodedEventSending<Sink.Record> {
            // As `send(contentsOf:)` does when no row is traced: the current context's headers (none without a
            // span) on every message.
            let current = traced ? [] : TraceHeaders.current()
            if rows.allSatisfy({ $0.encoded != nil }) {
                _ = try await forwarding.send(
                    encoded: rows.map { row in
                        var encoded = row.encoded!
                        if !current.isEmpty { encoded.trace = current }
                        return encoded
                    }
                )
            } else {
                _ = try await forwarding.send(
                    rows.map { row -> OutgoingEvent<Sink.Record> in
                        let trace = traced ? row.trace : current
                        guard var encoded = row.encoded else { return .event(events[row.event], trace: trace) }
                        encoded.trace = trace
                        return .encoded(encoded)
                    }
                )
            }
            return
        }
        // Every row was decoded: only a forwarding sink gets rows that were not.
        let selected = rows.map { events[$0.event] }
        if let tracing = sink as? any TraceHeaderSending<Sink.Record>, traced {
            _ = try await tracing.send(contentsOf: selected, traceHeaders: rows.map(\.trace))
        } else {
            try await sink.send(contentsOf: selected)
        }
    }

    /// The trace headers a row was enqueued with: its `trace_headers`, or a `traceparent` alone (rows written by
    /// a statement that set only that column).
    private static func traceHeaders(traceparent: String?, headers: String?) -> [TraceHeader] {
        if let text = headers, !text.isEmpty { return TraceHeaders.headers(text: text) }
        if let parent = traceparent, !parent.isEmpty { return [TraceHeader(name: "traceparent", value: parent)] }
        return []
    }

    private func holdBack(id: Int64, key: String, reason: String) {
        counters.withLock { $0.heldBack[key] = HeldBackRow(id: id, key: key, reason: reason) }
    }

    private func recordLatency(_ enqueuedMicros: [Int64]) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        for micros in enqueuedMicros where micros > 0 {
            metrics.publishLatency.recordNanoseconds(max(0, now - micros) * 1_000)
        }
    }

    private func measure(_ connection: RisingWaveConnection) async throws {
        let rows = try await connection.query(
            """
            SELECT count(*) AS depth,
                coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest
            FROM \(outbox.table) WHERE topic = $1
            """,
            text: [configuration.topic]
        )
        let depth = rows.first?["depth"].flatMap { Int($0) } ?? 0
        let oldest = rows.first?["oldest"].flatMap { Double($0) } ?? 0
        metrics.depth.record(depth)
        metrics.oldestAge.record(oldest)
        logger.debug("outbox '\(configuration.topic)': \(depth) rows waiting, oldest \(oldest) s")
    }

    /// Waits for a notification, at most ``Configuration/pollInterval``, in short slices so that a shutdown is
    /// seen promptly (the wait blocks the connection's thread).
    private func waitForWork(_ connection: RisingWaveConnection) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.pollInterval
        while !stopping, clock.now < deadline {
            let slice = min(.milliseconds(100), deadline - clock.now)
            if try await connection.waitForNotification(timeout: slice) { return }
        }
    }

    /// Sleeps up to `duration`, ending early on a graceful shutdown.
    private func pause(_ duration: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        while !stopping, clock.now < deadline {
            try await Task.sleep(for: min(.milliseconds(50), deadline - clock.now))
        }
    }

    private func setLeader(_ leader: Bool) {
        counters.withLock { $0.isLeader = leader }
        metrics.leader.record(leader ? 1 : 0)
    }
}

extension Optional {
    fileprivate func orThrow(_ column: String) throws -> Wrapped {
        guard let self else {
            throw DeltaKitError(code: .queryFailed, message: "outbox column \(column) is NULL or malformed")
        }
        return self
    }
}

/// A row read, ready to be sent: its payload as it is (``encoded``), or the index of its decoded event in its
/// ``PreparedBatch``. Not generic over the record type, so that the relay's per-row bookkeeping needs no generic
/// metadata (the relay is generic over its sink, and an application's instance of it is not specialized).
private struct PreparedRow: Sendable {
    var id: Int64
    var key: String
    var enqueuedMicros: Int64
    var trace: [TraceHeader]
    /// The payload, sent as it is; `nil` when the row was decoded.
    var encoded: EncodedEvent?
    /// The decoded event's index in the batch's `events` (when ``encoded`` is `nil`).
    var event = 0

    init(id: Int64, key: String, enqueuedMicros: Int64, trace: [TraceHeader]) {
        self.id = id
        self.key = key
        self.enqueuedMicros = enqueuedMicros
        self.trace = trace
    }
}

/// A batch ready to be sent: its rows in id order, and the events of those that were decoded.
private struct PreparedBatch<Record: ChangeRecord>: Sendable {
    var rows: [PreparedRow] = []
    var events: [ChangeEvent<Record>] = []
}

/// The relay's metrics, labelled with the outbox table and topic.
private struct RelayMetrics: Sendable {
    let depth: Gauge
    let oldestAge: Gauge
    let publishLatency: Metrics.Timer
    let published: Counter
    let leader: Gauge
    let blockedKeys: Gauge

    init(table: String, topic: String, factory: any MetricsFactory) {
        let dimensions = [("table", table), ("topic", topic)]
        depth = Gauge(label: "deltakit_outbox_depth", dimensions: dimensions, factory: factory)
        oldestAge = Gauge(label: "deltakit_outbox_oldest_age_seconds", dimensions: dimensions, factory: factory)
        publishLatency = Metrics.Timer(
            label: "deltakit_outbox_publish_latency",
            dimensions: dimensions,
            factory: factory
        )
        published = Counter(label: "deltakit_outbox_published_total", dimensions: dimensions, factory: factory)
        leader = Gauge(label: "deltakit_outbox_relay_leader", dimensions: dimensions, factory: factory)
        blockedKeys = Gauge(label: "deltakit_outbox_blocked_keys", dimensions: dimensions, factory: factory)
    }
}
