public import DeltaKit
import Foundation
public import Logging
public import Metrics
import NIOCore
public import ServiceLifecycle
import Synchronization

/// Reads change events from a Kafka topic: an `AsyncSequence` of decoded events with their partition and
/// offset, at-least-once.
///
/// - With a consumer group (``Configuration/groupID``), an offset is committed only after the application
///   calls ``acknowledge(_:)`` for that event. ``close()`` commits and leaves the group.
/// - Back-pressure: events reach the application through swift-nio's `NIOAsyncSequenceProducer`, in batches of
///   one poll. Once ``Configuration/bufferSize`` events wait (or the sequence's high watermark is reached), the
///   source stops taking messages from librdkafka until the application drained half of it (librdkafka's own
///   prefetch queue is bounded by `queued.max.messages.kbytes`), which avoids re-fetching on resume. A source in a
///   group whose application stays behind for more than a second pauses its partitions instead and keeps polling,
///   so that the group's rebalances are served and the member is never evicted.
/// - One reader: ``events`` (or a materializer) reads a source once; a second reader gets an error.
/// - A malformed message never ends the stream and never reaches state: it is reported with topic,
///   partition, offset and the decoding error, then skipped or forwarded to a dead-letter topic. Malformed also
///   covers a JSON object that repeats a name and a message whose Kafka key is not its record's key as
///   ``KafkaEventSink`` writes it (a message without a key is accepted; `Documentation/semantics.md`).
/// - "Caught up" is decided by partition EOF on every assigned partition, never from end offsets.
///
/// ```swift
/// let source = try await KafkaEventSource<User>(configuration: .init(topic: "user-events"))
/// for try await consumed in source.events {
///     try await store.apply(consumed.event)
///     source.acknowledge(consumed)
/// }
/// ```
public final class KafkaEventSource<Record: ChangeRecord>: Service {
    private let core: SourceCore<Record>
    /// The topic read.
    public let topic: String
    /// The configuration's ``Configuration/startOffsets`` (for the materializer's check against its store).
    package let startOffsets: [Int32: Int64]
    /// Whether the source reads in a consumer group.
    package let hasGroup: Bool
    /// The cluster it reads from (for the materializer's continuity check).
    package let kafka: KafkaConfiguration

    /// Connects, checks that the topic exists, and starts reading.
    ///
    /// - Parameters:
    ///   - configuration: Consumer settings.
    ///   - logger: Receives librdkafka's logs and malformed-message reports.
    ///   - onMalformed: Called for each malformed message before it is skipped or dead-lettered. Default: `nil`.
    ///   - onSourceEvent: Called (on the poll thread) when the source loses or regains the cluster, or sees a
    ///     partition's offsets go back; for applications that show it. Default: `nil`.
    ///   - metricsFactory: Where the source's metrics go. Default: `MetricsSystem.factory`.
    /// - Throws: `DeltaKitError` — `connectionFailed` naming the
    ///   servers when no broker answers, `invalidConfiguration` for a bad
    ///   property or a topic that does not exist (then with `underlying` a
    ///   ``KafkaError`` of code ``KafkaError/Code/unknownTopic``).
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "deltakit.kafka.source"),
        onMalformed: (@Sendable (MalformedMessage) -> Void)? = nil,
        onSourceEvent: (@Sendable (KafkaSourceEvent) -> Void)? = nil,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) async throws {
        let handle = try RdKafkaHandle.client(.consumer, configuration, logger: logger)
        let timeout = configuration.kafka.connectTimeout.int32Milliseconds(minimum: 100)
        let topic = configuration.topic
        let partitions: [Int32]?
        do {
            partitions = try await BlockingCalls.run {
                try handle.partitions(of: topic, timeoutMs: timeout)
            }
        } catch let error as KafkaError {
            handle.noteQueuedErrorsAfterFailedConnect()
            throw DeltaKitError.kafkaUnreachable(configuration.kafka, error, callbacks: handle.callbacks)
        }
        guard let partitions, !partitions.isEmpty else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "topic '\(topic)' does not exist on \(configuration.kafka.serversDescription); produce to it first or create it with KafkaTopicAdmin.ensureTopic",
                underlying: RdKafka.error(.unknownTopic)
            )
        }
        var deadLetter: RawMessageSink?
        if case .deadLetter(let dlqTopic) = configuration.malformedPolicy {
            deadLetter = try RawMessageSink(kafka: configuration.kafka, topic: dlqTopic, logger: logger)
        }
        if configuration.groupID != nil {
            try handle.subscribe([topic])
        } else {
            try handle.assign(
                topic: topic,
                partitions: partitions.filter { configuration.initialPartitions?.contains($0) ?? true },
                offset: configuration.startPosition == .earliest ? -2 : -1,
                overrides: configuration.startOffsets
            )
        }
        self.topic = topic
        self.startOffsets = configuration.startOffsets
        self.hasGroup = configuration.groupID != nil
        self.kafka = configuration.kafka
        self.core = SourceCore(
            handle: handle,
            configuration: configuration,
            logger: logger,
            onMalformed: onMalformed,
            onSourceEvent: onSourceEvent,
            deadLetter: deadLetter,
            metricsFactory: metricsFactory
        )
        handle.callbacks.onError { [weak core] error in core?.clientError(error) }
    }

    deinit { core.abandon() }

    /// The events, in per-partition order. A source's events are read by one iterator: a second one (another
    /// task, or a second loop) gets an error instead of a share of them. Leaving the loop or cancelling its task
    /// ends the events; ``close()`` the source then.
    public var events: KafkaEventSequence<Record> { KafkaEventSequence(core: core) }

    /// Marks `event` as done: its offset (+1) is stored and committed by the next auto-commit or ``close()``.
    /// Without a group this does nothing.
    public func acknowledge(_ event: KafkaConsumedEvent<Record>) {
        core.acknowledge(topic: event.topic, partition: event.partition, offset: event.offset)
    }

    /// `true` once every assigned partition reached its end and the application has taken every event
    /// before that point.
    public var isCaughtUp: Bool { core.isCaughtUp }

    /// Waits until ``isCaughtUp`` becomes true (now or later).
    public func waitUntilCaughtUp() async { await core.waitUntilCaughtUp() }

    /// Commits every acknowledged offset now, instead of at the next auto-commit (every 5 s).
    /// Without a group this does nothing.
    public func commit() async throws { try await core.commit() }

    /// Stops reading, commits acknowledged offsets, leaves the group and stops the poll thread.
    /// The event sequence then ends.
    public func close() async throws { try await core.close() }

    /// Runs until graceful shutdown (or cancellation), then ``close()``s.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }

    /// The events in batches: each waits for at least one event, then takes every event already handed over, up
    /// to `limit` — what a materializer applies in one step. Malformed messages are handled as by ``events``
    /// (reported, skipped or dead-lettered) and advance ``SourceBatch/nextOffsets`` like events do. Like
    /// ``events``, read by one iterator.
    ///
    /// When a batch ends at the caught-up point, ``SourceBatch/reachesCaughtUp`` is set and the caller calls
    /// ``markCaughtUp()`` once the batch is applied, so that ``isCaughtUp`` never runs ahead of the state.
    package func batches(limit: Int) -> SourceBatches<Record> { SourceBatches(core: core, limit: max(1, limit)) }

    /// How far `next` (the next offset to read) is behind the partition's end, as librdkafka last saw the end
    /// in a fetch response; `nil` before the first fetch. A broker that reports wrong end offsets makes this wrong.
    package func lag(partition: Int32, next: Int64) -> Int64? {
        core.handle.cachedHighWatermark(topic: topic, partition: partition).map { max(0, $0 - next) }
    }

    /// The most events ever buffered ahead of the application, and how often back-pressure engaged (partitions
    /// paused, or the poll thread stopped taking) — for tests and tooling.
    package var backPressureStatistics: (peakBuffered: Int, engaged: Int, released: Int, paused: Int) {
        core.backPressureStatistics
    }

    /// Acknowledges a batch once it is applied: its events and the malformed messages it skipped (one offset
    /// stored per partition: the batch's ``SourceBatch/nextOffsets``).
    package func acknowledge(_ batch: SourceBatch<Record>) {
        for (partition, next) in batch.nextOffsets {
            core.acknowledge(topic: topic, partition: partition, offset: next - 1)
        }
    }

    /// How long a source in a group stops taking messages for a reader that is behind before it pauses its
    /// partitions to keep serving the group (a rebalance waits at most this long for the member).
    package static var groupStallBeforePause: Duration { .seconds(1) }

    /// Marks the source caught up (after applying a batch that ``SourceBatch/reachesCaughtUp``).
    package func markCaughtUp() { core.markCaughtUp() }

    /// Committed offsets of this source's group for `topic`, per partition (for tests and tooling).
    package func committedOffsets() async -> [Int32: Int64] { await core.committedOffsets() }
}

/// The events of a ``KafkaEventSource``.
public struct KafkaEventSequence<Record: ChangeRecord>: AsyncSequence, Sendable {
    public typealias Element = KafkaConsumedEvent<Record>
    let core: SourceCore<Record>

    public func makeAsyncIterator() -> Iterator { Iterator(reader: core.makeReader()) }

    /// Iterates events; malformed messages and caught-up markers are handled inside.
    public struct Iterator: AsyncIteratorProtocol {
        var reader: Result<SourceReader<Record>, DeltaKitError>

        public mutating func next() async throws -> KafkaConsumedEvent<Record>? {
            guard case .success(var current) = reader else {
                _ = try reader.get()
                return nil
            }
            defer { reader = .success(current) }
            let core = current.core
            while true {
                guard let item = await current.next() else { return nil }
                core.handedOver(1)
                switch item {
                case .event(let event):
                    core.consumed.increment()
                    return event
                case .malformed(let message):
                    try await core.handleMalformed(message)
                case .caughtUp:
                    core.markCaughtUp()
                    if core.stopWhenCaughtUp { return nil }
                case .failure(let error):
                    throw error
                }
            }
        }
    }
}

/// The batches of a source (``KafkaEventSource/batches(limit:)``).
package struct SourceBatches<Record: ChangeRecord>: AsyncSequence, Sendable {
    package typealias Element = SourceBatch<Record>
    let core: SourceCore<Record>
    let limit: Int

    package func makeAsyncIterator() -> Iterator { Iterator(reader: core.makeReader(), limit: limit) }

    /// Builds each batch from what the producer side handed over.
    package struct Iterator: AsyncIteratorProtocol {
        var reader: Result<SourceReader<Record>, DeltaKitError>
        let limit: Int

        package mutating func next() async throws -> SourceBatch<Record>? {
            guard case .success(var current) = reader else {
                _ = try reader.get()
                return nil
            }
            defer { reader = .success(current) }
            let core = current.core
            var batch = SourceBatch<Record>()
            guard var item = await current.next() else { return nil }
            var handed = 0
            defer {
                core.handedOver(handed)
                if !batch.events.isEmpty { core.consumed.increment(by: Int64(batch.events.count)) }
            }
            while true {
                handed += 1
                switch item {
                case .event(let event):
                    batch.events.append(event)
                    batch.advance(event.partition, past: event.offset, fingerprint: event.fingerprint)
                case .malformed(let message):
                    try await core.handleMalformed(message, acknowledging: false)
                    batch.skipped.append((message.partition, message.offset))
                    batch.advance(message.partition, past: message.offset, fingerprint: message.fingerprint)
                case .caughtUp:
                    batch.reachesCaughtUp = true
                    if core.stopWhenCaughtUp { batch.isLast = true }
                    return batch
                case .failure(let error):
                    throw error
                }
                // Take what is already handed over, without waiting for more.
                guard batch.events.count < limit, let next = await current.nextIfAvailable() else { return batch }
                item = next
            }
        }
    }
}

/// The one reader of a source's items: it owns the producer's iterator (which stays in the task that reads) and
/// the rest of the batch it is reading.
package struct SourceReader<Record: ChangeRecord> {
    let core: SourceCore<Record>
    private let iterator: SourceCore<Record>.Items.AsyncIterator
    /// The batch taken from the producer, handed on up to `frontIndex`.
    private var front: [SourceItem<Record>] = []
    private var frontIndex = 0
    /// How many batches this reader took from the producer.
    private var pulled = 0

    init(core: SourceCore<Record>, iterator: SourceCore<Record>.Items.AsyncIterator) {
        self.core = core
        self.iterator = iterator
    }

    /// The next item, waiting for one; `nil` once the source is closed (or the task cancelled).
    mutating func next() async -> SourceItem<Record>? {
        if frontIndex == front.count {
            guard await pullBatch() else { return nil }
        }
        frontIndex += 1
        return front[frontIndex - 1]
    }

    /// The next item already handed over, without waiting for a new one; `nil` when there is none.
    mutating func nextIfAvailable() async -> SourceItem<Record>? {
        if frontIndex == front.count {
            // A batch the poll thread already yielded is buffered: taking it does not wait.
            guard core.yieldedBatches > pulled, await pullBatch() else { return nil }
        }
        frontIndex += 1
        return front[frontIndex - 1]
    }

    /// Replaces the (used up) front with the producer's next batch; `false` at the end.
    private mutating func pullBatch() async -> Bool {
        guard let batch = await iterator.next() else { return false }
        pulled += 1
        front = batch
        frontIndex = 0
        if batch.isEmpty { return await pullBatch() }
        return true
    }
}

enum SourceItem<Record: ChangeRecord>: Sendable {
    case event(KafkaConsumedEvent<Record>)
    case malformed(MalformedMessage)
    case caughtUp
    case failure(DeltaKitError)
}

/// A source's shared state, driven by its poll thread.
final class SourceCore<Record: ChangeRecord>: Sendable {
    let handle: RdKafkaHandle
    private let topic: String
    private let hasGroup: Bool
    private let bufferSize: Int
    let stopWhenCaughtUp: Bool
    private let logger: Logger
    private let onMalformed: (@Sendable (MalformedMessage) -> Void)?
    private let onSourceEvent: (@Sendable (KafkaSourceEvent) -> Void)?
    private let deadLetter: RawMessageSink?
    private let pollLoop = Mutex<PollLoop?>(nil)
    let consumed: Counter
    private let malformed: Counter

    /// The hand-off from the poll thread to the application: swift-nio's back-pressured sequence, one element per
    /// poll (up to ``pollBatchLimit`` items: a per-item hand-off through generic code cost more than decoding).
    /// Its watermarks — `bufferSize` in polls' worth of items, and half that — decide when the poll thread stops
    /// taking messages from librdkafka (or, in a group, pauses the partitions) and when it resumes
    /// (``SourceDemand``); `bufferSize` also bounds the items waiting, counted one by one.
    typealias Items = NIOAsyncSequenceProducer<
        [SourceItem<Record>], NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, SourceDemand
    >
    private let items: Items
    private let handOff: Items.Source
    private let demand = SourceDemand()
    /// The items can be read by one reader (``makeReader()``).
    private let readerTaken = Atomic<Bool>(false)

    private struct State {
        /// Items handed to the producer side, and items the application has taken: their difference is what
        /// waits for the application (the poll thread never takes more than `bufferSize` minus that).
        var yielded = 0
        var handedOver = 0
        /// How many batches (elements of `items`) the poll thread yielded.
        var yieldedBatches = 0
        var closed = false
        /// The most items ever waiting, and how often back-pressure engaged (for tests and tooling).
        var peakBuffered = 0
        var backPressureEngaged = 0
        /// How often demand came back after back-pressure, and how often a group's partitions were paused.
        var backPressureReleased = 0
        var partitionsPaused = 0
        var caughtUp = false
        var caughtUpWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())
    /// Touched only by the poll thread: partition ends seen, and the back-pressure state — the demand epoch at
    /// the yield that was told to stop (`nil` while the application wants more), whether the partitions are
    /// paused (in a group), and since when the reader has been behind.
    private let pollState = Mutex<
        (eof: Set<Int32>, markerPending: Bool, stoppedAt: Int?, paused: Bool, stalledSince: ContinuousClock.Instant?)
    >(([], false, nil, false, nil))
    /// When the poll thread last asked for the topic's partitions (no group).
    private let lastPartitionRefresh = Mutex<ContinuousClock.Instant>(.now)
    /// The connection's health and the last offset seen per partition, for ``KafkaSourceEvent``s.
    private let health = Mutex<(troubled: Bool, lastOffsets: [Int32: Int64])>((false, [:]))
    /// Whether a probe thread is watching for the cluster to come back (see `probeUntilReachable`).
    private let probing = Atomic<Bool>(false)
    /// The settings of the probe's short-lived consumer.
    private let probe: ProbeSettings
    /// The cluster (for the continuity check's consumer).
    private let kafka: KafkaConfiguration
    /// Where a partition starts when this source has delivered nothing of it yet (no group).
    private let startOffsets: [Int32: Int64]
    private let startPosition: KafkaEventSource<Record>.Configuration.StartPosition
    private let partitionRefreshInterval: Duration
    /// Without a group, losing every broker makes the source hold back every message until the continuity check
    /// (`verifyContinuity(unlessProblemsSince:)`) has shown that the broker still holds the same log: set on the
    /// error, cleared once the partitions are re-positioned after the last delivered message. Read by the poll thread
    /// per message.
    private let verifying = Atomic<Bool>(false)
    /// How many connection problems were reported (no group): a continuity check counts only if none came during it.
    private let problems = Atomic<Int>(0)
    /// The continuity check found another log: the events ended with `incompatibleStore`, nothing more is read.
    private let diverged = Atomic<Bool>(false)
    /// Per partition, the last message handed to the application (updated once per poll).
    private let delivered = Mutex<[Int32: MessageFingerprint]>([:])

    init(
        handle: RdKafkaHandle,
        configuration: KafkaEventSource<Record>.Configuration,
        logger: Logger,
        onMalformed: (@Sendable (MalformedMessage) -> Void)?,
        onSourceEvent: (@Sendable (KafkaSourceEvent) -> Void)?,
        deadLetter: RawMessageSink?,
        metricsFactory: any MetricsFactory
    ) {
        self.handle = handle
        self.topic = configuration.topic
        self.hasGroup = configuration.groupID != nil
        self.bufferSize = max(1, configuration.bufferSize)
        let high = max(1, (bufferSize + Self.pollBatchLimit - 1) / Self.pollBatchLimit)
        let produced = Items.makeSequence(
            elementType: [SourceItem<Record>].self,
            backPressureStrategy: .init(lowWatermark: max(1, high / 2), highWatermark: high),
            finishOnDeinit: true,
            delegate: demand
        )
        self.items = produced.sequence
        self.handOff = produced.source
        self.stopWhenCaughtUp = configuration.stopWhenCaughtUp
        self.logger = logger
        self.onMalformed = onMalformed
        self.onSourceEvent = onSourceEvent
        self.kafka = configuration.kafka
        self.startOffsets = configuration.startOffsets
        self.startPosition = configuration.startPosition
        self.partitionRefreshInterval = configuration.partitionRefreshInterval
        self.probe = ProbeSettings(kafka: configuration.kafka, groupID: "deltakit-probe")
        self.deadLetter = deadLetter
        let dimensions = [(KafkaTelemetry.Dimension.topic, configuration.topic)]
        consumed = Counter(
            label: KafkaTelemetry.Metric.eventsConsumed,
            dimensions: dimensions,
            factory: metricsFactory
        )
        malformed = Counter(
            label: KafkaTelemetry.Metric.messagesMalformed,
            dimensions: dimensions,
            factory: metricsFactory
        )
        let loop = PollLoop(name: "deltakit-kafka-consumer") { [weak self] in self?.pollOnce() }
        pollLoop.withLock { $0 = loop }
    }

    // MARK: Poll thread

    private func pollOnce() {
        if !hasGroup { refreshPartitionsIfDue() }
        let (wanted, paused, released) = pollState.withLock { poll in
            var released = false
            if let stoppedAt = poll.stoppedAt, demand.wantsMore(since: stoppedAt) {
                poll.stoppedAt = nil
                released = true
            }
            return (poll.stoppedAt == nil && !demand.hasEnded, poll.paused, released)
        }
        if released { state.withLock { $0.backPressureReleased += 1 } }
        // The producer's depth does not count items the reader took but has not handed to the application yet;
        // `room` does, so that no more than `bufferSize` items ever wait.
        let room = bufferSize - waiting
        guard wanted, room > 0 else {
            // The application is behind. The poll thread stops taking messages (librdkafka keeps prefetching, up to
            // queued.max.messages.kbytes) until the reader drained the hand-off to its low watermark. Pausing the
            // partitions instead drops librdkafka's prefetched messages and fetches them again on resume: measured
            // on Tansu, that stall cost a slow store (SQLite) two thirds of its wall time, and half a second per
            // cycle for a slow reader in a group. A group member must keep polling, though — rebalances are served
            // by the poll — so one whose reader stays behind for `groupStallBeforePause` pauses its partitions
            // and polls on.
            let stalledSince = pollState.withLock { poll in
                if poll.stalledSince == nil { poll.stalledSince = .now }
                return poll.stalledSince!
            }
            if !hasGroup || ContinuousClock.now - stalledSince < KafkaEventSource<Record>.groupStallBeforePause {
                demand.waitForDemand(timeout: .milliseconds(100))
                return
            }
            if !paused {
                handle.pause(handle.assignment())
                pollState.withLock { $0.paused = true }
                state.withLock { $0.partitionsPaused += 1 }
            }
            // Paused partitions deliver nothing (librdkafka drops what it prefetched for them); the poll still
            // serves the group (rebalances, errors), and a message that was on its way is kept.
            _ = pollAvailable(upTo: max(1, room))
            return
        }
        pollState.withLock { $0.stalledSince = nil }
        if paused {
            handle.resume(handle.assignment())
            pollState.withLock { $0.paused = false }
        }
        _ = pollAvailable(upTo: room)
    }

    /// How many items wait for the application.
    private var waiting: Int { state.withLock { $0.yielded - $0.handedOver } }

    /// Waits up to 100 ms for a message, then takes what librdkafka already holds, up to `limit` messages
    /// (at most ``pollBatchLimit``), and hands the items to the application as one element of the hand-off.
    /// Returns how many messages were taken.
    private func pollAvailable(upTo limit: Int) -> Int {
        var pending: [SourceItem<Record>] = []
        var taken = 0
        let limit = min(limit, Self.pollBatchLimit)
        let schema = try? Record.schema  // once per poll, not per message
        while taken < limit,
            handle.consumerPoll(timeoutMs: taken == 0 ? 100 : 0, { take($0, schema: schema, into: &pending) }) != nil
        {
            taken += 1
        }
        if !hasGroup { recordDelivered(pending) }
        push(contentsOf: pending)
        return taken
    }

    /// Keeps the last message of each partition among `items` (for the continuity check after a reconnect).
    private func recordDelivered(_ items: [SourceItem<Record>]) {
        var last: [Int32: MessageFingerprint] = [:]
        for item in items {
            switch item {
            case .event(let event): last[event.partition] = event.fingerprint
            case .malformed(let message): last[message.partition] = message.fingerprint
            case .caughtUp, .failure: break
            }
        }
        guard !last.isEmpty else { return }
        delivered.withLock { $0.merge(last) { _, new in new } }
    }

    /// Without a group, every ``KafkaEventSource/Configuration/partitionRefreshInterval`` asks for the topic's
    /// partitions and reads those added since from their beginning (not while a continuity check runs).
    private func refreshPartitionsIfDue() {
        let due = lastPartitionRefresh.withLock { last in
            guard ContinuousClock.now - last >= partitionRefreshInterval else { return false }
            last = .now
            return true
        }
        guard due, !verifying.load(ordering: .relaxed),
            let partitions = try? handle.partitions(of: topic, timeoutMs: 1_000)
        else { return }
        let assigned = Set(handle.assignment().filter { $0.topic == topic }.map(\.partition))
        let added = partitions.filter { !assigned.contains($0) }
        guard !assigned.isEmpty, !added.isEmpty else { return }
        do {
            try handle.addToAssignment(topic: topic, partitions: added, offset: -2)
            pollState.withLock { $0.markerPending = false }
            logger.info(
                "reading partitions added to '\(topic)' from their beginning",
                metadata: [KafkaTelemetry.Key.partition: "\(added.map(String.init).joined(separator: ","))"]
            )
        } catch {
            logger.warning("cannot read partitions \(added) added to '\(topic)': \(error); retrying")
            lastPartitionRefresh.withLock { $0 = .now - partitionRefreshInterval }
        }
    }

    /// The most messages the poll thread takes from librdkafka before handing them over.
    static var pollBatchLimit: Int { 512 }

    /// The delete a tombstone (a null-value message, see `KafkaEventSink.Configuration.sendsTombstones`) stands
    /// for: its key, at the order and timestamp of its headers. A tombstone without the order header cannot be
    /// placed among the key's events, so it is malformed (reported and skipped, never applied).
    static func tombstoneEvent(_ message: RdKafkaMessage) throws -> ChangeEvent<Record> {
        typealias Sink = KafkaEventSink<Record>.Configuration
        guard
            let orderText = message.tombstoneHeaders[Sink.tombstoneOrderHeader].map({
                String(decoding: $0, as: UTF8.self)
            }),
            let order = Int64(orderText)
        else {
            throw ChangeEventDecodingError(
                field: ChangeEventField.order,
                value: nil,
                reason:
                    "a tombstone (null value) without a numeric '\(Sink.tombstoneOrderHeader)' header; DeltaKit cannot place it among the key's events, so it never changes state"
            )
        }
        guard let keyBytes = message.key else {
            throw ChangeEventDecodingError(field: Record.keyField, value: nil, reason: "a tombstone without a key")
        }
        let timestamp =
            message.tombstoneHeaders[Sink.tombstoneTimestampHeader]
            .flatMap { EventTimestamp.parse(String(decoding: $0, as: UTF8.self)) } ?? Date(timeIntervalSince1970: 0)
        return .delete(key: try ChangeEvent<Record>.key(fromKeyBytes: keyBytes), order: order, timestamp: timestamp)
    }

    /// No key, or the key of `event`'s record (without a closure: this runs for every message).
    private static func keyAgrees(_ key: UnsafeRawBufferPointer?, _ event: ChangeEvent<Record>) -> Bool {
        guard let key else { return true }
        return event.isKeyed(by: key)
    }

    /// The event in a message with a value: decoded, and refused when the message has a key that is not the
    /// record's (as ``KafkaEventSink`` writes it, ``ChangeEvent/keyBytes``). Kafka keeps order per partition and
    /// the partition follows the message key, so a mis-keyed event can overtake or trail its key's other events
    /// (and log compaction would treat it as another key's latest message). A message without a key is accepted:
    /// other producers may not key, and then the order of a key's events is the producer's responsibility.
    static func keyedEvent(_ message: RdKafkaMessage) throws -> ChangeEvent<Record> {
        let event = try ChangeEvent<Record>(jsonData: message.value ?? [])
        if let key = message.key,
            !key.withUnsafeBytes({ event.isKeyed(by: $0) })
        {
            throw event.misKeyedError(kafkaKey: key)
        }
        return event
    }

    /// Reports a recovery after a connection problem, and offsets that went back (`next`: the offset the
    /// message or partition end says comes next).
    private func observe(partition: Int32, next: Int64, isData: Bool) {
        guard let onSourceEvent else { return }
        let (recovered, wentBack): (Bool, Int64?) = health.withLock { health in
            let recovered = health.troubled
            health.troubled = false
            let expected = health.lastOffsets[partition].map { $0 + 1 }
            // A message at `offset` needs expected <= offset; a partition end at `offset` needs expected <= offset.
            let wentBack = expected.flatMap { $0 > next ? $0 : nil }
            health.lastOffsets[partition] = isData ? next : next - 1
            return (recovered, wentBack)
        }
        if recovered { onSourceEvent(.recovered) }
        if let wentBack {
            onSourceEvent(.offsetsWentBack(topic: topic, partition: partition, expected: wentBack, found: next))
        }
    }

    /// Turns one polled message into an item appended to `pending` (an event decoded in place from
    /// librdkafka's buffer, a malformed message, the caught-up marker), or reports a client error (after handing
    /// over what is pending, to keep the order).
    private func take(
        _ view: RdKafkaMessageView,
        schema: RecordSchema?,
        into pending: inout [SourceItem<Record>]
    ) {
        // A message with a key must carry that key's record (``keyedEvent(_:)``); else the slow path reports it.
        if let value = view.plainValue, let event = try? ChangeEvent<Record>.decodeWire(value, schema: schema),
            Self.keyAgrees(view.key, event)
        {
            // While the continuity check runs, nothing is delivered: the partitions are re-positioned after it.
            if verifying.load(ordering: .relaxed) { return }
            noteData(partition: view.partition, offset: view.offset)
            pending.append(
                .event(
                    KafkaConsumedEvent(
                        event: event,
                        topic: topic,
                        partition: view.partition,
                        offset: view.offset,
                        fingerprint: view.fingerprint
                    )
                )
            )
            return
        }
        let message = view.copy()  // the unusual cases: copied out of librdkafka's buffer
        if message.error != nil {
            push(contentsOf: pending)
            pending.removeAll()
        } else if verifying.load(ordering: .relaxed) {
            return
        }
        if let next = item(from: message) { pending.append(next) }
    }

    /// An ordinary message was read at `offset` of `partition`: the partition is no longer at its end, and
    /// the source events are told about it.
    private func noteData(partition: Int32, offset: Int64) {
        observe(partition: partition, next: offset, isData: true)
        pollState.withLock { poll in
            if !poll.eof.isEmpty { poll.eof.remove(partition) }
            poll.markerPending = false
        }
    }

    private func item(from message: RdKafkaMessage) -> SourceItem<Record>? {
        if message.isPartitionEOF {
            observe(partition: message.partition, next: message.offset, isData: false)
            let assignment = Set(handle.assignment().filter { $0.topic == topic }.map(\.partition))
            let reached: Bool = pollState.withLock { poll in
                poll.eof.insert(message.partition)
                guard !assignment.isEmpty, assignment.isSubset(of: poll.eof), !poll.markerPending else { return false }
                poll.markerPending = true
                return true
            }
            return reached ? .caughtUp : nil
        }
        if let error = message.error {
            clientError(error)
            return nil
        }
        noteData(partition: message.partition, offset: message.offset)
        let fingerprint = message.fingerprint
        do {
            let event =
                if message.value == nil {
                    try Self.tombstoneEvent(message)
                } else {
                    try Self.keyedEvent(message)
                }
            return .event(
                KafkaConsumedEvent(
                    event: event,
                    topic: message.topic,
                    partition: message.partition,
                    offset: message.offset,
                    fingerprint: fingerprint
                )
            )
        } catch {
            let decodingError =
                error as? ChangeEventDecodingError
                ?? ChangeEventDecodingError(field: nil, value: nil, reason: "\(error)")
            return .malformed(
                MalformedMessage(
                    topic: message.topic,
                    partition: message.partition,
                    offset: message.offset,
                    key: message.key,
                    value: message.value,
                    error: decodingError,
                    fingerprint: fingerprint
                )
            )
        }
    }

    private func push(_ item: SourceItem<Record>) { push(contentsOf: [item]) }

    /// Hands `items` to the application in one step. Counted before they are yielded, so that ``markCaughtUp()``
    /// never sees the application level with the poll thread while items are on their way.
    private func push(contentsOf items: [SourceItem<Record>]) {
        guard !items.isEmpty else { return }
        state.withLock { state in
            if items.contains(where: { if case .caughtUp = $0 { false } else { true } }) { state.caughtUp = false }
            state.yielded += items.count
            state.yieldedBatches += 1
            state.peakBuffered = max(state.peakBuffered, state.yielded - state.handedOver)
        }
        let epoch = demand.epoch
        if handOff.yield(items) == .stopProducing {
            let first = pollState.withLock { poll in
                defer { poll.stoppedAt = epoch }
                return poll.stoppedAt == nil
            }
            if first { state.withLock { $0.backPressureEngaged += 1 } }
        }
    }

    /// How many batches the poll thread has handed to the producer side so far.
    var yieldedBatches: Int { state.withLock { $0.yieldedBatches } }

    func clientError(_ error: KafkaError) {
        if error.isFatal {
            push(
                .failure(
                    DeltaKitError(
                        code: .closed,
                        message: "fatal Kafka consumer error: \(error.message)",
                        underlying: error
                    )
                )
            )
        } else {
            logger.warning("Kafka consumer: \(error)")
            // Without a group the source keeps its own positions: hold messages back until the continuity check
            // shows the broker still holds the same log (it may have come back empty, or the topic recreated).
            // Only when every broker was lost: a cluster that comes back from that may hold another log (it lost its
            // data, or the topic was recreated meanwhile). One broker of several going away does not hold reading back.
            if !hasGroup, error.code == .allBrokersDown {
                problems.add(1, ordering: .relaxed)
                verifying.store(true, ordering: .relaxed)
            }
            guard onSourceEvent != nil || verifying.load(ordering: .relaxed) else { return }
            let first = health.withLock { health in
                defer { health.troubled = true }
                return !health.troubled
            }
            if first { onSourceEvent?(.connectionProblem(error.message)) }
            startProbe()
        }
    }

    /// Starts the probe thread unless one runs. A problem reported after a running probe's last look leaves the
    /// source held back (`verifying`): the probe then starts again as it ends, unless the log was found to differ.
    private func startProbe() {
        guard probing.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        let thread = Thread { [self] in
            probeUntilReachable()
            probing.store(false, ordering: .releasing)
            if !hasGroup, verifying.load(ordering: .relaxed), !diverged.load(ordering: .relaxed),
                state.withLock({ !$0.closed })
            {
                startProbe()
            }
        }
        thread.name = "deltakit-kafka-probe"
        thread.start()
    }

    /// While the cluster is unreachable, asks for the topic's metadata every 2 seconds (a retry loop, not a
    /// wait for an event: librdkafka reports failures but not recoveries). Once it answers, reports
    /// ``KafkaSourceEvent/recovered`` and checks that the last message read on each partition is still there:
    /// a broker that lost its data or a recreated topic no longer has it, and a fetch at the next offset would
    /// wait silently (Tansu) or restart the partition from its beginning (Kafka).
    private func probeUntilReachable() {
        var wait = 0.5
        while state.withLock({ !$0.closed }), health.withLock({ $0.troubled }) || verifying.load(ordering: .relaxed) {
            Thread.sleep(forTimeInterval: wait)
            wait = 2
            guard (try? handle.partitions(of: topic, timeoutMs: 2_000)) != nil else { continue }
            if !hasGroup, verifying.load(ordering: .relaxed) {
                // A problem reported while the check ran may hide another change of log: check again.
                let before = problems.load(ordering: .relaxed)
                if verifyContinuity(unlessProblemsSince: before) { return }
                continue
            }
            guard let report = onSourceEvent else { return }
            let lastOffsets: [Int32: Int64]? = health.withLock { health in
                guard health.troubled else { return nil }  // a message already proved it
                health.troubled = false
                return health.lastOffsets
            }
            guard let lastOffsets else { return }
            report(.recovered)
            for (partition, offset) in lastOffsets.sorted(by: { $0.key < $1.key }) where offset >= 0 {
                if !stillHolds(partition: partition, offset: offset) {
                    report(.offsetsWentBack(topic: topic, partition: partition, expected: offset + 1, found: nil))
                }
            }
            return
        }
    }

    /// Without a group, once the cluster answers again: re-reads the last message delivered from each partition.
    /// The same log: every partition is re-positioned right after what was delivered (messages that arrived
    /// meanwhile were held back) and reading goes on. Another log (topic recreated, broker came back empty or
    /// shorter): the events end with `incompatibleStore` — state built from the old log must not be continued
    /// with the new one's offsets.
    /// Returns `false` when a new connection problem was reported while it ran (reading stays held back).
    private func verifyContinuity(unlessProblemsSince before: Int) -> Bool {
        let delivered = self.delivered.withLock { $0 }
        let assigned = handle.assignment().filter { $0.topic == topic }.map(\.partition)
        var expected: [Int32: ExpectedPosition] = [:]
        for partition in assigned {
            if let last = delivered[partition] {
                expected[partition] = ExpectedPosition(next: last.offset + 1, fingerprint: last)
            } else if let start = startOffsets[partition] {
                expected[partition] = ExpectedPosition(next: start, fingerprint: nil)
            }
        }
        let verdicts = TopicContinuity.verify(
            topic: topic,
            expected: expected,
            kafka: kafka,
            logger: logger,
            timeout: .seconds(10)
        )
        let wasTroubled = health.withLock { health in
            defer { health.troubled = false }
            return health.troubled
        }
        if wasTroubled { onSourceEvent?(.recovered) }
        if let changed = TopicContinuity.changes(
            verdicts,
            expected: expected,
            topic: topic,
            had: "this source read up to",
            logger: logger
        ) {
            for partition in changed.partitions.keys.sorted() {
                onSourceEvent?(
                    .offsetsWentBack(
                        topic: topic,
                        partition: partition,
                        expected: expected[partition]!.next,
                        found: nil
                    )
                )
            }
            diverged.store(true, ordering: .relaxed)
            push(
                .failure(
                    DeltaKitError(
                        code: .incompatibleStore,
                        message:
                            "topic '\(topic)' is not the log this source was reading (deleted and recreated, or the broker lost its data): \(changed); state built from the old log cannot continue with the new one — rebuild it from the topic's beginning (KafkaMaterializer rebuildOnIncompatibleTopic: true for a state file; an in-memory state: start again)",
                        underlying: changed
                    )
                )
            )
            return true
        }
        // A problem reported while the check ran: the log may have changed since; the caller checks again.
        guard problems.load(ordering: .relaxed) == before else { return false }
        // The same log: continue right after the last delivered message of each partition.
        var next: [Int32: Int64] = startOffsets
        for (partition, last) in delivered { next[partition] = last.offset + 1 }
        do {
            try handle.assign(
                topic: topic,
                partitions: assigned,
                offset: startPosition == .earliest ? -2 : -1,
                overrides: next
            )
            pollState.withLock { poll in
                poll.eof.removeAll()
                poll.markerPending = false
            }
            verifying.store(false, ordering: .relaxed)
            return true
        } catch {
            push(
                .failure(
                    DeltaKitError(
                        code: .closed,
                        message: "re-positioning the partitions of '\(topic)' after a reconnect failed: \(error)",
                        underlying: error
                    )
                )
            )
            return true
        }
    }

    /// Whether the broker still has the message at `offset` of `partition` (read with a short-lived consumer).
    private func stillHolds(partition: Int32, offset: Int64) -> Bool {
        guard let probe = try? RdKafkaHandle.client(.consumer, self.probe, logger: logger),
            (try? probe.assign(topic: topic, partitions: [partition], offset: offset)) != nil
        else { return true }  // cannot tell: say nothing
        probe.callbacks.onError { _ in }
        for _ in 0..<10 {
            guard let message = probe.consumerPoll(timeoutMs: 500) else { continue }
            if message.error != nil { continue }
            if message.isPartitionEOF { return message.offset > offset }
            return message.offset == offset
        }
        return false
    }

    // MARK: Consumer side

    /// The reader of this source's items; an error for every reader after the first.
    func makeReader() -> Result<SourceReader<Record>, DeltaKitError> {
        guard readerTaken.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else {
            return .failure(
                DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "the events of the KafkaEventSource for '\(topic)' are already read by another task or loop (a source has one reader); create one source per consumer (same group)"
                )
            )
        }
        return .success(SourceReader(core: self, iterator: items.makeAsyncIterator()))
    }

    /// The application took `count` items (events, malformed messages, markers).
    func handedOver(_ count: Int) {
        guard count > 0 else { return }
        state.withLock { $0.handedOver += count }
    }

    /// Reports, dead-letters, and — when `acknowledging` — acknowledges a malformed message. A batch defers the
    /// acknowledgement until the events before it in the batch are applied (at-least-once with a group).
    func handleMalformed(_ message: MalformedMessage, acknowledging: Bool = true) async throws {
        malformed.increment()
        logger.warning(
            "skipping malformed message",
            metadata: [
                KafkaTelemetry.Key.topic: "\(message.topic)", KafkaTelemetry.Key.partition: "\(message.partition)",
                KafkaTelemetry.Key.offset: "\(message.offset)", KafkaTelemetry.Key.error: "\(message.error)",
            ]
        )
        onMalformed?(message)
        if let deadLetter {
            try await deadLetter.send(key: message.key, value: message.value ?? [])
        }
        if acknowledging { acknowledge(topic: message.topic, partition: message.partition, offset: message.offset) }
    }

    func acknowledge(topic: String, partition: Int32, offset: Int64) {
        guard hasGroup else { return }
        if let error = handle.storeOffset(PartitionID(topic: topic, partition: partition), next: offset + 1) {
            logger.debug(
                "offset not stored for \(topic)[\(partition)]@\(offset) (partition no longer assigned?): \(error)"
            )
        }
    }

    var isCaughtUp: Bool { state.withLock { $0.caughtUp } }

    var backPressureStatistics: (peakBuffered: Int, engaged: Int, released: Int, paused: Int) {
        state.withLock { ($0.peakBuffered, $0.backPressureEngaged, $0.backPressureReleased, $0.partitionsPaused) }
    }

    func markCaughtUp() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            // Only if nothing newer arrived behind the marker.
            guard state.handedOver == state.yielded else { return [] }
            state.caughtUp = true
            defer { state.caughtUpWaiters = [] }
            return state.caughtUpWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func waitUntilCaughtUp() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if !state.caughtUp { state.caughtUpWaiters.append(continuation) }
                return state.caughtUp
            }
            if now { continuation.resume() }
        }
    }

    func close() async throws {
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        handOff.finish()  // the reader gets what is buffered, then the end
        if alreadyClosed { return }
        let loop = pollLoop.withLock { $0.take() }
        await loop?.stop()
        let handle = self.handle
        let hasGroup = self.hasGroup
        let error: KafkaError? = try await BlockingCalls.run {
            var first: KafkaError?
            if hasGroup { first = handle.commitStored() }
            let closeError = handle.closeConsumer()
            return first ?? closeError
        }
        // A dead letter purged here failed its own send, which reported it.
        try? await deadLetter?.close()
        if let error {
            throw DeltaKitError(
                code: .rejected,
                message: "closing the Kafka consumer of '\(topic)': \(error.message)",
                underlying: error
            )
        }
    }

    func commit() async throws {
        guard hasGroup else { return }
        let handle = self.handle
        if let error = try await BlockingCalls.run({ handle.commitStored() }) {
            throw DeltaKitError(
                code: .rejected,
                message: "committing offsets of '\(topic)': \(error.message)",
                underlying: error
            )
        }
    }

    func abandon() {
        pollLoop.withLock { $0.take() }?.requestStop()
        handOff.finish()
    }

    func committedOffsets() async -> [Int32: Int64] {
        let handle = self.handle
        let partitions = handle.assignment()
        let result = try? await BlockingCalls.run {
            handle.committed(partitions, timeoutMs: 5000)
        }
        return Dictionary(uniqueKeysWithValues: (result ?? [:]).map { ($0.key.partition, $0.value) })
    }
}
