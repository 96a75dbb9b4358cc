/// The latest state per key under ``LatestStateMerge``, over event rows: the non-generic core of the in-memory
/// store (the generic store around it builds records only where the application reads them).
///
/// One slot per key ever seen — the winning event's row, a delete kept as a tombstone — overwritten in place, so
/// applying an event allocates nothing once the key is known (a new key grows the slot storage, amortized).
/// The rule is ``LatestStateMerge``'s, ties included, applied to rows: ``supersedes(_:_:current:)`` mirrors
/// ``LatestStateMerge/supersedes(_:_:)`` step for step, and the tests hold it to ``LatestState`` on random events.
package struct RowState: Sendable {
    package let layout: RowLayout
    /// Each key's slot in ``slots``.
    private var index: [RowValue: Int] = [:]
    /// The winning row of each key.
    private(set) var slots: RowList
    /// The number of keys whose state is a record (not a tombstone).
    package private(set) var liveCount = 0

    package init(layout: RowLayout) {
        self.layout = layout
        self.slots = layout.makeRows()
    }

    /// The number of deleted keys remembered as tombstones.
    package var tombstoneCount: Int { slots.count - liveCount }

    /// The highest order among the winning rows, or `nil` when empty.
    package var maxOrder: Int64? { slots.headers.lazy.map(\.order).max() }

    /// The slot of `key`, or `nil` if no event of it was seen.
    package func slot(of key: RowValue) -> Int? { index[key] }

    /// Applies row `row` of `rows`; when the visible state changes, appends the change to `changes` (its
    /// operation the change's kind, its values the new record, or the removed one for a delete) and returns
    /// `true`.
    @inline(__always)
    package mutating func apply(_ row: Int, of rows: RowList, changes: inout RowList) -> Bool {
        let key = rows.value(row, layout.keyIndex)
        guard let slot = index[key] else {
            index[key] = slots.count
            slots.append(rows, row: row)
            guard rows.headers[row].operation != .delete else { return false }
            liveCount &+= 1
            changes.append(rows, row: row, header: Self.change(rows.headers[row], .insert))
            return true
        }
        guard supersedes(row, rows, current: slot) else { return false }
        let previous = slots.headers[slot]
        let wasLive = previous.operation != .delete
        let candidate = rows.headers[row]
        if candidate.operation == .delete {
            if wasLive {
                liveCount &-= 1
                changes.append(slots, row: slot, header: Self.change(previous, .delete))
            }
            slots.replace(slot, with: rows, row: row)
            return wasLive
        }
        let visible = !wasLive || !slots.valuesEqual(slot, rows, row)
        slots.replace(slot, with: rows, row: row)
        guard visible else { return false }
        if !wasLive { liveCount &+= 1 }
        changes.append(rows, row: row, header: Self.change(candidate, wasLive ? .update : .insert))
        return true
    }

    @inline(__always)
    private static func change(_ header: RowHeader, _ kind: ChangeOperation) -> RowHeader {
        RowHeader(order: header.order, micros: header.micros, operation: kind)
    }

    /// ``LatestStateMerge/supersedes(_:_:)`` for row `row` of `rows` against slot `current`.
    @inline(__always)
    private func supersedes(_ row: Int, _ rows: RowList, current slot: Int) -> Bool {
        let candidate = rows.headers[row]
        let current = slots.headers[slot]
        if candidate.order != current.order { return candidate.order > current.order }
        return tieSupersedes(row, rows, current: slot)
    }

    /// The tie rule (equal orders), off the hot path.
    private func tieSupersedes(_ row: Int, _ rows: RowList, current slot: Int) -> Bool {
        let candidate = rows.headers[row]
        let current = slots.headers[slot]
        // An identical event changes nothing.
        if candidate.operation == current.operation, candidate.micros == current.micros,
            rows.valuesEqual(row, slots, slot)
        {
            return false
        }
        let candidateDeletes = candidate.operation == .delete
        if candidateDeletes != (current.operation == .delete) { return candidateDeletes }
        if candidate.micros != current.micros { return candidate.micros > current.micros }
        if !candidateDeletes {
            for field in layout.valueIndexes {
                let left = rows.value(row, field)
                let right = slots.value(slot, field)
                switch (left, right) {
                case (.null, .null): continue
                case (.null, _): return false
                case (_, .null): return true
                default:
                    if RowValue.precedes(right, left) { return true }
                    if RowValue.precedes(left, right) { return false }
                }
            }
        }
        return candidate.operation.rawValue > current.operation.rawValue
    }

    /// The slots of the live keys.
    package var liveSlots: [Int] { slots.headers.indices.filter { slots.headers[$0].operation != .delete } }

    /// Forgets tombstones whose delete matches `expired`; returns how many.
    package mutating func removeTombstones(where expired: (RowHeader) -> Bool) -> Int {
        let before = slots.count
        let headers = slots.headers
        slots.filter { headers[$0].operation != .delete || !expired(headers[$0]) }
        guard slots.count != before else { return 0 }
        index.removeAll(keepingCapacity: true)
        for slot in 0..<slots.count { index[slots.value(slot, layout.keyIndex)] = slot }
        return before - slots.count
    }

    /// Forgets every key.
    package mutating func removeAll() {
        index.removeAll()
        slots.removeAll(keepingCapacity: false)
        liveCount = 0
    }
}

/// A store's log of visible changes as rows, with its positions: change number `start + i + 1` is row `i`, and
/// `sequence` is the position after the newest.
package struct RowLog: Sendable {
    package var changes: RowList
    package var sequence: UInt64
    package var start: UInt64
    /// The changes kept (up to twice as many wait to be trimmed).
    package let limit: Int

    package init(changes: RowList, sequence: UInt64, start: UInt64, limit: Int) {
        self.changes = changes
        self.sequence = sequence
        self.start = start
        self.limit = limit
    }

    /// Trims the log to the newest ``limit`` changes once it holds twice as many (amortized).
    @inline(__always)
    package mutating func trim() {
        guard changes.count >= 2 * limit else { return }
        let drop = changes.count - limit
        changes.removeFirst(drop)
        start += UInt64(drop)
    }
}

extension RowState {
    /// Applies `rows` in order, keeping the history and the log of visible changes (for a store with no change
    /// feed open: no record is built).
    package mutating func apply(
        _ rows: RowList,
        _ range: Range<Int>,
        history: inout RowList,
        historyLimit: Int,
        log: inout RowLog
    ) {
        for row in range {
            if historyLimit > 0 { history.remember(row, of: rows, limit: historyLimit) }
            if apply(row, of: rows, changes: &log.changes) {
                log.sequence += 1
                log.trim()
            }
        }
    }
}

extension RowList {
    /// Inserts row `row` of `rows` by order into this history, which keeps up to `2 × limit` rows so that trimming
    /// it to the newest `limit` is amortized over `limit` inserts (readers take the last `limit`); stable for equal
    /// orders. The rows' twin of the typed history of `InMemoryStateStore`.
    @inline(__always)
    package mutating func remember(_ row: Int, of rows: RowList, limit: Int) {
        let order = rows.headers[row].order
        if count >= limit, order < headers[count - limit].order { return }
        if headers.last.map({ $0.order <= order }) ?? true {
            append(rows, row: row)  // the common case: events arrive in order
        } else {
            var low = 0
            var high = count
            while low < high {
                let mid = (low + high) / 2
                if headers[mid].order <= order { low = mid + 1 } else { high = mid }
            }
            insert(rows, row: row, at: low)
        }
        if count >= 2 * limit { removeFirst(count - limit) }
    }
}

/// A store that applies event rows directly (the in-memory store): the materializer hands it the rows the source
/// decoded, with no typed event in between.
package protocol RowApplying: AnyObject, Sendable {
    /// The layout of the rows the store takes, or `nil` when it takes typed events only.
    var rowLayout: RowLayout? { get }
    /// Applies rows `range` of `rows` (valid rows of ``rowLayout``) in order.
    func apply(rows: RowList, _ range: Range<Int>)
}
