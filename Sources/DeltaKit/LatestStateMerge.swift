public import Foundation

/// The merge semantics of DeltaKit: which event is a key's current state.
///
/// For each key, the state is the event with the highest ``ChangeEvent/order``; if that event is a
/// delete, the key has no state. Insert and update both upsert. The rule depends only on the set of
/// events seen, never on their arrival order, so out-of-order, duplicated and replayed events all
/// leave the same state.
///
/// **Ties.** Two different events for one key with the same order are resolved deterministically, by a rule
/// that SQL can apply too (the RisingWave view orders its rows the same way), so every backend agrees:
/// 1. a delete wins over an insert or update (the conservative choice: a tie never resurrects a record);
/// 2. then the later timestamp (``ChangeEvent/timestamp``) wins;
/// 3. then the record's fields are compared in declaration order, the greater value winning as SQL sorts it
///    (numbers and dates by value, strings by their UTF-8 bytes, `false` before `true`, a value over `nil`);
/// 4. then `update` wins over `insert`.
///
/// An event identical to the current one changes nothing.
public enum LatestStateMerge {
    /// Returns `true` when `candidate` replaces `current` as the state of their (common) key.
    @inline(__always)
    public static func supersedes<Record>(_ candidate: ChangeEvent<Record>, _ current: ChangeEvent<Record>) -> Bool {
        if candidate.order != current.order { return candidate.order > current.order }
        if candidate == current { return false }
        let candidateDeletes = candidate.operation == .delete
        if candidateDeletes != (current.operation == .delete) { return candidateDeletes }
        if candidate.timestamp != current.timestamp { return candidate.timestamp > current.timestamp }
        if candidate.record != nil, current.record != nil, let schema = try? Record.schema,
            let left = try? fieldValues(candidate), let right = try? fieldValues(current)
        {
            for field in schema.valueFields {
                switch (left[field.name] ?? nil, right[field.name] ?? nil) {
                case (nil, nil): continue
                case (nil, _): return false
                case (_, nil): return true
                case (let x?, let y?):
                    if field.type.precedes(y, x) { return true }
                    if field.type.precedes(x, y) { return false }
                }
            }
        }
        return candidate.operation.rawValue > current.operation.rawValue
    }

    /// An event's field values as its wire JSON holds them (the one way every store reads them); only ties of
    /// equal order and timestamp get here, so the encoding is off the hot path.
    private static func fieldValues<Record>(_ event: ChangeEvent<Record>) throws -> [String: JSONScalar?] {
        Dictionary(
            try event.wireJSONAndFields().fields.map { ($0.name, $0.value) },
            uniquingKeysWith: { first, _ in first }
        )
    }
}

/// A change to the visible state of one key, as a result of applying an event or as reported by a
/// store's change feed.
public struct StateChange<Record: ChangeRecord>: Hashable, Sendable {
    /// What happened to the key's visible state.
    public enum Kind: String, Hashable, Sendable {
        /// The key appeared.
        case insert
        /// The key's record changed.
        case update
        /// The key disappeared.
        case delete
    }
    /// What happened.
    public var kind: Kind
    /// The key.
    public var key: Record.Key
    /// The new record for insert and update; the removed record (when known) for delete.
    public var record: Record?

    /// Creates a change.
    @inline(__always)
    public init(kind: Kind, key: Record.Key, record: Record?) {
        self.kind = kind
        self.key = key
        self.record = record
    }
}

/// The latest state per key under ``LatestStateMerge``: a pure value that in-process stores share.
///
/// It keeps one event per key — the winning one, deletes included as tombstones so that a late,
/// older insert cannot resurrect a deleted key — so memory is O(live keys + tombstones), never
/// O(events).
public struct LatestState<Record: ChangeRecord>: Sendable {
    private var winners: [Record.Key: ChangeEvent<Record>] = [:]
    /// The number of keys whose state is a record (not a tombstone).
    public private(set) var liveCount = 0

    /// Creates an empty state.
    public init() {}

    /// Applies one event and returns the change to the visible state, or `nil` when nothing visible changed
    /// (an older, duplicate or losing event, or a delete of a key that has no state).
    @discardableResult
    @inline(__always)
    public mutating func apply(_ event: ChangeEvent<Record>) -> StateChange<Record>? {
        let previous = winners[event.key]
        if let previous, !LatestStateMerge.supersedes(event, previous) { return nil }
        winners[event.key] = event
        // Nested `if`s rather than a switch over a tuple of optionals: unspecialized generic code would look up
        // the tuple's type metadata on every call.
        if let new = event.record {
            guard let old = previous?.record else {
                liveCount += 1
                return StateChange(kind: .insert, key: event.key, record: new)
            }
            return old == new ? nil : StateChange(kind: .update, key: event.key, record: new)
        }
        guard let old = previous?.record else { return nil }
        liveCount -= 1
        return StateChange(kind: .delete, key: event.key, record: old)
    }

    /// The current record for `key`, or `nil` if it has none.
    public func value(forKey key: Record.Key) -> Record? { winners[key]?.record }

    /// The winning event for `key` (a delete for a tombstone), or `nil` if no event was seen.
    public func latestEvent(forKey key: Record.Key) -> ChangeEvent<Record>? { winners[key] }

    /// All live records ordered by key.
    public func snapshot() -> [Record] {
        winners.values.compactMap(\.record).sorted { $0.key < $1.key }
    }

    /// The number of deleted keys remembered as tombstones.
    public var tombstoneCount: Int { winners.count - liveCount }

    /// The highest order among the winning events, or `nil` when empty. Seed a
    /// ``HybridLogicalClock`` with it after a restart.
    public var maxOrder: Int64? { winners.values.map(\.order).max() }

    /// Forgets tombstones whose order is below `order`.
    ///
    /// Safe once no event older than `order` can still arrive (for example after a topic's retention
    /// passed it); an older insert arriving later would otherwise bring the key back.
    @discardableResult
    public mutating func removeTombstones(olderThan order: Int64) -> Int {
        removeTombstones { $0.order < order }
    }

    /// Forgets tombstones whose delete event's timestamp (`ts`) is before `date`: expiry by age, for a topic
    /// whose retention (or compaction's `delete.retention.ms`) has passed them. Returns how many were removed.
    @discardableResult
    public mutating func removeTombstones(deletedBefore date: Date) -> Int {
        removeTombstones { $0.timestamp < date }
    }

    /// Forgets the tombstones whose delete event matches `expired`; returns how many.
    private mutating func removeTombstones(where expired: (ChangeEvent<Record>) -> Bool) -> Int {
        let before = winners.count
        winners = winners.filter { $0.value.record != nil || !expired($0.value) }
        return before - winners.count
    }
}
