import DeltaKit
import Logging
import Metrics
import NIOCore
import Synchronization

/// What a ``KafkaEventSource`` shares between its poll thread, its reader and the application: the librdkafka
/// consumer, the hand-off of items, and the state (``machine``). The poll thread starts with the first reader or
/// ``KafkaEventSource/run()``.
final class SourceCore<Record: ChangeRecord>: Sendable {
    let handle: RdKafkaHandle
    let topic: String
    let hasGroup: Bool
    let bufferSize: Int
    let stopWhenCaughtUp: Bool
    let logger: Logger
    let onMalformed: (@Sendable (MalformedMessage) -> Void)?
    let onSourceEvent: (@Sendable (KafkaSourceEvent) -> Void)?
    let deadLetter: RawMessageSink?
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
    let handOff: Items.Source
    let demand = SourceDemand()
    /// The source's state (``SourceStateMachine``): every transition is made under this lock, and its actions
    /// are performed after it (``perform(_:)``).
    typealias Machine = SourceMachine
    let machine: Mutex<Machine>
    /// The settings of the probe's short-lived consumer.
    let probe: ProbeSettings
    /// The cluster (for the continuity check's consumer).
    let kafka: KafkaConfiguration
    /// Where a partition starts when this source has delivered nothing of it yet (no group).
    let startOffsets: [Int32: Int64]
    let startPosition: KafkaEventSource<Record>.Configuration.StartPosition
    /// The record type's row layout: with one, messages are decoded into rows (``RowChunk``), and a record is
    /// built only where the application asks for an event (``KafkaEventSource/events``).
    let rowLayout: RowLayout?
    /// Whether every row's fingerprint is computed, or only the last of each partition in a batch taken from
    /// librdkafka (``KafkaEventSource/Configuration/fingerprintsEveryMessage``).
    let fingerprintsEveryMessage: Bool

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
        self.rowLayout = RowLayout.of(Record.self)
        self.fingerprintsEveryMessage = configuration.fingerprintsEveryMessage
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
        let settings = Machine.Settings(
            hasGroup: hasGroup,
            bufferSize: bufferSize,
            reportsSourceEvents: onSourceEvent != nil,
            partitionRefreshInterval: configuration.partitionRefreshInterval,
            groupStallBeforePause: configuration.groupStallBeforePause
        )
        machine = Mutex(Machine(settings: settings, now: .now))
    }

    /// Performs what a transition of ``machine`` returned (after its lock is released).
    func perform(_ actions: [Machine.Action]) {
        for action in actions {
            switch action {
            case .resume(let waiter): waiter.resume()
            case .report(let event): onSourceEvent?(event)
            case .startProbe: startProbe()
            }
        }
    }

    /// Starts the poll thread, unless it runs already or reading was stopped: the first reader or `run()` does.
    ///
    /// Whether the poll thread reads messages' headers for trace contexts is decided here, from the instrument
    /// active in the calling task (bootstrapped, or bound by an enclosing `withTracer`): without one, nothing would
    /// use the contexts, and librdkafka allocates to parse a message's headers even when there are none.
    func startPolling() {
        let readingTraceHeaders = TraceHeaders.instrumentActive
        machine.withLock { machine in
            _ = machine.startPolling {
                PollLoop(name: "deltakit-kafka-consumer") { [weak self] in
                    self?.pollOnce(readingTraceHeaders: readingTraceHeaders)
                }
            }
        }
    }

    // MARK: Consumer side

    /// The reader of this source's items; an error for every reader after the first.
    func makeReader() -> Result<SourceReader<Record>, DeltaKitError> {
        guard machine.withLock({ $0.takeReader() }) else {
            return .failure(
                DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "the events of the KafkaEventSource for '\(topic)' are already read by another task or loop (a source has one reader); create one source per consumer (same group)"
                )
            )
        }
        let reader = SourceReader(core: self, iterator: items.makeAsyncIterator())
        startPolling()
        return .success(reader)
    }

    /// The application took `count` items (events, malformed messages, markers).
    func handedOver(_ count: Int) {
        guard count > 0 else { return }
        machine.withLock { $0.handedOver(count) }
    }
}

/// A source's state machine (``SourceCore/machine``), named outside the generic source so that non-generic code
/// (``RowIntake``) can use it.
typealias SourceMachine = SourceStateMachine<CheckedContinuation<Void, Never>, PollLoop>
