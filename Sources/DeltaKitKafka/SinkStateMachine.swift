import DeltaKit

/// A `KafkaEventSink`'s bookkeeping as a value: whether it is open, which `send` calls are in flight and how many
/// delivery reports each still awaits, and who waits for what (a send for its reports, `flush()` for the sends in
/// progress when it was called, `close()` for no delivery outstanding, senders for queue space).
///
/// It is the only record of what is unacknowledged. Every transition returns the ``Action``s to perform once the
/// caller released its lock (resuming waiters); the machine never touches librdkafka or a continuation itself, so
/// it is tested without either (`SinkStateMachineTests`). The pattern of swift-kafka-client's
/// `KafkaProducer.StateMachine` and postgres-nio's connection state machines.
///
/// `Waiter` is what waits for a condition (a `CheckedContinuation<Void, Never>` in the sink), `SendWaiter` what
/// waits for a send's outcome.
struct SinkStateMachine<Waiter, SendWaiter> {
    /// Identifies one `send(contentsOf:)` call.
    typealias SendID = Int

    /// What the caller does after releasing its lock.
    enum Action {
        /// Resume a waiter whose condition holds.
        case resume(Waiter)
        /// A send is over: every message it produced has a report. Its first failure, and the receipt of what was
        /// acknowledged.
        case completeSend(SendWaiter, DeltaKitError?, EventReceipt)
    }

    private struct Send {
        /// Deliveries reserved or produced that have no report yet.
        var pending = 0
        /// No more messages will be added.
        var sealed = false
        var error: DeltaKitError?
        var receipt = EventReceipt()
        var waiter: SendWaiter?
        /// Sealed by a caller that waits for nothing but its reports: what lingers of it is sent at once.
        var immediate = false
    }

    /// The first failure: it stops the sink, and every later send is refused with it.
    private(set) var failure: DeltaKitError?
    /// `close()` was called.
    private(set) var closed = false
    private var sends: [SendID: Send] = [:]
    private var nextID: SendID = 0
    /// The sum of every send's `pending`.
    private(set) var outstanding = 0
    private var idleWaiters: [Waiter] = []
    private var spaceWaiters: [Waiter] = []
    /// Each `flush()` waits for the sends in progress when it was called.
    private var flushes: [(sends: Set<SendID>, waiter: Waiter)] = []
    /// Sealed immediate sends that still await reports.
    private var immediateSends = 0
    /// How often a sender waited for queue space (for tests and tooling).
    private(set) var queueFullWaits = 0
    /// How many flushes took their set of sends in progress (for tests).
    private(set) var flushesStarted = 0
    /// The actions of transitions made while the poll thread serves reports through librdkafka's flush
    /// (`rd_kafka_flush`), held until it returned; `nil` while it does not. While librdkafka flushes, a message
    /// enqueued is sent at once instead of after `linger.ms`: a `flush()` that returned, or a sender that resumed,
    /// inside it could enqueue a batch that is sent at once instead of lingering.
    private var held: [Action]?

    /// The number of `send` calls in progress.
    var sendsInProgress: Int { sends.count }

    /// Whether the poll thread should serve reports through librdkafka's flush, which sends what is lingering at
    /// once: while a `flush()` or `close()` waits, or an immediate send (``seal(_:waiter:immediate:)``) awaits reports.
    var wantsImmediateSend: Bool { !flushes.isEmpty || !idleWaiters.isEmpty || immediateSends > 0 }

    /// Whether actions are held (the poll thread is in librdkafka's flush) and some are waiting.
    var holdsActions: Bool { held?.isEmpty == false }

    /// Returns `actions` to perform now, or holds them while the poll thread is in librdkafka's flush.
    private mutating func emit(_ actions: [Action]) -> [Action] {
        guard held != nil, !actions.isEmpty else { return actions }
        held! += actions
        return []
    }

    // MARK: Sends

    /// A send starts.
    mutating func startSend() -> SendID {
        nextID += 1
        sends[nextID] = Send()
        return nextID
    }

    /// `count` messages of `id` are about to be produced (reserved first: a report may arrive at once).
    mutating func reserve(_ count: Int, for id: SendID) {
        sends[id]?.pending += count
        outstanding += count
    }

    /// `count` reservations of `id` were not produced after all.
    mutating func release(_ count: Int, for id: SendID) -> [Action] {
        guard count > 0, sends[id] != nil else { return [] }
        sends[id]!.pending -= count
        outstanding -= count
        var actions: [Action] = []
        completeIfDone(id, &actions)
        resumeIdleWaiters(&actions)
        return emit(actions)
    }

    /// A delivery report for a message of `id`: `failure` when it was not acknowledged (it stops the sink, as
    /// ``fail(_:)``), otherwise the partition and offset it got.
    mutating func delivered(for id: SendID, failure: DeltaKitError?, partition: Int32, offset: Int64) -> [Action] {
        if let failure { fail(failure) }
        // One hash lookup, then in place through the index: this runs once per message.
        guard let index = sends.index(forKey: id) else { return [] }
        outstanding -= 1
        sends.values[index].pending -= 1
        if let failure {
            if sends.values[index].error == nil { sends.values[index].error = failure }
        } else {
            sends.values[index].receipt.record(partition: partition, offset: offset)
        }
        let done = sends.values[index].sealed && sends.values[index].pending == 0
        guard done || (outstanding == 0 && !idleWaiters.isEmpty) else { return [] }
        var actions: [Action] = []
        completeIfDone(id, &actions)
        resumeIdleWaiters(&actions)
        return emit(actions)
    }

    /// No more messages will be added to `id`; `waiter` gets its outcome once every report is in.
    ///
    /// `immediate`: the caller does nothing but wait for this send's reports (the outbox relay, which deletes its
    /// batch once acknowledged), so the messages of it still lingering (`linger.ms`) are sent at once: the poll
    /// thread serves reports through librdkafka's flush until the send is over (``wantsImmediateSend``).
    mutating func seal(_ id: SendID, waiter: SendWaiter, immediate: Bool = false) -> [Action] {
        guard sends[id] != nil else { return [] }
        sends[id]!.sealed = true
        sends[id]!.waiter = waiter
        if immediate {
            sends[id]!.immediate = true
            immediateSends += 1
        }
        var actions: [Action] = []
        completeIfDone(id, &actions)
        return emit(actions)
    }

    private mutating func completeIfDone(_ id: SendID, _ actions: inout [Action]) {
        guard let send = sends[id], send.sealed, send.pending == 0 else { return }
        sends[id] = nil
        if send.immediate { immediateSends -= 1 }
        if let waiter = send.waiter { actions.append(.completeSend(waiter, send.error, send.receipt)) }
        var remaining: [(sends: Set<SendID>, waiter: Waiter)] = []
        for var flush in flushes {
            flush.sends.remove(id)
            if flush.sends.isEmpty { actions.append(.resume(flush.waiter)) } else { remaining.append(flush) }
        }
        flushes = remaining
    }

    // MARK: Waiting

    /// `flush()`: `waiter` resumes once every send in progress now is over (not those that start later).
    mutating func flush(waiter: Waiter) -> [Action] {
        flushesStarted += 1
        guard !sends.isEmpty else { return emit([.resume(waiter)]) }
        flushes.append((Set(sends.keys), waiter))
        return []
    }

    /// `waiter` resumes once no delivery is outstanding.
    mutating func waitUntilIdle(waiter: Waiter) -> [Action] {
        guard outstanding > 0 else { return emit([.resume(waiter)]) }
        idleWaiters.append(waiter)
        return []
    }

    private mutating func resumeIdleWaiters(_ actions: inout [Action]) {
        guard outstanding == 0, !idleWaiters.isEmpty else { return }
        actions += idleWaiters.map(Action.resume)
        idleWaiters = []
    }

    /// The poll thread decides how to serve reports: `true` (and every action is held from now on, until
    /// ``immediateSendEnded()``) when it should enter librdkafka's flush (``wantsImmediateSend``). Deciding and
    /// holding in one step means that no waiter it serves can resume while librdkafka still flushes.
    mutating func startImmediateSendIfWanted() -> Bool {
        guard wantsImmediateSend else { return false }
        held = held ?? []
        return true
    }

    /// The poll thread left librdkafka's flush: the actions held since ``startImmediateSendIfWanted()``, to
    /// perform now.
    mutating func immediateSendEnded() -> [Action] {
        defer { held = nil }
        return held ?? []
    }

    /// librdkafka's queue was full: `waiter` resumes after the next poll (which frees space by serving reports).
    mutating func waitForQueueSpace(waiter: Waiter) {
        queueFullWaits += 1
        spaceWaiters.append(waiter)
    }

    /// A poll served delivery reports (queue space may be free): every sender waiting for space tries again.
    mutating func polled() -> [Action] {
        guard !spaceWaiters.isEmpty else { return [] }
        defer { spaceWaiters = [] }
        return emit(spaceWaiters.map(Action.resume))
    }

    // MARK: Lifecycle

    /// Records the sink's first failure; returns `true` when `error` is it.
    @discardableResult
    mutating func fail(_ error: DeltaKitError) -> Bool {
        guard failure == nil else { return false }
        failure = error
        return true
    }

    /// Stops accepting events; returns `false` when the sink was closed already.
    mutating func close() -> Bool {
        defer { closed = true }
        return !closed
    }
}
