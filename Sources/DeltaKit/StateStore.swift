/// Read access to the latest state per key.
///
/// Implemented over RisingWave (read-only from DeltaKit's side) and in memory. Writing state is a
/// separate capability, ``MutableStateStore``.
public protocol StateStore<Record>: Sendable {
    /// The record type of the state.
    associatedtype Record: ChangeRecord

    /// Every live record, ordered by key (the demo's `SELECT * FROM latest_user_state ORDER BY id`).
    func snapshot() async throws -> [Record]

    /// The live record for `key`, or `nil` if it has none (never inserted, or deleted).
    func value(forKey key: Record.Key) async throws -> Record?

    /// The live record for `key` with the order (`event_order`) of the event it comes from, read together so
    /// the two belong to the same version of the row; `nil` if the key has no live record.
    ///
    /// The order tells versions of a row apart: a change that replaces the record comes from an event with a
    /// higher order — or, for a tie under ``LatestStateMerge``, the same order — so a reader can tag what it
    /// read with it (the HTTP API's `ETag`). `order` is `nil` when the store does not know it.
    ///
    /// The default implementation reads ``value(forKey:)`` and gives no order; the stores of DeltaKit override
    /// it with one read.
    func valueAndOrder(forKey key: Record.Key) async throws -> (record: Record, order: Int64?)?

    /// The most recent events, newest (highest order) first, at most `limit` of them
    /// (the demo's `SELECT * FROM user_events ORDER BY event_order DESC LIMIT 20`).
    ///
    /// A store may keep only a bounded history; it documents its bound.
    func history(limit: Int) async throws -> [ChangeEvent<Record>]

    /// The number of live records.
    func count() async throws -> Int

    /// One page of ``snapshot()``: the live records whose key is greater than `key` (from the first when
    /// `nil`), in key order, at most `limit` of them. Pass the last key of a page to get the next one; an empty
    /// page is the end.
    ///
    /// The default implementation filters ``snapshot()``; stores with an index on the key override it so a page
    /// costs O(limit), whatever the size of the state.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/invalidConfiguration``) when `limit` is negative.
    func snapshot(after key: Record.Key?, limit: Int) async throws -> [Record]
}

extension StateStore {
    /// Reads ``value(forKey:)``; the order is `nil` (unknown).
    public func valueAndOrder(forKey key: Record.Key) async throws -> (record: Record, order: Int64?)? {
        try await value(forKey: key).map { ($0, nil) }
    }

    /// Filters ``snapshot()``: correct for every store, O(state) per page.
    public func snapshot(after key: Record.Key?, limit: Int) async throws -> [Record] {
        try DeltaKitError.check(limit, in: 0...Int.max, "snapshot page limit")
        let all = try await snapshot()
        guard let key else { return Array(all.prefix(limit)) }
        return Array(all.lazy.filter { $0.key > key }.prefix(limit))
    }
}

/// A ``MutableStateStore`` that keeps, with its state, how far it has read each partition of its source, and
/// changes both in one atomic step: after a crash at any instant, the state and the positions still agree, so
/// a restart resumes exactly after the last event the state holds — no consumer-group offsets involved.
public protocol PositionedStateStore<Record>: MutableStateStore {
    /// The source (a Kafka topic) the stored positions belong to.
    var source: String { get }

    /// The next offset to read, per partition of ``source``; a partition never read is absent.
    func positions() async throws -> [Int32: Int64]

    /// Applies `events` in order and records `positions` (the next offset to read, per partition) in one
    /// atomic step: after a crash, all of it or none of it is in the store.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``) for an invalid event, in
    ///   which case nothing of the batch is applied.
    func apply(contentsOf events: [ChangeEvent<Record>], positions: [Int32: Int64]) async throws

    /// The fingerprint of the last message applied per partition of ``source``, as recorded with the positions
    /// by ``apply(contentsOf:positions:fingerprints:)``: what tells the log the positions belong to from a
    /// recreated topic of the same name. Empty when none was recorded.
    func fingerprints() async throws -> [Int32: MessageFingerprint]

    /// Applies `events`, records `positions` and `fingerprints` (the last message applied per partition) in one
    /// atomic step.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``) for an invalid event, in
    ///   which case nothing of the batch is applied.
    func apply(
        contentsOf events: [ChangeEvent<Record>],
        positions: [Int32: Int64],
        fingerprints: [Int32: MessageFingerprint]
    ) async throws

    /// Removes every key, the history, the positions and the fingerprints in one atomic step, so that the store
    /// can be rebuilt from the beginning of its source (a topic that was recreated). Change feeds of the store
    /// end with ``DeltaKitError/Code/changesUnavailable``.
    func removeAll() async throws
}

extension PositionedStateStore {
    /// None recorded: a store that does not record fingerprints cannot tell a recreated topic from its own.
    public func fingerprints() async throws -> [Int32: MessageFingerprint] { [:] }

    /// Applies the events and records the positions; the fingerprints are not recorded.
    public func apply(
        contentsOf events: [ChangeEvent<Record>],
        positions: [Int32: Int64],
        fingerprints: [Int32: MessageFingerprint]
    ) async throws {
        try await apply(contentsOf: events, positions: positions)
    }

    /// Refuses: a store has to implement rebuilding itself.
    public func removeAll() async throws {
        throw DeltaKitError(
            code: .invalidConfiguration,
            message: "\(type(of: self)) cannot remove its state for a rebuild; replace the store instead"
        )
    }
}

/// A ``StateStore`` that DeltaKit itself writes by applying events under ``LatestStateMerge``.
public protocol MutableStateStore<Record>: StateStore {
    /// Applies one event and returns the resulting change to the visible state, if any.
    @discardableResult
    func apply(_ event: ChangeEvent<Record>) async throws -> StateChange<Record>?

    /// Applies events in the given order.
    ///
    /// **All or nothing for invalid events:** when any event of the batch is invalid
    /// (``ChangeEvent/validate()``), the call throws ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``)
    /// naming it and applies none of the batch — not the events before it either. Stores that write in
    /// transactions (SQLite) are also atomic against crashes and storage errors; the in-memory store cannot fail
    /// after validation. The default implementation validates every event first, then applies them one by one (a
    /// storage error part-way may leave a prefix applied; applying the batch again is harmless, because the merge
    /// is idempotent).
    func apply(contentsOf events: [ChangeEvent<Record>]) async throws
}

extension MutableStateStore {
    /// Validates every event, then applies them one by one (see the requirement for the all-or-nothing rule).
    public func apply(contentsOf events: [ChangeEvent<Record>]) async throws {
        for event in events { try event.validate() }
        for event in events { try await apply(event) }
    }
}
