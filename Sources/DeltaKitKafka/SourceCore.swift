import DeltaKit
import Logging
import Metrics
import NIOCore
import Synchronization

/// A source's shared state, driven by its poll thread.
final class SourceCore<Record: ChangeRecord>: Sendable {
    let handle: RdKafkaHandle
    let topic: String
    let hasGroup: Bool
    let bufferSize: Int
    let stopWhenCaughtUp: Bool
    let logger: Logger
    let onMalformed: (@Sendable (MalformedMessage) -> Void)?
    let onSourceEvent: (@Sendable (KafkaSourceEvent) -> Void)?
    let deadLetter: DeadLetterProducer?
    let deadLetterTopic: String?
    let pollLoop = Mutex<PollLoop?>(nil)
    let consumed: Counter
    let malformed: Counter

    /// The hand-off from the poll thread to the application: swift-nio's back-pressured sequence, one element per
    /// poll (up to ``pollBatchLimit`` items), so that the hand-off's cost is paid per poll, not per message.
    /// Its watermarks — `bufferSize` in polls' worth of items, and half that — decide when the poll thread stops
    /// taking messages from librdkafka (or, in a group, pauses the partitions) and when it resumes
    /// (``SourceDemand``); `bufferSize` also bounds the items waiting, counted one by one.
    typealias Items = NIOAsyncSequenceProducer<
        [SourceItem<Record>], NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, SourceDemand
    >
    let items: Items
    let feed: Items.Source
    let demand = SourceDemand()
    /// The items can be read by one reader (``makeReader()``).
    let readerTaken = Atomic<Bool>(false)

    struct State {
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
    let state = Mutex(State())
    /// Touched only by the poll thread: partition ends seen, and the back-pressure state — the demand epoch at
    /// the yield that was told to stop (`nil` while the application wants more), whether the partitions are
    /// paused (in a group), and since when the reader has been behind.
    let pollState = Mutex<
        (eof: Set<Int32>, markerPending: Bool, stoppedAt: Int?, paused: Bool, stalledSince: ContinuousClock.Instant?)
    >(([], false, nil, false, nil))
    /// When the poll thread last asked for the topic's partitions (no group).
    let lastPartitionRefresh = Mutex<ContinuousClock.Instant>(.now)
    /// The connection's health and the last offset seen per partition, for ``KafkaSourceEvent``s.
    let health = Mutex<(troubled: Bool, lastOffsets: [Int32: Int64])>((false, [:]))
    /// Whether a probe thread is watching for the cluster to come back (see `probeUntilReachable`).
    let probing = Atomic<Bool>(false)
    /// The cluster's properties, for the probe's short-lived consumer.
    let probeProperties: [(String, String)]
    /// The cluster's own properties (for the continuity check's consumer).
    let kafkaProperties: [(String, String)]
    /// Where a partition starts when this source has delivered nothing of it yet (no group).
    let startOffsets: [Int32: Int64]
    let startPosition: KafkaEventSource<Record>.Configuration.StartPosition
    let partitionRefreshInterval: Duration
    /// Without a group, losing every broker makes the source hold back every message until the continuity check
    /// (`verifyContinuity(unlessProblemsSince:)`) has shown that the broker still holds the same log: set on the
    /// error, cleared once the partitions are re-positioned after the last delivered message. Read by the poll thread
    /// per message.
    let verifying = Atomic<Bool>(false)
    /// How many connection problems were reported (no group): a continuity check counts only if none came during it.
    let problems = Atomic<Int>(0)
    /// The continuity check found another log: the events ended with `incompatibleStore`, nothing more is read.
    let diverged = Atomic<Bool>(false)
    /// Per partition, the last message handed to the application (updated once per poll).
    let delivered = Mutex<[Int32: MessageFingerprint]>([:])

    init(
        handle: RdKafkaHandle,
        configuration: KafkaEventSource<Record>.Configuration,
        logger: Logger,
        onMalformed: (@Sendable (MalformedMessage) -> Void)?,
        onSourceEvent: (@Sendable (KafkaSourceEvent) -> Void)?,
        deadLetter: DeadLetterProducer?,
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
        self.feed = produced.source
        self.stopWhenCaughtUp = configuration.stopWhenCaughtUp
        self.logger = logger
        self.onMalformed = onMalformed
        self.onSourceEvent = onSourceEvent
        self.kafkaProperties = configuration.kafka.properties
        self.startOffsets = configuration.startOffsets
        self.startPosition = configuration.startPosition
        self.partitionRefreshInterval = configuration.partitionRefreshInterval
        self.probeProperties =
            configuration.kafka.properties + [
                ("group.id", "deltakit-probe"), ("enable.auto.commit", "false"), ("enable.partition.eof", "true"),
            ]
        self.deadLetter = deadLetter
        if case .deadLetter(let t) = configuration.malformedPolicy {
            deadLetterTopic = t
        } else {
            deadLetterTopic = nil
        }
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
}
