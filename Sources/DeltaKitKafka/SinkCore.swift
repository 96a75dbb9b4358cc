import DeltaKit
import Logging
import Metrics
import Synchronization

/// A producer's shared state: the handle, its poll thread, and its ``SinkStateMachine`` behind one lock. Every
/// transition's actions (resuming waiters) run after the lock is released, in ``perform(_:)``.
///
/// Everything DeltaKit produces goes through one: a ``KafkaEventSink``'s events and a source's dead letters
/// (``RawMessageSink``). So every message is awaited until the broker acknowledged it, a full local queue suspends
/// the sender (never fails it), and the first failed delivery stops the producer.
final class SinkCore: Sendable {
    typealias Machine = SinkStateMachine<CheckedContinuation<Void, Never>, CheckedContinuation<SendOutcome, Never>>
    /// What a send's caller gets once every message it produced has a report.
    typealias SendOutcome = (error: DeltaKitError?, receipt: EventReceipt)

    /// How many items a send encodes before producing them: enough to keep many messages in flight, few enough
    /// that the chunk's buffer stays small.
    static let chunkSize = 256

    /// How a producer names itself and its messages in errors and logs.
    struct Wording: Sendable {
        /// The producer, e.g. `the Kafka sink for 'orders'`.
        var name: String
        /// One message, e.g. `event`.
        var message: String
        /// What to do once it stopped after a failure.
        var recovery: String
    }

    let handle: RdKafkaHandle
    private let topic: String
    private let wording: Wording
    private let shutdownTimeout: Duration
    private let logger: Logger
    private let pollLoop: Mutex<PollLoop?> = Mutex(nil)
    private let metrics: SinkMetrics?
    private let machine = Mutex(Machine())
    /// Set once the producer failed or closed: the cheap check before each message.
    private let stopped = Atomic<Bool>(false)

    /// Starts polling `handle` on a thread of its own, named `threadName`.
    init(
        handle: RdKafkaHandle,
        topic: String,
        wording: Wording,
        shutdownTimeout: Duration,
        logger: Logger,
        metrics: SinkMetrics?,
        threadName: String
    ) {
        self.handle = handle
        self.topic = topic
        self.wording = wording
        self.shutdownTimeout = shutdownTimeout
        self.logger = logger
        self.metrics = metrics
        let loop = PollLoop(name: threadName) { [weak self] in self?.pollOnce() }
        pollLoop.withLock { $0 = loop }
        handle.callbacks.onError { [weak self] error in self?.clientError(error) }
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
                    "\(wording.name) stopped after an earlier failure (\(failure.message)); \(wording.recovery)",
                underlying: failure
            )
        }
        if closed { throw DeltaKitError(code: .closed, message: "\(wording.name) is closed") }
    }

    // MARK: Sends

    /// Sends the messages `encode` appends for each of the items `0..<count`, in order, keeping many in flight,
    /// and returns once every one has a report: with, per partition, the highest offset acknowledged.
    ///
    /// Items are encoded a chunk at a time (``chunkSize``), then the chunk's messages produced; while librdkafka's
    /// queue is full the caller waits for the next poll. The first failure — an item that cannot be encoded, a
    /// message librdkafka refuses, a failed delivery — ends the send: the messages enqueued before it are still
    /// awaited, the rest are not produced, and it is thrown.
    /// `immediate`: the caller waits for nothing but these reports, so what lingers of the send is sent as soon as
    /// its last message is enqueued rather than after `linger.ms` (``SinkStateMachine/seal(_:waiter:immediate:)``).
    func send(
        count: Int,
        immediate: Bool = false,
        encode: (Int, inout OutgoingMessages) throws -> Void
    ) async throws -> EventReceipt {
        try checkOpen()
        if count == 0 { return EventReceipt() }
        let batch = DeliveryBatch(core: self, id: machine.withLock { $0.startSend() })
        var messages = OutgoingMessages()
        var failure: (any Error)?
        var start = 0
        while start < count, failure == nil {
            let end = min(start + Self.chunkSize, count)
            messages.removeAll()
            var encodingFailure: (any Error)?
            do {
                for index in start..<end { try encode(index, &messages) }
            } catch {
                encodingFailure = error  // the messages before it are still produced
            }
            failure = await produce(messages, for: batch) ?? encodingFailure
            start = end
        }
        let (deliveryError, receipt) = await withCheckedContinuation {
            (continuation: CheckedContinuation<SendOutcome, Never>) in
            perform(machine.withLock { $0.seal(batch.id, waiter: continuation, immediate: immediate) })
            // The poll thread may wait in rd_kafka_poll for up to its timeout: make it return and see the send.
            if immediate { handle.wakePoll() }
        }
        if let deliveryError { throw deliveryError }
        if let failure { throw failure }
        return receipt
    }

    /// Produces `messages` for `batch` in order, each reserved with the state machine before it is produced (its
    /// report may arrive at once); returns the failure that stopped it, if one did.
    private func produce(_ messages: OutgoingMessages, for batch: DeliveryBatch) async -> (any Error)? {
        machine.withLock { $0.reserve(messages.count, for: batch.id) }
        var enqueued = 0
        defer {
            if enqueued > 0 { metrics?.sent.increment(by: Int64(enqueued)) }
            perform(machine.withLock { $0.release(messages.count - enqueued, for: batch.id) })
        }
        // The topic's handle once for the chunk, not looked up by name for each message.
        let topicHandle: RdKafkaHandle.TopicPointer
        do {
            topicHandle = try handle.topic(topic)
        } catch {
            return error
        }
        while enqueued < messages.count {
            let result: RdKafkaHandle.ProduceResult
            do {
                if stopped.load(ordering: .relaxed) { try checkOpen() }
                result = messages.produce(enqueued, topic: topicHandle, on: handle, receiver: batch)
            } catch {
                return error
            }
            switch result {
            case .enqueued:
                enqueued += 1
            case .queueFull:
                await waitForQueueSpace()
            case .failed(let error):
                return fail(
                    DeltaKitError(
                        code: error.isFatal ? .closed : .deliveryFailed,
                        message:
                            "cannot enqueue the \(wording.message) for key \(messages.keyText(enqueued)) on topic '\(topic)': \(error.message)",
                        underlying: error
                    )
                )
            }
        }
        return nil
    }

    /// Called on the poll thread for every delivery report of `batch`.
    func delivered(_ outcome: DeliveryOutcome, for batch: DeliveryBatch) {
        var failure: DeltaKitError?
        if let error = outcome.error {
            metrics?.failed.increment()
            failure = DeltaKitError(
                code: .deliveryFailed,
                message:
                    "the \(wording.message) for key \(outcome.key ?? "?") on '\(topic)' was not acknowledged: \(error.message)",
                underlying: error
            )
            stopped.store(true, ordering: .relaxed)
        } else if let metrics {
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
        if first, let failure { logger.error("\(wording.name) stopped: \(failure)") }
        perform(actions)
        // Waiters are held until librdkafka's flush returns: make it return now (this runs on the poll thread).
        if held { handle.yield() }
    }

    /// Records the first failure; returns the error to throw.
    private func fail(_ error: DeltaKitError) -> DeltaKitError {
        stopped.store(true, ordering: .relaxed)
        if machine.withLock({ $0.fail(error) }) { logger.error("\(wording.name) stopped: \(error)") }
        return error
    }

    /// librdkafka client-level errors: fatal ones stop the producer; others are logged (librdkafka retries them).
    private func clientError(_ error: KafkaError) {
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
    private func waitForQueueSpace() async {
        await withCheckedContinuation { continuation in
            machine.withLock { $0.waitForQueueSpace(waiter: continuation) }
        }
    }

    /// Waits until no delivery is outstanding; `false` if `timeout` passed first (the outstanding messages are
    /// then purged, and their failure reports end the wait).
    private func waitUntilIdle(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    self.perform(self.machine.withLock { $0.waitUntilIdle(waiter: continuation) })
                }
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

    /// Stops accepting messages, waits up to the shutdown timeout for outstanding deliveries, purges (and reports
    /// as failed) any still pending after that, and stops the poll thread.
    ///
    /// - Throws: `deliveryFailed` when messages had to be purged.
    func close() async throws {
        stopped.store(true, ordering: .relaxed)
        guard machine.withLock({ $0.close() }) else { return }
        let clean = await waitUntilIdle(timeout: shutdownTimeout)
        await shutdown()
        if !clean {
            throw DeltaKitError(
                code: .deliveryFailed,
                message:
                    "closing \(wording.name): \(wording.message)s were still unacknowledged after \(shutdownTimeout) and were purged; their senders got the error",
                underlying: failure
            )
        }
    }

    /// Stops the poll thread.
    func shutdown() async {
        let loop = pollLoop.withLock { $0.take() }
        await loop?.stop()
    }

    /// The producer was dropped without `close()`: stop polling (outstanding messages are lost with the handle).
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
