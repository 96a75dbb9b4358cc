public import Foundation
import Instrumentation
import Synchronization

/// A ``MutableStateStore`` in memory, applying ``LatestStateMerge``: the in-process materializer's store,
/// and the store to swap in for a remote one in tests.
///
/// Events are applied in their canonical form (``ChangeEvent/canonicalized()``): an invalid event is refused
/// with the same error a Kafka sink gives, and a record reads back exactly as it would after a trip through
/// Kafka. Memory is O(live keys + tombstones), plus a bounded history of the most recent ``historyLimit``
/// events and the last ``changeBufferLimit`` changes for the change feed.
///
/// A record type with a row layout (every record of scalar fields whose `Codable` conformance is the synthesized
/// one, or as faithful) is kept as event rows (`RowState`): applying an event builds no record, and a record is
/// built where it is read — ``value(forKey:)``, ``snapshot()``, ``history(limit:)``, a change feed's element, the
/// change ``apply(_:)`` returns. Other record types are kept as typed events.
public final class InMemoryStateStore<Record: ChangeRecord>: MutableStateStore, ChangeFeedStore, RowApplying {
    private struct State {
        /// The typed state, for a record type without a row layout.
        var latest = LatestState<Record>()
        /// The retained history, ascending by order: the newest `historyLimit` events are the last ones (up to
        /// as many older ones wait to be trimmed).
        var history: [ChangeEvent<Record>] = []
        /// How many visible changes were made so far: the position after the newest change.
        var sequence: UInt64 = 0
        /// The newest visible changes, oldest first, `log[i]` being change number `logStart + i + 1`.
        var log: [StateChange<Record>] = []
        var logStart: UInt64 = 0
        var subscribers: [Int: AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] = [:]
        var nextSubscriber = 0
        /// With a row layout: the state, the history and the change log as rows (instead of the typed ones).
        var rowLatest: RowState?
        var rowHistory: RowList
        var rowLog: RowList

        init(layout: RowLayout?) {
            rowLatest = layout.map(RowState.init)
            rowHistory = RowList(width: layout?.width ?? 0)
            rowLog = RowList(width: layout?.width ?? 0)
        }

        var logCount: Int { rowLatest == nil ? log.count : rowLog.count }
    }
    private let state: Mutex<State>
    /// The record type's row layout, or `nil` when the store keeps typed events.
    package let rowLayout: RowLayout?
    /// Distinguishes this store's positions from another store's.
    private let identity = String(UInt64.random(in: 0...UInt64.max), radix: 36)

    /// How many of the most recent events (by order) ``history(limit:)`` can return.
    public let historyLimit: Int
    /// How many changes the store keeps for feeds: a feed may fall this far behind, and a position this old
    /// can still be resumed from.
    public let changeBufferLimit: Int

    /// Creates an empty store.
    ///
    /// - Parameters:
    ///   - historyLimit: How many of the most recent events to keep for ``history(limit:)``; 0 keeps none.
    ///     Default: 1,000.
    ///   - changeBufferLimit: How many changes a change feed may lag behind (and a resumed position may be
    ///     old) before the feed ends with ``DeltaKitError/Code/changesUnavailable``; at least 1. Default: 10,000.
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/invalidConfiguration``) for a value out of range.
    public init(historyLimit: Int = 1_000, changeBufferLimit: Int = 10_000) throws {
        try DeltaKitError.check(historyLimit, in: 0...100_000_000, "InMemoryStateStore.historyLimit")
        try DeltaKitError.check(changeBufferLimit, in: 1...100_000_000, "InMemoryStateStore.changeBufferLimit")
        self.historyLimit = historyLimit
        self.changeBufferLimit = changeBufferLimit
        let layout = RowLayout.of(Record.self)
        self.rowLayout = layout
        self.state = Mutex(State(layout: layout))
    }

    /// Applies one event under ``LatestStateMerge`` and returns the visible change, if any.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``) when the event is invalid
    ///   (``ChangeEvent/validate()``); the state is then unchanged.
    @discardableResult
    public func apply(_ event: ChangeEvent<Record>) async throws -> StateChange<Record>? {
        try applyNow(event)
    }

    /// Applies events in order under one acquisition of the store's lock; all or nothing: when one event is
    /// invalid, it throws and applies none of them (see ``MutableStateStore/apply(contentsOf:)``).
    public func apply(contentsOf events: [ChangeEvent<Record>]) async throws {
        if let rowLayout {
            var rows = rowLayout.makeRows()
            rows.reserveCapacity(events.count)
            for event in events { try rowLayout.appendRow(from: event, into: &rows) }
            apply(rows: rows, 0..<rows.count)
            return
        }
        let schema = try Record.schema
        let canonical = try events.map { try $0.canonicalized(schema: schema) }
        var overflowed: [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] = []
        state.withLock { state in
            for event in canonical { _ = applyLocked(event, in: &state, overflowed: &overflowed) }
        }
        finish(overflowed)
    }

    /// Applies one event without suspending (for synchronous callers); see ``apply(_:)``.
    @discardableResult
    package func applyNow(_ event: ChangeEvent<Record>) throws -> StateChange<Record>? {
        if let rowLayout {
            var rows = rowLayout.makeRows()
            try rowLayout.appendRow(from: event, into: &rows)
            var overflowed: [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] = []
            let change = try state.withLock { state -> StateChange<Record>? in
                guard
                    let change = applyRowLocked(0, of: rows, in: &state, overflowed: &overflowed, wantsChange: true)
                else { return nil }
                return try change.get()
            }
            finish(overflowed)
            return change
        }
        let event = try event.canonicalized()
        var overflowed: [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] = []
        let change = state.withLock { state in applyLocked(event, in: &state, overflowed: &overflowed) }
        finish(overflowed)
        return change
    }

    /// Applies rows `range` of `rows` — valid rows of this store's layout (``RowLayout/decode(_:into:)`` or
    /// ``RowLayout/appendRow(from:into:)`` made them) — in order, under one acquisition of the lock: the
    /// materializer's path, which builds no record unless a change feed is open.
    package func apply(rows: RowList, _ range: Range<Int>) {
        var overflowed: [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] = []
        state.withLock { state in
            guard state.subscribers.isEmpty else {
                for row in range { _ = applyRowLocked(row, of: rows, in: &state, overflowed: &overflowed) }
                return
            }
            // No feed to build records for: the whole batch in code that is not generic.
            var log = RowLog(
                changes: state.rowLog,
                sequence: state.sequence,
                start: state.logStart,
                limit: changeBufferLimit
            )
            state.rowLog = RowList(width: 0)  // moved out and back, so that it is not copied
            state.rowLatest!.apply(rows, range, history: &state.rowHistory, historyLimit: historyLimit, log: &log)
            state.rowLog = log.changes
            state.sequence = log.sequence
            state.logStart = log.start
        }
        finish(overflowed)
    }

    /// Applies row `row` to the locked row state; returns the visible change (built only when it is asked
    /// for: a feed is open, or `wantsChange`), `nil` when nothing visible changed.
    @inline(__always)
    private func applyRowLocked(
        _ row: Int,
        of rows: RowList,
        in state: inout State,
        overflowed: inout [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation],
        wantsChange: Bool = false
    ) -> Result<StateChange<Record>, any Error>? {
        if historyLimit > 0 { state.rowHistory.remember(row, of: rows, limit: historyLimit) }
        guard state.rowLatest!.apply(row, of: rows, changes: &state.rowLog) else { return nil }
        state.sequence += 1
        let logged = state.rowLog.count - 1
        var change: Result<StateChange<Record>, any Error>?
        if wantsChange || !state.subscribers.isEmpty {
            change = Result { try StateChange<Record>(row: logged, of: state.rowLog, layout: rowLayout!) }
        }
        if state.rowLog.count >= 2 * changeBufferLimit {
            let drop = state.rowLog.count - changeBufferLimit
            state.rowLog.removeFirst(drop)
            state.logStart += UInt64(drop)
        }
        if let change, !state.subscribers.isEmpty {
            overflowed += deliver(change, in: &state)
        }
        return change
    }

    /// Hands a change (or the error building its record) to every feed; returns the feeds that overflowed.
    private func deliver(
        _ change: Result<StateChange<Record>, any Error>,
        in state: inout State
    ) -> [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] {
        let element: ChangeFeedElement<Record>
        switch change {
        case .success(let change):
            element = ChangeFeedElement(
                change: change,
                isSnapshot: false,
                position: position(state.sequence),
                traceContext: ServiceContext.current
            )
        case .failure(let error):
            for (_, continuation) in state.subscribers { continuation.finish(throwing: error) }
            state.subscribers.removeAll()
            return []
        }
        return Self.offer(element, to: &state.subscribers)
    }

    /// Yields `element` to every feed: a feed that ended is forgotten, one whose buffer is full is forgotten and
    /// returned (to finish outside the lock).
    @inline(__always)
    private static func offer(
        _ element: ChangeFeedElement<Record>,
        to subscribers: inout [Int: AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation]
    ) -> [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] {
        var overflowed: [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] = []
        for (id, continuation) in subscribers {
            switch continuation.yield(element) {
            case .enqueued: break
            case .dropped:
                subscribers[id] = nil
                overflowed.append(continuation)
            case .terminated: subscribers[id] = nil
            @unknown default: break
            }
        }
        return overflowed
    }

    /// Applies a canonical event to the locked state; collects the feeds that overflowed.
    @inline(__always)
    private func applyLocked(
        _ event: ChangeEvent<Record>,
        in state: inout State,
        overflowed: inout [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation]
    ) -> StateChange<Record>? {
        let change = state.latest.apply(event)
        if historyLimit > 0 { Self.remember(event, in: &state.history, limit: historyLimit) }
        if let change { overflowed += publish(change, in: &state) }
        return change
    }

    /// Ends the feeds that fell too far behind (outside the lock).
    private func finish(_ overflowed: [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation]) {
        guard !overflowed.isEmpty else { return }
        let error = DeltaKitError(
            code: .changesUnavailable,
            message:
                "a change feed of InMemoryStateStore<\(Record.self)> fell more than \(changeBufferLimit) changes behind (changeBufferLimit); resume from the last position it delivered, or start again from a snapshot"
        )
        for continuation in overflowed { continuation.finish(throwing: error) }
    }

    /// Records a change and hands it to every feed; returns the feeds that overflowed (to finish outside the lock).
    @inline(__always)
    private func publish(
        _ change: StateChange<Record>,
        in state: inout State
    ) -> [AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.Continuation] {
        state.sequence += 1
        state.log.append(change)
        if state.log.count >= 2 * changeBufferLimit {
            let drop = state.log.count - changeBufferLimit
            state.log.removeFirst(drop)
            state.logStart += UInt64(drop)
        }
        guard !state.subscribers.isEmpty else { return [] }
        let element = ChangeFeedElement(
            change: change,
            isSnapshot: false,
            position: position(state.sequence),
            traceContext: ServiceContext.current
        )
        return Self.offer(element, to: &state.subscribers)
    }

    /// Inserts `event` by order into `history`, which keeps up to `2 × limit` events so that trimming it to the
    /// newest `limit` is amortized over `limit` inserts (readers take the last `limit`).
    @inline(__always)
    private static func remember(_ event: ChangeEvent<Record>, in history: inout [ChangeEvent<Record>], limit: Int) {
        if history.count >= limit, event.order < history[history.count - limit].order { return }
        if history.last.map({ $0.order <= event.order }) ?? true {
            history.append(event)  // the common case: events arrive in order
        } else {
            // Insert after every event with order <= event.order (stable for equal orders).
            var low = 0
            var high = history.count
            while low < high {
                let mid = (low + high) / 2
                if history[mid].order <= event.order { low = mid + 1 } else { high = mid }
            }
            history.insert(event, at: low)
        }
        if history.count >= 2 * limit { history.removeFirst(history.count - limit) }
    }

    public func snapshot() async throws -> [Record] {
        if let rowLayout {
            // The rows are copied out (shared until the next write) and the records built outside the lock.
            let slots = state.withLock { $0.rowLatest!.slots }
            return try Self.liveRecords(slots, layout: rowLayout)
        }
        return state.withLock { $0.latest.snapshot() }
    }

    /// The records of the live rows among `slots`, ordered by key.
    private static func liveRecords(_ slots: RowList, layout: RowLayout) throws -> [Record] {
        var records: [Record] = []
        records.reserveCapacity(slots.count)
        for slot in 0..<slots.count where slots.headers[slot].operation != .delete {
            records.append(try Record(row: slot, of: slots, layout: layout))
        }
        return records.sorted { $0.key < $1.key }
    }

    public func value(forKey key: Record.Key) async throws -> Record? {
        if let rowLayout {
            guard let keyValue = rowLayout.keyValue(key) else { return nil }
            return try state.withLock { state -> Record? in
                let latest = state.rowLatest!
                guard let slot = latest.slot(of: keyValue), latest.slots.headers[slot].operation != .delete else {
                    return nil
                }
                return try Record(row: slot, of: latest.slots, layout: rowLayout)
            }
        }
        return state.withLock { $0.latest.value(forKey: key) }
    }

    /// The live record for `key` with the order of the event it comes from, under one acquisition of the lock.
    public func valueAndOrder(forKey key: Record.Key) async throws -> (record: Record, order: Int64?)? {
        if let rowLayout {
            guard let keyValue = rowLayout.keyValue(key) else { return nil }
            return try state.withLock { state -> (record: Record, order: Int64?)? in
                let latest = state.rowLatest!
                guard let slot = latest.slot(of: keyValue), latest.slots.headers[slot].operation != .delete else {
                    return nil
                }
                return (try Record(row: slot, of: latest.slots, layout: rowLayout), latest.slots.headers[slot].order)
            }
        }
        return state.withLock { state -> (record: Record, order: Int64?)? in
            guard let event = state.latest.latestEvent(forKey: key), let record = event.record else { return nil }
            return (record, event.order)
        }
    }

    /// The most recent events, newest first: at most `min(limit, historyLimit)`.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/invalidConfiguration``) when `limit` is negative.
    public func history(limit: Int) async throws -> [ChangeEvent<Record>] {
        try DeltaKitError.check(limit, in: 0...Int.max, "history limit")
        if let rowLayout {
            let history = state.withLock { $0.rowHistory }
            let newest = history.count - 1
            let oldest = max(0, history.count - min(historyLimit, limit))
            return try stride(from: newest, through: oldest, by: -1).map {
                try ChangeEvent(row: $0, of: history, layout: rowLayout)
            }
        }
        return state.withLock { Array($0.history.suffix(historyLimit).reversed().prefix(limit)) }
    }

    public func count() async throws -> Int {
        state.withLock { $0.rowLatest?.liveCount ?? $0.latest.liveCount }
    }

    /// Forgets deleted keys whose delete is older than `date` (by the event's `ts`), as a topic's retention would;
    /// a late insert older than the delete could then bring such a key back, so expire only what no producer can
    /// still send. Returns how many were removed.
    @discardableResult
    public func removeTombstones(deletedBefore date: Date) -> Int {
        state.withLock { state in
            guard state.rowLatest != nil else { return state.latest.removeTombstones(deletedBefore: date) }
            return state.rowLatest!.removeTombstones { EventTimestamp.date(fromMicroseconds: $0.micros) < date }
        }
    }

    /// The highest order applied so far, or `nil` when nothing was applied.
    public var maxOrder: Int64? { state.withLock { $0.rowLatest.map(\.maxOrder) ?? $0.latest.maxOrder } }

    /// The number of tombstones kept for deleted keys.
    public var tombstoneCount: Int { state.withLock { $0.rowLatest?.tombstoneCount ?? $0.latest.tombstoneCount } }

    // MARK: Change feed

    /// Starts a change feed; see ``ChangeFeedStore``.
    ///
    /// The snapshot is taken, and the feed registered, under the store's lock, so no change falls between
    /// them. A feed that falls more than ``changeBufferLimit`` changes behind ends with
    /// ``DeltaKitError/Code/changesUnavailable`` after delivering what it buffered.
    public func changes(from start: ChangeFeedStart) async throws -> InMemoryChangeFeed<Record> {
        let (stream, continuation) = AsyncThrowingStream<ChangeFeedElement<Record>, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(changeBufferLimit)
        )
        let after: UInt64? = try start.resumePosition.map(sequence(of:))
        let (id, initial) = try state.withLock { state in
            var initial: [ChangeFeedElement<Record>] = []
            switch start {
            case .snapshot:
                let records =
                    try state.rowLatest.map { try Self.liveRecords($0.slots, layout: rowLayout!) }
                    ?? state.latest.snapshot()
                for (index, record) in records.enumerated() {
                    initial.append(
                        ChangeFeedElement(
                            change: StateChange(kind: .insert, key: record.key, record: record),
                            isSnapshot: true,
                            position: index == records.count - 1 ? position(state.sequence) : nil
                        )
                    )
                }
            case .now: break
            case .after:
                let after = after!
                guard after <= state.sequence else {
                    throw DeltaKitError(
                        code: .invalidConfiguration,
                        message: "change feed position \(after) is ahead of this store (at \(state.sequence))"
                    )
                }
                guard after >= state.logStart else {
                    throw DeltaKitError(
                        code: .changesUnavailable,
                        message:
                            "the changes after position \(after) are no longer kept (the store keeps the last \(changeBufferLimit)); start again from a snapshot"
                    )
                }
                for offset in Int(after - state.logStart)..<state.logCount {
                    let sequence = state.logStart + UInt64(offset) + 1
                    let change =
                        try rowLayout.map { try StateChange<Record>(row: offset, of: state.rowLog, layout: $0) }
                        ?? state.log[offset]
                    initial.append(ChangeFeedElement(change: change, isSnapshot: false, position: position(sequence)))
                }
            }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            return (id, initial)
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return InMemoryChangeFeed(initial: initial, stream: stream)
    }

    /// The number of change feeds currently registered.
    package var activeFeeds: Int { state.withLock { $0.subscribers.count } }

    private func position(_ sequence: UInt64) -> ChangeFeedPosition {
        ChangeFeedPosition("\(identity):\(sequence)")
    }

    private func sequence(of position: ChangeFeedPosition) throws -> UInt64 {
        let parts = position.description.split(separator: ":")
        guard parts.count == 2, parts[0] == identity, let sequence = UInt64(parts[1]) else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "change feed position '\(position)' does not belong to this InMemoryStateStore<\(Record.self)> (positions do not survive a restart of an in-memory store)"
            )
        }
        return sequence
    }
}

extension ChangeFeedStart {
    fileprivate var resumePosition: ChangeFeedPosition? {
        if case .after(let position) = self { return position }
        return nil
    }
}
