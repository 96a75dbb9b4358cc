public import DeltaKit
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
import Tracing

/// Keeps the latest state in-process straight from Kafka: runs a ``KafkaEventSource`` into any
/// `MutableStateStore` — the embedded alternative to RisingWave.
///
/// Events are handed over in batches (what the source has buffered, up to the initializer's `maxBatchSize`) and
/// each batch is applied in one call, then acknowledged.
///
/// - Over `InMemoryStateStore`, the state is rebuilt from the beginning of every partition at each start (no
///   group: ``KafkaEventSource/Configuration/groupID`` `nil`).
/// - Over a `PositionedStateStore` (`SQLiteStateStore`), each batch is applied **together with the new
///   positions** in one transaction, and a start resumes every partition at the stored position
///   (``init(configuration:store:maxBatchSize:logger:onMalformed:onSourceEvent:rebuildOnIncompatibleTopic:metricsFactory:)``
///   sets it up). A crash at any instant followed by a
///   restart gives exactly the state a replay from scratch gives; a restart re-reads at most the batch that was
///   in flight. Every instance reads every partition (a full copy, like Kafka Streams' GlobalKTable), so no
///   group is used.
///
/// ```swift
/// let store = try SQLiteStateStore<User>(configuration: .init(path: "users.sqlite", source: "user-events"))
/// let materializer = try await KafkaMaterializer(configuration: .init(topic: "user-events"), store: store)
/// let group = ServiceGroup(services: [materializer], gracefulShutdownSignals: [.sigterm], logger: logger)
/// ```
public final class KafkaMaterializer<Store: MutableStateStore>: Service {
    /// The source being read: its one reader is this materializer, which also closes it.
    let source: KafkaEventSource<Store.Record>
    /// The store being written (read it after ``waitUntilVisible(_:timeout:)``).
    public let store: Store
    /// The most events applied in one call to the store (one transaction for a `PositionedStateStore`).
    let maxBatchSize: Int
    private let logger: Logger
    private let visibility: Mutex<Visibility>
    private let applied = Atomic<Int>(0)
    private let metricsFactory: any MetricsFactory
    private let lagGauges = Mutex<[Int32: Gauge]>([:])
    private let latestLag = Mutex<[Int32: Int64]>([:])
    /// Whether a positioned store's positions were already checked against the topic (by the initializer that
    /// made the source); otherwise ``run()`` checks them before reading.
    private let continuityChecked = Atomic<Bool>(false)

    /// Per partition, the messages between the applied position and the partition's end as librdkafka last
    /// saw it (what the `deltakit_materializer_lag` gauge reports); empty before the first batch. A broker that
    /// reports wrong end offsets (Tansu) makes it wrong: decide readiness with ``isCaughtUp``.
    public var lag: [Int32: Int64] { latestLag.withLock { $0 } }

    /// How many events this materializer has applied so far (for progress reports).
    public var appliedEvents: Int { applied.load(ordering: .relaxed) }

    /// Creates a materializer over a source you configured; ``run()`` starts it.
    ///
    /// For a `PositionedStateStore`, the source must start where the store left off: create it with
    /// ``KafkaEventSource/Configuration/startOffsets`` set to the store's positions and no group, or use
    /// ``init(configuration:store:maxBatchSize:logger:onMalformed:onSourceEvent:rebuildOnIncompatibleTopic:metricsFactory:)``,
    /// which does both. ``run()`` checks it.
    ///
    /// - Parameters:
    ///   - source: The source to read; for a `PositionedStateStore`, started at the store's positions.
    ///   - store: Where events are applied.
    ///   - maxBatchSize: The most events per store call; 1…1,000,000. Default: 2,000.
    ///   - logger: Receives the materializer's logs. Default: a logger labelled `deltakit.kafka.materializer`.
    ///   - metricsFactory: Where the per-partition lag gauge `deltakit_materializer_lag` (labels `topic`,
    ///     `partition`: messages between the applied position and the partition's end as last fetched) goes.
    ///     Default: `MetricsSystem.factory`.
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming `maxBatchSize` and its range when it is out of it.
    public init(
        source: KafkaEventSource<Store.Record>,
        store: Store,
        maxBatchSize: Int = 2_000,
        logger: Logger = Logger(label: "deltakit.kafka.materializer"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws {
        try Self.checkBatchSize(maxBatchSize)
        self.source = source
        self.store = store
        self.maxBatchSize = maxBatchSize
        self.logger = logger
        self.visibility = Mutex(Visibility())
        self.metricsFactory = metricsFactory
    }

    /// Creates the source for `store` and the materializer: for a `PositionedStateStore`, the source starts
    /// every partition at the stored position (the others at ``KafkaEventSource/Configuration/startPosition``).
    ///
    /// - Throws: `DeltaKitError` — `incompatibleStore` when the store holds another topic; `invalidConfiguration`
    ///   when a group is set for a positioned store (its position lives in the store, not in the group), or
    ///   for a bad setting (`maxBatchSize` out of its range is refused before connecting); the source's errors.
    ///
    /// - Parameters:
    ///   - configuration: The source settings (``KafkaEventSource/Configuration/startOffsets`` is set here).
    ///   - store: Where events are applied.
    ///   - maxBatchSize: The most events per store call; 1…1,000,000. Default: 2,000.
    ///   - logger: Receives the source's logs. Default: a logger labelled `deltakit.kafka.materializer`.
    ///   - onMalformed: Called for each malformed message before it is skipped or dead-lettered. Default: `nil`.
    ///   - onSourceEvent: Called when the source loses or regains the cluster, or a partition went back in
    ///     time. Default: `nil`.
    ///   - rebuildOnIncompatibleTopic: When the store's positions belong to another log than the topic now
    ///     holds (the topic was deleted and recreated, or the broker lost its data): `false` throws
    ///     `incompatibleStore` naming both; `true` removes the store's state (`removeAll()`) and reads the topic
    ///     from its beginning. Checked here, by re-reading the last applied message of each partition. Default:
    ///     `false`.
    ///   - metricsFactory: Where the source's metrics and the materializer's lag gauge go (see
    ///     ``init(source:store:maxBatchSize:logger:metricsFactory:)``). Default: `MetricsSystem.factory`.
    public convenience init(
        configuration: KafkaEventSource<Store.Record>.Configuration,
        store: Store,
        maxBatchSize: Int = 2_000,
        logger: Logger = Logger(label: "deltakit.kafka.materializer"),
        onMalformed: (@Sendable (MalformedMessage) -> Void)? = nil,
        onSourceEvent: (@Sendable (KafkaSourceEvent) -> Void)? = nil,
        rebuildOnIncompatibleTopic: Bool = false,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) async throws {
        // Before connecting: a bad setting is reported without touching the cluster or the store.
        try Self.checkBatchSize(maxBatchSize)
        let configuration = try await Self.sourceConfiguration(
            configuration,
            for: store,
            logger: logger,
            rebuild: rebuildOnIncompatibleTopic
        )
        let source = try await KafkaEventSource<Store.Record>(
            configuration: configuration,
            logger: logger,
            onMalformed: onMalformed,
            onSourceEvent: onSourceEvent,
            metricsFactory: metricsFactory
        )
        try self.init(
            source: source,
            store: store,
            maxBatchSize: maxBatchSize,
            logger: logger,
            metricsFactory: metricsFactory
        )
        continuityChecked.store(true, ordering: .relaxed)
    }

    /// The range of ``init(source:store:maxBatchSize:logger:metricsFactory:)``'s `maxBatchSize`.
    static var batchSizes: ClosedRange<Int> { 1...1_000_000 }

    private static func checkBatchSize(_ maxBatchSize: Int) throws {
        try DeltaKitError.check(maxBatchSize, in: batchSizes, "KafkaMaterializer.maxBatchSize")
    }

    /// Applies events until the source ends, graceful shutdown, or cancellation; then closes the source
    /// (committing what was applied, with a group) and returns once it is closed.
    ///
    /// Graceful shutdown stops the source taking messages: the batch being applied and what the source had
    /// buffered are applied, then the events end and the source is closed here, within `run()`.
    public func run() async throws {
        let source = self.source
        do {
            try await withGracefulShutdownHandler {
                _ = try await self.applyAll()
            } onGracefulShutdown: {
                source.stopReading()
            }
        } catch {
            try? await source.close()
            throw error
        }
        try await source.close()
    }

    /// Returns the number of events applied.
    @discardableResult
    func applyAll(progress: (@Sendable (Int) -> Void)? = nil) async throws -> Int {
        let positioned = store as? any PositionedStateStore<Store.Record>
        if let positioned {
            let stored = try await positioned.positions()
            guard source.startOffsets == stored, !source.hasGroup else {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "the source for '\(source.topic)' starts at \(Self.describe(source.startOffsets))\(source.hasGroup ? " in a group" : "") but the store's positions are \(Self.describe(stored)); a positioned store needs a source without a group that starts at its positions — use KafkaMaterializer(configuration:store:), which sets startOffsets from the store"
                )
            }
            if !continuityChecked.load(ordering: .relaxed), !stored.isEmpty {
                // A source made by hand: the positions must still belong to the log the topic holds.
                try await Self.checkContinuity(
                    of: positioned,
                    topic: source.topic,
                    kafka: source.kafka,
                    logger: logger,
                    rebuild: false
                )
                continuityChecked.store(true, ordering: .relaxed)
            }
            advanceVisibility(stored)
        }
        var applied = 0
        // A store that takes rows gets the rows the source decoded; every other store gets typed events.
        let layout = source.core.rowLayout
        let rowStore = (store as? any RowApplying).flatMap { $0.rowLayout === layout ? $0 : nil }
        for try await batch in source.batches(limit: maxBatchSize) {
            let count = batch.eventCount
            if batch.carriesTraceHeaders {
                try await applyTraced(batch, layout: layout, positioned: positioned)
            } else if positioned == nil, let rowStore, batch.events.isEmpty {
                for (chunk, range) in batch.segments { rowStore.apply(rows: chunk.rows, range) }
            } else if let positioned {
                try await positioned.apply(
                    contentsOf: try batch.typedEvents(layout: layout),
                    positions: batch.nextOffsets,
                    fingerprints: batch.lastFingerprints
                )
            } else if count > 0 {
                try await store.apply(contentsOf: try batch.typedEvents(layout: layout))
            }
            source.acknowledge(batch)
            // The lag first: a reader woken by visibility sees the lag of what it waited for.
            recordLag(batch.nextOffsets)
            advanceVisibility(batch.nextOffsets)
            if batch.reachesCaughtUp { source.markCaughtUp() }
            let before = applied
            applied += count
            self.applied.add(count, ordering: .relaxed)
            if applied / 10_000 != before / 10_000 { progress?(applied) }
            if batch.isLast { break }
        }
        return applied
    }

    /// Applies a batch some of whose events carry a trace context: in runs of consecutive events with the same
    /// headers, each traced run inside a consumer span that continues the producer's trace, so that what the store
    /// does — and the change feed elements it emits — belongs to that trace. A positioned store records the batch's
    /// positions with its last run; a crash before that replays the earlier runs, which the merge ignores.
    private func applyTraced(
        _ batch: SourceBatch<Store.Record>,
        layout: RowLayout?,
        positioned: (any PositionedStateStore<Store.Record>)?
    ) async throws {
        let items = try batch.tracedEvents(layout: layout)
        var start = 0
        while start < items.count {
            var end = start + 1
            while end < items.count, items[end].trace == items[start].trace { end += 1 }
            let events = items[start..<end].map(\.event)
            let isLast = end == items.count
            let run: () async throws -> Void = { [store] in
                if let positioned {
                    try await positioned.apply(
                        contentsOf: events,
                        positions: isLast ? batch.nextOffsets : [:],
                        fingerprints: isLast ? batch.lastFingerprints : [:]
                    )
                } else {
                    try await store.apply(contentsOf: events)
                }
            }
            if let context = TraceHeaders.context(from: items[start].trace) {
                try await withSpan("deltakit.materialize", context: context, ofKind: .consumer) { span in
                    span.attributes["messaging.destination.name"] = source.topic
                    span.attributes["deltakit.events"] = events.count
                    try await run()
                }
            } else {
                try await run()
            }
            start = end
        }
    }

    /// Waits until every assigned partition reached its end and all events before that point are applied.
    public func waitUntilCaughtUp() async { await source.waitUntilCaughtUp() }

    /// `true` once every partition reached its end and everything before that point is applied.
    public var isCaughtUp: Bool { source.isCaughtUp }

    /// Waits until the events behind `receipt` (a sink's receipt: partition and offset of each acknowledged
    /// message) are applied to the store: read-your-writes for a service that writes then reads.
    ///
    /// - Throws: `DeltaKitError` (`timedOut`) naming the partitions still behind after `timeout`;
    ///   `CancellationError` when the task is cancelled.
    public func waitUntilVisible(_ receipt: EventReceipt, timeout: Duration = .seconds(30)) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.waitForVisibility(receipt) }
            group.addTask {
                try await Task.sleep(for: timeout)
                let behind = self.visibility.withLock { $0.behind(receipt) }
                throw DeltaKitError(
                    code: .timedOut,
                    message:
                        "events of \(receipt) were not applied within \(timeout); behind on '\(self.source.topic)': \(behind) — is the materializer running, and are those partitions of this topic?"
                )
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func waitForVisibility(_ receipt: EventReceipt) async throws {
        let id = visibility.withLock { $0.newID() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let action = visibility.withLock { $0.wait(id, receipt, continuation) }
                switch action {
                case .resume: continuation.resume()
                case .cancel: continuation.resume(throwing: CancellationError())
                case .wait: break
                }
            }
        } onCancel: {
            visibility.withLock { $0.cancel(id) }?.resume(throwing: CancellationError())
        }
    }

    /// Updates the lag gauge of each partition in `offsets` (next offsets just applied).
    private func recordLag(_ offsets: [Int32: Int64]) {
        for (partition, next) in offsets {
            guard let lag = source.lag(partition: partition, next: next) else { continue }
            let gauge = lagGauges.withLock { gauges in
                if let gauge = gauges[partition] { return gauge }
                let gauge = Gauge(
                    label: KafkaTelemetry.Metric.materializerLag,
                    dimensions: [
                        (KafkaTelemetry.Dimension.topic, source.topic),
                        (KafkaTelemetry.Dimension.partition, String(partition)),
                    ],
                    factory: metricsFactory
                )
                gauges[partition] = gauge
                return gauge
            }
            gauge.record(lag)
            latestLag.withLock { $0[partition] = lag }
        }
    }

    private func advanceVisibility(_ offsets: [Int32: Int64]) {
        guard !offsets.isEmpty else { return }
        for continuation in visibility.withLock({ $0.advance(offsets) }) { continuation.resume() }
    }

    /// Reads a topic once, from the start (or, for a `PositionedStateStore`, from its positions), into
    /// `store`, and returns when caught up (partition EOF on every partition).
    ///
    /// - Parameters:
    ///   - configuration: The source settings; ``KafkaEventSource/Configuration/stopWhenCaughtUp`` is forced on.
    ///   - store: Where events are applied.
    ///   - logger: Receives the source's logs. Default: a logger labelled `deltakit.kafka.materializer`.
    ///   - onMalformed: Called for each malformed message before it is skipped or dead-lettered. Default: `nil`.
    ///   - progress: Called every 10,000 events with the count so far. Default: `nil`.
    /// - Returns: The number of events applied.
    @discardableResult
    public static func materialize(
        _ configuration: KafkaEventSource<Store.Record>.Configuration,
        into store: Store,
        logger: Logger = Logger(label: "deltakit.kafka.materializer"),
        onMalformed: (@Sendable (MalformedMessage) -> Void)? = nil,
        progress: (@Sendable (Int) -> Void)? = nil
    ) async throws -> Int {
        var configuration = configuration
        configuration.stopWhenCaughtUp = true
        configuration = try await sourceConfiguration(configuration, for: store, logger: logger, rebuild: false)
        let source = try await KafkaEventSource<Store.Record>(
            configuration: configuration,
            logger: logger,
            onMalformed: onMalformed
        )
        let materializer = try KafkaMaterializer(source: source, store: store, logger: logger)
        materializer.continuityChecked.store(true, ordering: .relaxed)
        do {
            let count = try await materializer.applyAll(progress: progress)
            try await source.close()
            return count
        } catch {
            try? await source.close()
            throw error
        }
    }
}
