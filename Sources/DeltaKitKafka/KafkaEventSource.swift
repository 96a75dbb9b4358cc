public import DeltaKit
public import Logging
public import Metrics
public import ServiceLifecycle

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
    let core: SourceCore<Record>
    /// The topic read.
    public let topic: String
    /// The configuration's ``Configuration/startOffsets`` (for the materializer's check against its store).
    let startOffsets: [Int32: Int64]
    /// Whether the source reads in a consumer group.
    let hasGroup: Bool
    /// The cluster it reads from (for the materializer's continuity check).
    let kafka: KafkaConfiguration

    /// Connects, checks that the topic exists, and joins the group or assigns the partitions; reading starts
    /// with ``run()`` or the first reader of ``events``.
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

    /// Stops taking messages, without waiting (for a graceful-shutdown handler): the reader gets what is buffered,
    /// then the end of the events; ``close()`` then commits and closes the consumer.
    func stopReading() { core.stopReading() }

    /// Reads from the cluster until graceful shutdown (or cancellation), then ``close()``s. Reading starts here
    /// or with the first reader of ``events``, whichever comes first.
    public func run() async throws {
        core.startPolling()
        try? await gracefulShutdown()
        try await close()
    }

    /// How far `next` (the next offset to read) is behind the partition's end, as librdkafka last saw the end
    /// in a fetch response; `nil` before the first fetch. A broker that reports wrong end offsets makes this wrong.
    func lag(partition: Int32, next: Int64) -> Int64? {
        core.handle.cachedHighWatermark(topic: topic, partition: partition).map { max(0, $0 - next) }
    }

    /// The most events ever buffered ahead of the application, and how often back-pressure engaged (partitions
    /// paused, or the poll thread stopped taking) — for tests and tooling.
    package var backPressureStatistics: (peakBuffered: Int, engaged: Int, released: Int, paused: Int) {
        core.backPressureStatistics
    }

    /// Committed offsets of this source's group for `topic`, per partition (for tests and tooling).
    package func committedOffsets() async -> [Int32: Int64] { await core.committedOffsets() }
}
