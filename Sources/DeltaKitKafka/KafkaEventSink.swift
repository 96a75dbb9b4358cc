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
            throw DeltaKitError.kafkaUnreachable(configuration.kafka, error, callbacks: callbacks)
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
        let batch = core.startSend()
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
            core.reserve(reserved, for: batch)
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
                    let result: RdKafkaHandle.ProduceResult
                    do {
                        result = try key.withUnsafeBytes { key in
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
                    } catch {
                        failure = error  // the send still waits for what it enqueued, then throws this
                        break produce
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
            core.release(reserved - enqueued, for: batch)
        }
        let (deliveryError, receipt) = await core.seal(batch)
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
    /// Batches waiting for ``Configuration/linger`` are sent at once rather than when it ends; a batch sent after
    /// `flush()` returned waits for it again.
    ///
    /// - Throws: the sink's failure if an event could not be delivered.
    public func flush() async throws {
        await core.waitForSendsInProgress()
        if let failure = core.failure { throw failure }
    }

    /// Stops accepting events, waits up to ``Configuration/shutdownTimeout`` for outstanding deliveries,
    /// purges (and reports as failed) any still pending after that, and stops the poll thread. Batches waiting for
    /// ``Configuration/linger`` are sent at once rather than when it ends.
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

/// A sink's shared state: the handle, its poll thread, and its ``SinkStateMachine`` behind one lock. Every
/// transition's actions (resuming waiters) run after the lock is released, in ``perform(_:)``.
final class SinkCore: Sendable {
    typealias Machine = SinkStateMachine<CheckedContinuation<Void, Never>, CheckedContinuation<SendOutcome, Never>>
    /// What a send's caller gets once every message it produced has a report.
    typealias SendOutcome = (error: DeltaKitError?, receipt: EventReceipt)

    let handle: RdKafkaHandle
    private let topic: String
    private let shutdownTimeout: Duration
    private let logger: Logger
    private let pollLoop: Mutex<PollLoop?> = Mutex(nil)
    private let metrics: SinkMetrics
    private let machine = Mutex(Machine())
    /// Set once the sink failed or closed: the cheap check before each event.
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
        let loop = PollLoop(name: "deltakit-kafka-producer") { [weak self] in self?.pollOnce() }
        pollLoop.withLock { $0 = loop }
    }

    /// One turn of the poll thread. While a `flush()` or `close()` waits, reports are served through
    /// `rd_kafka_flush`, which makes librdkafka send what is lingering now instead of after `linger.ms` — for as
    /// long as it runs: a message enqueued meanwhile is sent at once too. So every waiter that a transition resumes
    /// meanwhile is held by the state machine and resumed only once `rd_kafka_flush` returned (a report that
    /// completes one makes it return at once): a batch enqueued after `flush()` returned lingers.
    private func pollOnce() {
        if machine.withLock({ $0.startImmediateSendIfWanted() }) {
            let flushing = handle.outstandingMessages > 0
            if flushing { _ = handle.flush(timeoutMs: 20) }
            perform(machine.withLock { $0.immediateSendEnded() })
            if !flushing { handle.poll(timeoutMs: 10) }  // nothing to send yet
        } else {
            handle.poll(timeoutMs: 100)
        }
        perform(machine.withLock { $0.polled() })
    }

    /// Runs the actions a transition returned (never under the lock).
    private func perform(_ actions: [Machine.Action]) {
        for action in actions {
            switch action {
            case .resume(let waiter): waiter.resume()
            case .completeSend(let waiter, let error, let receipt): waiter.resume(returning: (error, receipt))
            }
        }
    }

    var failure: DeltaKitError? { machine.withLock { $0.failure } }

    func checkOpen() throws {
        let (failure, closed) = machine.withLock { ($0.failure, $0.closed) }
        if let failure {
            throw DeltaKitError(
                code: .closed,
                message:
                    "the Kafka sink for '\(topic)' stopped after an earlier failure (\(failure.message)); create a new sink and resend from the last acknowledged event",
                underlying: failure
            )
        }
        if closed { throw DeltaKitError(code: .closed, message: "the Kafka sink for '\(topic)' is closed") }
    }

    /// `true` once the sink failed or was closed (a cheap check before each event).
    var isStopped: Bool { stopped.load(ordering: .relaxed) }

    // MARK: Sends

    func startSend() -> DeliveryBatch { DeliveryBatch(core: self, id: machine.withLock { $0.startSend() }) }

    /// Accounts for `count` deliveries of `batch` about to be produced.
    func reserve(_ count: Int, for batch: DeliveryBatch) { machine.withLock { $0.reserve(count, for: batch.id) } }

    /// Gives back reservations of `batch` that were not produced.
    func release(_ count: Int, for batch: DeliveryBatch) {
        perform(machine.withLock { $0.release(count, for: batch.id) })
    }

    /// Called on the poll thread for every delivery report of `batch`.
    func delivered(_ outcome: DeliveryOutcome, for batch: DeliveryBatch) {
        var failure: DeltaKitError?
        if let error = outcome.error {
            metrics.failed.increment()
            failure = DeltaKitError(
                code: .deliveryFailed,
                message:
                    "the event for key \(outcome.key ?? "?") on '\(topic)' was not acknowledged: \(error.message)",
                underlying: error
            )
            stopped.store(true, ordering: .relaxed)
        } else {
            metrics.acknowledged.increment()
            if outcome.latencyMicros >= 0 { metrics.latency.recordNanoseconds(outcome.latencyMicros * 1000) }
        }
        let (actions, first, held) = machine.withLock { machine in
            let first = failure != nil && machine.failure == nil
            let actions = machine.delivered(
                for: batch.id,
                failure: failure,
                partition: outcome.partition,
                offset: outcome.offset
            )
            return (actions, first, machine.holdsActions)
        }
        if first, let failure { logger.error("Kafka sink stopped: \(failure)") }
        perform(actions)
        // Waiters are held until librdkafka's flush returns: make it return now (this runs on the poll thread).
        if held { handle.yield() }
    }

    /// No more messages will be added to `batch`; waits for its reports and returns its first failure and the
    /// receipt of what was acknowledged.
    func seal(_ batch: DeliveryBatch) async -> SendOutcome {
        await withCheckedContinuation { continuation in
            perform(machine.withLock { $0.seal(batch.id, waiter: continuation) })
        }
    }

    func sent(_ count: Int) { if count > 0 { metrics.sent.increment(by: Int64(count)) } }

    /// Records the first failure; returns the error to throw.
    func fail(_ error: DeltaKitError) -> DeltaKitError {
        stopped.store(true, ordering: .relaxed)
        if machine.withLock({ $0.fail(error) }) { logger.error("Kafka sink stopped: \(error)") }
        return error
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

    // MARK: Waiting

    /// How often a sender waited because librdkafka's queue was full.
    var queueFullWaits: Int { machine.withLock { $0.queueFullWaits } }
    /// How many flushes took their set of sends in progress (for tests).
    var flushesStarted: Int { machine.withLock { $0.flushesStarted } }

    /// Waits for every `send` call in progress now (not for those that start later).
    func waitForSendsInProgress() async {
        await withCheckedContinuation { continuation in
            perform(machine.withLock { $0.flush(waiter: continuation) })
        }
    }

    /// Waits until the next poll served reports (librdkafka's queue was full).
    func waitForQueueSpace() async {
        await withCheckedContinuation { continuation in
            machine.withLock { $0.waitForQueueSpace(waiter: continuation) }
        }
    }

    /// Waits until no delivery is outstanding; `false` if `timeout` passed first (the outstanding messages are
    /// then purged, and their failure reports end the wait).
    @discardableResult
    func waitUntilIdle(timeout: Duration?) async -> Bool {
        let wait: @Sendable () async -> Void = { [self] in
            await withCheckedContinuation { continuation in
                perform(machine.withLock { $0.waitUntilIdle(waiter: continuation) })
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

    // MARK: Lifecycle

    func close() async throws {
        stopped.store(true, ordering: .relaxed)
        guard machine.withLock({ $0.close() }) else { return }
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

/// One `send` call as librdkafka's per-message opaque: routes each delivery report to the sink's state machine.
final class DeliveryBatch: DeliveryReceiver, @unchecked Sendable {
    // Immutable; all state is in the sink's SinkStateMachine.
    let core: SinkCore
    let id: SinkCore.Machine.SendID

    init(core: SinkCore, id: SinkCore.Machine.SendID) {
        self.core = core
        self.id = id
    }

    override func delivered(_ outcome: DeliveryOutcome) { core.delivered(outcome, for: self) }
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
