import DeltaKit

/// A `KafkaEventSource`'s bookkeeping as a value: whether it polls, the hand-off's accounting and back-pressure,
/// which partitions reached their end, who waits for "caught up", the connection's health, and — without a
/// group — whether reading is held back until the continuity check has run.
///
/// It is the only record of the source's state. Transitions return what to do once the caller released its lock
/// (``Action``s: resume a waiter, report a ``KafkaSourceEvent``, start the probe thread; or a decision for the
/// poll thread); the machine never touches librdkafka, the hand-off or a continuation itself, so it is tested
/// without them (`SourceStateMachineTests`). The pattern of ``SinkStateMachine``.
///
/// `Waiter` is what waits for "caught up" (a `CheckedContinuation<Void, Never>` in the source), `Loop` the poll
/// loop (``PollLoop``). Instants are passed in, so that time is the caller's.
struct SourceStateMachine<Waiter, Loop> {
    /// What does not change while the source runs.
    struct Settings {
        /// The source reads in a consumer group.
        var hasGroup: Bool
        /// The most items waiting for the application.
        var bufferSize: Int
        /// An `onSourceEvent` handler is set: only then is the health of each message tracked.
        var reportsSourceEvents: Bool
        /// How often a source without a group asks for the topic's partitions.
        var partitionRefreshInterval: Duration
        /// How long a group member's reader may stay behind before its partitions are paused.
        var groupStallBeforePause: Duration
    }

    /// What the caller does after releasing its lock.
    enum Action {
        /// Resume a waiter whose condition holds.
        case resume(Waiter)
        /// Report to `onSourceEvent`.
        case report(KafkaSourceEvent)
        /// Start the probe thread (none runs).
        case startProbe
    }

    /// What the poll thread does next.
    enum PollDecision: Equatable {
        /// The application is behind: wait (briefly) for its demand instead of taking messages.
        case waitForDemand
        /// Take up to `limit` messages; first `pause` or `resume` the assigned partitions.
        case poll(limit: Int, pause: Bool, resume: Bool)
    }

    /// What the probe thread does once the cluster answers again.
    enum ProbeStep: Equatable {
        /// Run the continuity check (no group, reading held back); it counts only if no problem is reported after
        /// `problemsBefore`.
        case verifyContinuity(problemsBefore: Int)
        /// ``KafkaSourceEvent/recovered`` is reported; check that the last message read on each partition
        /// (`lastOffsets`) is still there.
        case checkLastOffsets([Int32: Int64])
        /// Nothing more to do.
        case stop
    }

    /// What a message or a partition end says about the connection, for `onSourceEvent`.
    struct Observation: Equatable {
        /// The first sign of life after a connection problem.
        var recovered = false
        /// The partition's next offset had been this, and the broker now has less (`found`: the offset read).
        var wentBack: Int64?
    }

    private enum Lifecycle {
        /// Created; the poll loop starts with the first reader or `run()`.
        case idle
        case polling(Loop)
        /// Graceful shutdown: no more messages are taken; ``close()`` still stops the loop and closes.
        case stopped(Loop?)
        case closed
    }

    let settings: Settings
    private var lifecycle = Lifecycle.idle
    private var readerTaken = false

    // Hand-off and back-pressure.
    /// Items handed to the producer side, and items the application has taken: their difference is what waits
    /// for the application (the poll thread never takes more than `bufferSize` minus that).
    private var yielded = 0
    private var handedOver = 0
    /// How many batches (elements of the hand-off) the poll thread yielded.
    private(set) var yieldedBatches = 0
    /// The demand epoch at the yield that was told to stop; `nil` while the application wants more.
    private var stoppedAt: Int?
    /// Since when the reader has been behind, and whether the partitions are paused (in a group).
    private var stalledSince: ContinuousClock.Instant?
    private var paused = false
    /// The most items ever waiting, how often back-pressure engaged and was released, how often a group's
    /// partitions were paused (for tests and tooling).
    private var peakBuffered = 0
    private var backPressureEngaged = 0
    private var backPressureReleased = 0
    private var partitionsPaused = 0

    // Caught up.
    /// Partitions at their end since their last message, and whether the marker for that was handed over and no
    /// message came since.
    private var ended: Set<Int32> = []
    private var markerPending = false
    private(set) var isCaughtUp = false
    private var caughtUpWaiters: [Waiter] = []

    // Health and continuity.
    /// A connection problem was reported and nothing since showed the cluster is back; the last offset seen per
    /// partition (for ``KafkaSourceEvent/offsetsWentBack(topic:partition:expected:found:)``).
    private var troubled = false
    private var lastOffsets: [Int32: Int64] = [:]
    private var probing = false
    /// Without a group, losing every broker holds back every message until the continuity check has shown that
    /// the broker still holds the same log: set on the error, cleared once the partitions are re-positioned after
    /// the last delivered message.
    private(set) var isHoldingBack = false
    /// How many such problems were reported: a continuity check counts only if none came during it.
    private(set) var problems = 0
    /// The continuity check found another log: the events ended with `incompatibleStore`, nothing more is read.
    private var diverged = false
    /// Per partition, the last message handed to the application (no group).
    private(set) var delivered: [Int32: MessageFingerprint] = [:]
    private var lastPartitionRefresh: ContinuousClock.Instant

    init(settings: Settings, now: ContinuousClock.Instant) {
        self.settings = settings
        self.lastPartitionRefresh = now
    }

    // MARK: Lifecycle

    /// Starts the poll loop (`start` makes it, under the caller's lock, so that a close cannot come between the
    /// decision and the loop) unless it started already, reading was stopped, or the source is closed.
    mutating func startPolling(_ start: () -> Loop) -> Bool {
        guard case .idle = lifecycle else { return false }
        lifecycle = .polling(start())
        return true
    }

    /// Graceful shutdown: no more messages are taken. Returns the loop to ask to stop; it stays for ``close()``
    /// to wait for.
    mutating func stopReading() -> Loop? {
        switch lifecycle {
        case .idle:
            lifecycle = .stopped(nil)
            return nil
        case .polling(let loop):
            lifecycle = .stopped(loop)
            return loop
        case .stopped, .closed:
            return nil
        }
    }

    /// `close()`: whether this is the first close, and the loop to stop and wait for before the consumer closes.
    mutating func close() -> (first: Bool, loop: Loop?) {
        switch lifecycle {
        case .idle:
            lifecycle = .closed
            return (true, nil)
        case .polling(let loop):
            lifecycle = .closed
            return (true, loop)
        case .stopped(let loop):
            lifecycle = .closed
            return (true, loop)
        case .closed:
            return (false, nil)
        }
    }

    var isClosed: Bool {
        if case .closed = lifecycle { true } else { false }
    }

    /// The events can be read by one reader: `true` for the first who asks.
    mutating func takeReader() -> Bool {
        defer { readerTaken = true }
        return !readerTaken
    }

    // MARK: Hand-off and back-pressure

    /// How many items wait for the application.
    var waiting: Int { yielded - handedOver }

    /// The poll thread's next step. `demandEpoch` and `demandEnded` are the application's demand as the hand-off
    /// signals it (``SourceDemand``).
    ///
    /// The producer's depth does not count items the reader took but has not handed to the application yet; the
    /// room left does, so that no more than `bufferSize` items ever wait. A reader that is behind makes the poll
    /// thread stop taking messages (librdkafka keeps prefetching, up to `queued.max.messages.kbytes`) until it
    /// drained the hand-off to its low watermark: pausing the partitions instead would drop librdkafka's
    /// prefetched messages and fetch them again on resume, a stall on every cycle (`Documentation/performance.md`).
    /// A group member must keep polling, though — rebalances are served by the poll — so one whose reader stays
    /// behind for `groupStallBeforePause` pauses its partitions and polls on.
    mutating func pollDecision(now: ContinuousClock.Instant, demandEpoch: Int, demandEnded: Bool) -> PollDecision {
        if let stoppedAt, demandEpoch > stoppedAt {
            self.stoppedAt = nil
            backPressureReleased += 1
        }
        let room = settings.bufferSize - waiting
        guard stoppedAt == nil, !demandEnded, room > 0 else {
            let since = stalledSince ?? now
            stalledSince = since
            if !settings.hasGroup || now - since < settings.groupStallBeforePause { return .waitForDemand }
            let pause = !paused
            if pause {
                paused = true
                partitionsPaused += 1
            }
            // Paused partitions deliver nothing; the poll still serves the group (rebalances, errors), and a
            // message that was on its way is kept.
            return .poll(limit: max(1, room), pause: pause, resume: false)
        }
        stalledSince = nil
        defer { paused = false }
        return .poll(limit: room, pause: false, resume: paused)
    }

    /// `count` items are about to be yielded as one batch (`hasData`: not only caught-up markers). Counted
    /// before they are yielded, so that ``markCaughtUp()`` never sees the application level with the poll
    /// thread while items are on their way.
    mutating func yielding(_ count: Int, hasData: Bool) {
        if hasData { isCaughtUp = false }
        yielded += count
        yieldedBatches += 1
        peakBuffered = max(peakBuffered, waiting)
    }

    /// The hand-off told a yield to stop producing; `epoch` is the demand epoch read before that yield, so a
    /// demand that came between the yield and this call is not lost.
    mutating func yieldRefused(epoch: Int) {
        if stoppedAt == nil { backPressureEngaged += 1 }
        stoppedAt = epoch
    }

    /// The application took `count` items (events, malformed messages, markers).
    mutating func handedOver(_ count: Int) {
        handedOver += count
    }

    var backPressureStatistics: (peakBuffered: Int, engaged: Int, released: Int, paused: Int) {
        (peakBuffered, backPressureEngaged, backPressureReleased, partitionsPaused)
    }

    // MARK: Messages and partition ends

    /// A message was read at `offset` of `partition`: `nil` while reading is held back (the message is dropped;
    /// the partitions are re-positioned after the continuity check), otherwise what it says about the connection.
    /// The partition is no longer at its end.
    mutating func messageRead(partition: Int32, offset: Int64) -> Observation? {
        guard !isHoldingBack else { return nil }
        if !ended.isEmpty { ended.remove(partition) }
        markerPending = false
        return observe(partition: partition, next: offset, isData: true)
    }

    /// `partition` reached its end at `offset`: `nil` while reading is held back; otherwise what it says about
    /// the connection, and `marker` when every partition of `assignment` is at its end now (hand over the
    /// caught-up marker; once until a message or a new partition arrives).
    mutating func partitionEnded(
        _ partition: Int32,
        at offset: Int64,
        assignment: Set<Int32>
    ) -> (observation: Observation, marker: Bool)? {
        guard !isHoldingBack else { return nil }
        let observation = observe(partition: partition, next: offset, isData: false)
        ended.insert(partition)
        guard !assignment.isEmpty, assignment.isSubset(of: ended), !markerPending else { return (observation, false) }
        markerPending = true
        return (observation, true)
    }

    /// Partitions were added to the assignment: a marker handed over before no longer covers them.
    mutating func partitionsAdded() {
        markerPending = false
    }

    /// Whether the poll thread asks for the topic's partitions now (every `partitionRefreshInterval`, not while
    /// reading is held back).
    mutating func partitionRefreshDue(now: ContinuousClock.Instant) -> Bool {
        guard now - lastPartitionRefresh >= settings.partitionRefreshInterval else { return false }
        lastPartitionRefresh = now
        return !isHoldingBack
    }

    /// Adding the new partitions failed: ask again at the next poll.
    mutating func partitionRefreshFailed(now: ContinuousClock.Instant) {
        lastPartitionRefresh = now - settings.partitionRefreshInterval
    }

    /// The last message of each partition in a batch handed over (for the continuity check).
    mutating func recordDelivered(_ last: [Int32: MessageFingerprint]) {
        delivered.merge(last) { _, new in new }
    }

    /// A message at `next` (`isData`) or a partition end before `next`: a first sign of life after a problem,
    /// and whether the partition's offsets went back. Tracked only for `onSourceEvent`.
    private mutating func observe(partition: Int32, next: Int64, isData: Bool) -> Observation {
        guard settings.reportsSourceEvents else { return Observation() }
        let recovered = troubled
        troubled = false
        let expected = lastOffsets[partition].map { $0 + 1 }
        // A message at `offset` needs expected <= offset; a partition end at `offset` needs expected <= offset.
        let wentBack = expected.flatMap { $0 > next ? $0 : nil }
        lastOffsets[partition] = isData ? next : next - 1
        return Observation(recovered: recovered, wentBack: wentBack)
    }

    // MARK: Caught up

    /// The reader took the marker and applied what came before it: caught up, unless items arrived behind it.
    mutating func markCaughtUp() -> [Action] {
        guard handedOver == yielded else { return [] }
        isCaughtUp = true
        defer { caughtUpWaiters = [] }
        return caughtUpWaiters.map(Action.resume)
    }

    /// `waiter` resumes once the source is caught up (at once when it is).
    mutating func waitUntilCaughtUp(_ waiter: Waiter) -> [Action] {
        guard !isCaughtUp else { return [.resume(waiter)] }
        caughtUpWaiters.append(waiter)
        return []
    }

    // MARK: Health and continuity

    /// librdkafka reported a problem that is not fatal (`allBrokersDown`: every broker was lost).
    ///
    /// Without a group the source keeps its own positions: only a cluster that comes back after every broker was
    /// lost may hold another log (it lost its data, or the topic was recreated meanwhile), so that holds messages
    /// back until the continuity check; one broker of several going away does not.
    mutating func clientProblem(_ message: String, allBrokersDown: Bool) -> [Action] {
        if !settings.hasGroup, allBrokersDown {
            problems += 1
            isHoldingBack = true
        }
        guard settings.reportsSourceEvents || isHoldingBack else { return [] }
        var actions: [Action] = []
        if !troubled, settings.reportsSourceEvents { actions.append(.report(.connectionProblem(message))) }
        troubled = true
        if !probing {
            probing = true
            actions.append(.startProbe)
        }
        return actions
    }

    /// Whether the probe thread keeps watching for the cluster.
    var shouldKeepProbing: Bool { !isClosed && (troubled || isHoldingBack) }

    /// The probe thread's step once the cluster answered.
    mutating func clusterAnswered() -> ProbeStep {
        if !settings.hasGroup, isHoldingBack { return .verifyContinuity(problemsBefore: problems) }
        // Not troubled: a message already proved the cluster is back.
        guard settings.reportsSourceEvents, troubled else { return .stop }
        troubled = false
        return .checkLastOffsets(lastOffsets)
    }

    /// The probe thread ends; `true` when it starts again: a problem reported after its last look left reading
    /// held back, and the log was not found to differ.
    mutating func probeEnded() -> Bool {
        guard !settings.hasGroup, isHoldingBack, !diverged, !isClosed else {
            probing = false
            return false
        }
        return true
    }

    /// The continuity check reached the cluster: reports ``KafkaSourceEvent/recovered`` if a problem was.
    mutating func continuityCheckAnswered() -> [Action] {
        defer { troubled = false }
        return troubled && settings.reportsSourceEvents ? [.report(.recovered)] : []
    }

    /// The continuity check found another log: nothing more is read.
    mutating func diverge() {
        diverged = true
    }

    /// The same log, and the partitions are re-positioned after the last delivered message: reading goes on
    /// (partition ends are seen anew).
    mutating func repositioned() {
        ended.removeAll()
        markerPending = false
        isHoldingBack = false
    }
}
