public import DeltaKit
import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization

/// An `EventSink` that publishes change events to a Kafka topic with librdkafka.
///
/// - Each message is keyed by the record key (`keyBytes`), so per-key order holds on
///   any number of partitions; the value is the event's wire JSON.
/// - `send` returns once the broker acknowledged the event. A batch keeps many messages in flight.
///   When librdkafka's local queue is full the caller is suspended, never failed and never dropped.
/// - The first failed delivery stops the sink: that send throws `deliveryFailed`
///   with the librdkafka error, and every later call throws `closed`. Nothing is
///   silently skipped; recreate the sink and resend from the last acknowledged event.
/// - One dedicated thread polls librdkafka; no thread of Swift's cooperative pool ever blocks.
/// - As a swift-service-lifecycle `Service`, graceful shutdown waits for every outstanding delivery.
///
/// ```swift
/// let sink = try await KafkaEventSink<User>(configuration: .init(
///     kafka: .init(bootstrapServers: ["localhost:9092"]), topic: "user-events"))
/// try await sink.send(.insert(User(id: 1, name: "Alice", age: 25), order: clock.next()))
/// try await sink.close()
/// ```
public final class KafkaEventSink<Record: ChangeRecord>: EventSink, Service {
    /// The topic events go to.
    public let topic: String
    let core: SinkCore
    /// ``Configuration/sendsTombstones``.
    private let sendsTombstones: Bool

    /// Creates the producer, checks that a broker answers, creates the topic if asked to, and starts polling.
    ///
    /// - Throws: `DeltaKitError` — `invalidConfiguration` with
    ///   librdkafka's own message for an unknown or invalid property, or
    ///   `connectionFailed` naming the servers when no broker answers within
    ///   ``KafkaConfiguration/connectTimeout``.
    ///
    /// - Parameters:
    ///   - configuration: Producer settings.
    ///   - logger: Receives librdkafka's logs and the sink's own. Default: a logger labelled `deltakit.kafka.sink`.
    ///   - metricsFactory: Where the sink's metrics go. Default: `MetricsSystem.factory` (the bootstrapped backend).
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "deltakit.kafka.sink"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) async throws {
        try configuration.validate()
        _ = try Record.schema
        let callbacks = RdKafkaCallbacks(logger: logger)
        let handle = try RdKafkaHandle(kind: .producer, properties: configuration.properties, callbacks: callbacks)
        let core = SinkCore(
            handle: handle,
            configuration: configuration,
            logger: logger,
            metricsFactory: metricsFactory
        )
        callbacks.onError { [weak core] error in core?.clientError(error) }
        do {
            let timeout = configuration.kafka.connectTimeout.int32Milliseconds(minimum: 100)
            _ = try await BlockingCalls.run {
                try handle.clusterMetadata(timeoutMs: timeout)
            }
        } catch let error as KafkaError {
            await core.shutdown()
            throw DeltaKitError.kafkaUnreachable(configuration.kafka, error, librdkafkaSaid: callbacks.lastProblem)
        }
        if let settings = configuration.createTopic {
            do {
                let admin = KafkaTopicAdmin(handle: handle, configuration: configuration.kafka, callbacks: callbacks)
                try await admin.ensureTopic(
                    configuration.topic,
                    partitions: settings.partitions,
                    replicationFactor: settings.replicationFactor,
                    config: settings.config
                )
            } catch {
                await core.shutdown()
                throw error
            }
        }
        do {
            // Learn the topic's partitions and leaders now, not on the first send.
            let timeout = configuration.kafka.connectTimeout.int32Milliseconds(minimum: 100)
            let topic = configuration.topic
            try await BlockingCalls.run {
                _ = try handle.warmUp(topic: topic, timeoutMs: timeout)
            }
        } catch let error as KafkaError {
            logger.debug("metadata for '\(configuration.topic)' not available yet: \(error)")
        }
        self.topic = configuration.topic
        self.sendsTombstones = configuration.sendsTombstones
        self.core = core
        logger.debug(
            "Kafka sink ready",
            metadata: [
                KafkaTelemetry.Key.topic: "\(topic)",
                KafkaTelemetry.Key.servers: "\(configuration.kafka.serversDescription)",
                KafkaTelemetry.Key.librdkafkaVersion: "\(RdKafka.versionString)",
            ]
        )
    }

    deinit { core.abandon() }

    /// Sends one event and returns once the broker acknowledged it, with its partition and offset.
    @discardableResult
    public func send(_ event: ChangeEvent<Record>) async throws -> EventReceipt {
        try await send(contentsOf: [event])
    }

    /// Sends the events in order, keeping many in flight, and returns once all are acknowledged.
    ///
    /// If one fails, the events enqueued before it are still awaited, the rest are not sent, and the call
    /// throws `deliveryFailed`.
    ///
    /// - Returns: Per partition, the highest offset acknowledged for these events.
    @discardableResult
    public func send(contentsOf events: [ChangeEvent<Record>]) async throws -> EventReceipt {
        try core.checkOpen()
        if events.isEmpty { return EventReceipt() }
        let schema = try Record.schema
        let batch = DeliveryBatch(core: core)
        var value: [UInt8] = []
        value.reserveCapacity(256)
        var key: [UInt8] = []
        key.reserveCapacity(32)
        var failure: (any Error)?
        var index = 0
        // Deliveries are accounted for in chunks, reserved before producing (a report may arrive at once).
        while index < events.count, failure == nil {
            let chunkEnd = min(index + 256, events.count)
            // One delivery per message: an event, and for a delete with tombstones on, its tombstone too.
            let reserved =
                sendsTombstones
                ? events[index..<chunkEnd].reduce(0) { $0 + ($1.operation == .delete ? 2 : 1) } : chunkEnd - index
            batch.reserve(reserved)
            core.reserve(reserved)
            var enqueued = 0
            var tombstonePending = false
            produce: while index < chunkEnd {
                let event = events[index]
                if !tombstonePending {
                    do {
                        if core.isStopped { try core.checkOpen() }
                        value.removeAll(keepingCapacity: true)
                        try event.encodeJSON(into: &value, schema: schema)
                        key.removeAll(keepingCapacity: true)
                        try event.appendKeyBytes(to: &key)
                    } catch {
                        failure = error
                        break produce
                    }
                }
                while true {
                    let result = try key.withUnsafeBytes { key in
                        if tombstonePending {
                            return try core.handle.produceTombstone(
                                topic: topic,
                                key: key,
                                headers: Self.tombstoneHeaders(event),
                                receiver: batch
                            )
                        }
                        return try value.withUnsafeBytes { value in
                            try core.handle.produce(topic: topic, key: key, value: value, receiver: batch)
                        }
                    }
                    switch result {
                    case .enqueued:
                        enqueued += 1
                        if !tombstonePending, sendsTombstones, event.operation == .delete {
                            tombstonePending = true
                            continue
                        }
                        tombstonePending = false
                        index += 1
                        continue produce
                    case .queueFull:
                        await core.waitForQueueSpace()
                    case .failed(let error):
                        failure = core.fail(
                            DeltaKitError(
                                code: error.isFatal ? .closed : .deliveryFailed,
                                message:
                                    "cannot enqueue the event for key \(event.key) on topic '\(topic)': \(error.message)",
                                underlying: error
                            )
                        )
                        break produce
                    }
                }
            }
            core.sent(enqueued)
            if enqueued < reserved {
                batch.release(reserved - enqueued)
                core.release(reserved - enqueued)
            }
        }
        let (deliveryError, receipt) = await batch.seal()
        if let deliveryError { throw deliveryError }
        if let failure { throw failure }
        return receipt
    }

    /// The headers of a delete's tombstone: its order and timestamp, so a reader can place it.
    static func tombstoneHeaders(_ event: ChangeEvent<Record>) -> [(name: String, value: [UInt8])] {
        [
            (Configuration.tombstoneOrderHeader, Array(String(event.order).utf8)),
            (Configuration.tombstoneTimestampHeader, Array(EventTimestamp.format(event.timestamp).utf8)),
        ]
    }

    /// How often a sender waited because librdkafka's queue was full (``Configuration/queueMaxMessages``).
    package var queueFullWaits: Int { core.queueFullWaits }
    /// How many ``flush()`` calls have determined which sends they wait for (for tests).
    package var flushesStarted: Int { core.flushesStarted }

    /// Returns once every event sent before the call is acknowledged.
    ///
    /// - Throws: the sink's failure if an event could not be delivered.
    public func flush() async throws {
        await core.waitForBatchesInProgress()
        if let failure = core.failure { throw failure }
    }

    /// Stops accepting events, waits up to ``Configuration/shutdownTimeout`` for outstanding deliveries,
    /// purges (and reports as failed) any still pending after that, and stops the poll thread.
    ///
    /// - Throws: `deliveryFailed` when events had to be purged.
    public func close() async throws {
        try await core.close()
    }

    /// Runs until graceful shutdown (or cancellation), then ``close()``s: nothing in flight is lost on SIGTERM.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }
}

/// A sink's shared state: the handle, its poll thread, outstanding counts and waiters.
final class SinkCore: Sendable {
    let handle: RdKafkaHandle
    private let topic: String
    private let shutdownTimeout: Duration
    private let logger: Logger
    private let pollLoop: Mutex<PollLoop?> = Mutex(nil)
    private let metrics: SinkMetrics

    private struct State {
        var batches: [Int: DeliveryBatch] = [:]
        var batchCounter = 0
        var outstanding = 0
        var failure: DeltaKitError?
        var closed = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var spaceWaiters: [CheckedContinuation<Void, Never>] = []
        /// How often a sender waited for queue space (for tests and tooling).
        var queueFullWaits = 0
        /// How many flushes took their snapshot of the batches in progress (for tests).
        var flushesStarted = 0
    }
    private let state = Mutex(State())
    private let stopped = Atomic<Bool>(false)

    init<R>(
        handle: RdKafkaHandle,
        configuration: KafkaEventSink<R>.Configuration,
        logger: Logger,
        metricsFactory: any MetricsFactory
    ) {
        self.handle = handle
        self.topic = configuration.topic
        self.shutdownTimeout = configuration.shutdownTimeout
        self.logger = logger
        self.metrics = SinkMetrics(topic: configuration.topic, factory: metricsFactory)
        let loop = PollLoop(name: "deltakit-kafka-producer") { [weak self] in
            guard let self else { return }
            self.handle.poll(timeoutMs: 100)
            self.resumeSpaceWaiters()
        }
        pollLoop.withLock { $0 = loop }
    }

    var failure: DeltaKitError? { state.withLock { $0.failure } }

    func checkOpen() throws {
        try state.withLock { state in
            if let failure = state.failure {
                throw DeltaKitError(
                    code: .closed,
                    message:
                        "the Kafka sink for '\(topic)' stopped after an earlier failure (\(failure.message)); create a new sink and resend from the last acknowledged event",
                    underlying: failure
                )
            }
            if state.closed {
                throw DeltaKitError(code: .closed, message: "the Kafka sink for '\(topic)' is closed")
            }
        }
    }

    func nextBatchID() -> Int {
        state.withLock { state in
            state.batchCounter += 1
            return state.batchCounter
        }
    }

    func register(_ batch: DeliveryBatch) { state.withLock { $0.batches[batch.id] = batch } }
    func unregister(_ batch: DeliveryBatch) { _ = state.withLock { $0.batches.removeValue(forKey: batch.id) } }

    /// Waits for every `send` call in progress now (not for those that start later).
    func waitForBatchesInProgress() async {
        let batches = state.withLock { state in
            state.flushesStarted += 1
            return Array(state.batches.values)
        }
        for batch in batches { await batch.waitUntilDone() }
    }

    /// `true` once the sink failed or was closed (a cheap check before each event).
    var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Accounts for `count` deliveries about to be produced.
    func reserve(_ count: Int) { state.withLock { $0.outstanding += count } }

    /// Gives back reservations that were not produced, or that got their delivery report.
    func release(_ count: Int) {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.outstanding -= count
            guard state.outstanding == 0 else { return [] }
            defer { state.idleWaiters = [] }
            return state.idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Called on the poll thread for every delivery report; returns the error when the delivery failed.
    func delivered(_ outcome: DeliveryOutcome) -> DeltaKitError? {
        var failure: DeltaKitError?
        if let error = outcome.error {
            metrics.failed.increment()
            failure = DeltaKitError(
                code: .deliveryFailed,
                message: "the event for key \(outcome.key ?? "?") on '\(topic)' was not acknowledged: \(error.message)",
                underlying: error
            )
            _ = fail(failure!)
        } else {
            metrics.acknowledged.increment()
            if outcome.latencyMicros >= 0 { metrics.latency.recordNanoseconds(outcome.latencyMicros * 1000) }
        }
        release(1)
        return failure
    }

    func sent(_ count: Int) { if count > 0 { metrics.sent.increment(by: Int64(count)) } }

    /// Records the first failure; returns the error to throw.
    func fail(_ error: DeltaKitError) -> DeltaKitError {
        stopped.store(true, ordering: .relaxed)
        return state.withLock { state in
            if state.failure == nil {
                state.failure = error
                logger.error("Kafka sink stopped: \(error)")
            }
            return error
        }
    }

    /// librdkafka client-level errors: fatal ones stop the sink; others are logged (librdkafka retries them).
    func clientError(_ error: KafkaError) {
        if error.isFatal {
            _ = fail(
                DeltaKitError(code: .closed, message: "fatal Kafka producer error: \(error.message)", underlying: error)
            )
            handle.purgeAll()
        } else {
            logger.warning("Kafka producer: \(error)")
        }
    }

    var queueFullWaits: Int { state.withLock { $0.queueFullWaits } }
    var flushesStarted: Int { state.withLock { $0.flushesStarted } }

    func waitForQueueSpace() async {
        await withCheckedContinuation { continuation in
            state.withLock {
                $0.spaceWaiters.append(continuation)
                $0.queueFullWaits += 1
            }
        }
    }

    private func resumeSpaceWaiters() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            defer { state.spaceWaiters = [] }
            return state.spaceWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until no delivery is outstanding; `false` if `timeout` passed first.
    @discardableResult
    func waitUntilIdle(timeout: Duration?) async -> Bool {
        let wait: @Sendable () async -> Void = { [self] in
            await withCheckedContinuation { continuation in
                let idle = state.withLock { state in
                    if state.outstanding > 0 { state.idleWaiters.append(continuation) }
                    return state.outstanding == 0
                }
                if idle { continuation.resume() }
            }
        }
        guard let timeout else {
            await wait()
            return true
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await wait()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next()!
            if first {
                group.cancelAll()  // stops the timer
            } else {
                // Timed out: purge outstanding messages; their reports (failures) then unblock the waiter.
                handle.purgeAll()
                _ = await group.next()
            }
            return first
        }
    }

    func close() async throws {
        stopped.store(true, ordering: .relaxed)
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        if alreadyClosed { return }
        let clean = await waitUntilIdle(timeout: shutdownTimeout)
        await shutdown()
        if !clean {
            throw DeltaKitError(
                code: .deliveryFailed,
                message:
                    "closing the Kafka sink for '\(topic)': events were still unacknowledged after \(shutdownTimeout) and were purged; their senders got the error",
                underlying: failure
            )
        }
    }

    /// Stops the poll thread.
    func shutdown() async {
        let loop = pollLoop.withLock { $0.take() }
        await loop?.stop()
    }

    /// The sink was dropped without `close()`: stop polling (outstanding messages are lost with the handle).
    func abandon() {
        pollLoop.withLock { $0.take() }?.requestStop()
    }
}

/// Awaits the delivery reports of one `send` call. Retained once per message as librdkafka's opaque.
final class DeliveryBatch: DeliveryReceiver, @unchecked Sendable {
    // All mutable state is in `state` (a Mutex); `core` and `id` are immutable.
    let core: SinkCore
    let id: Int
    private struct State {
        var pending = 0
        var sealed = false
        var done = false
        var error: DeltaKitError?
        var receipt = EventReceipt()
        var continuation: CheckedContinuation<(DeltaKitError?, EventReceipt), Never>?
        var doneWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// Creates a batch and registers it with the sink, so that `flush()` can wait for it.
    init(core: SinkCore) {
        self.core = core
        self.id = core.nextBatchID()
        super.init()
        core.register(self)
    }

    func reserve(_ count: Int) { state.withLock { $0.pending += count } }

    /// Gives back reservations that were not produced (before `seal`).
    func release(_ count: Int) { state.withLock { $0.pending -= count } }

    override func delivered(_ outcome: DeliveryOutcome) {
        let failure = core.delivered(outcome)
        let finished = state.withLock { state in
            state.pending -= 1
            if state.error == nil { state.error = failure }
            if failure == nil, outcome.error == nil {
                state.receipt.record(partition: outcome.partition, offset: outcome.offset)
            }
            return Self.finishIfDone(&state)
        }
        finish(finished)
    }

    /// No more messages will be added; waits for the outstanding ones and returns the first failure and the
    /// receipt of what was acknowledged.
    func seal() async -> (DeltaKitError?, EventReceipt) {
        await withCheckedContinuation { continuation in
            let finished = state.withLock { state in
                state.sealed = true
                state.continuation = continuation
                return Self.finishIfDone(&state)
            }
            finish(finished)
        }
    }

    /// Waits until the batch is sealed and every message in it has a delivery report.
    func waitUntilDone() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if !state.done { state.doneWaiters.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }

    private typealias Finished = (
        continuation: CheckedContinuation<(DeltaKitError?, EventReceipt), Never>?, error: DeltaKitError?,
        receipt: EventReceipt, waiters: [CheckedContinuation<Void, Never>]
    )

    private static func finishIfDone(_ state: inout State) -> Finished? {
        guard state.sealed, state.pending == 0, !state.done else { return nil }
        state.done = true
        defer {
            state.continuation = nil
            state.doneWaiters = []
        }
        return (state.continuation, state.error, state.receipt, state.doneWaiters)
    }

    private func finish(_ finished: Finished?) {
        guard let finished else { return }
        core.unregister(self)
        finished.continuation?.resume(returning: (finished.error, finished.receipt))
        for waiter in finished.waiters { waiter.resume() }
    }
}

struct SinkMetrics: Sendable {
    let sent: Counter
    let acknowledged: Counter
    let failed: Counter
    let latency: Metrics.Timer

    init(topic: String, factory: any MetricsFactory) {
        let dimensions = [(KafkaTelemetry.Dimension.topic, topic)]
        sent = Counter(label: KafkaTelemetry.Metric.eventsSent, dimensions: dimensions, factory: factory)
        acknowledged = Counter(
            label: KafkaTelemetry.Metric.eventsAcknowledged,
            dimensions: dimensions,
            factory: factory
        )
        failed = Counter(label: KafkaTelemetry.Metric.eventsFailed, dimensions: dimensions, factory: factory)
        latency = Metrics.Timer(label: KafkaTelemetry.Metric.deliveryLatency, dimensions: dimensions, factory: factory)
    }
}
