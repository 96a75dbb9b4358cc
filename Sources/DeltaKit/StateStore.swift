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

    /// The most recent events, newest (highest order) first, at most `limit` of them
    /// (the demo's `SELECT * FROM user_events ORDER BY event_order DESC LIMIT 20`).
    ///
    /// A store may keep only a bounded history; it documents its bound.
    func history(limit: Int) async throws -> [ChangeEvent<Record>]

    /// The number of live records.
    func count() async throws -> Int
}

/// A ``StateStore`` that DeltaKit itself writes by applying events under ``LatestStateMerge``.
public protocol MutableStateStore<Record>: StateStore {
    /// Applies one event and returns the resulting change to the visible state, if any.
    @discardableResult
    func apply(_ event: ChangeEvent<Record>) async throws -> StateChange<Record>?

    /// Applies events in the given order. The default implementation applies them one by one.
    func apply(contentsOf events: [ChangeEvent<Record>]) async throws
}

extension MutableStateStore {
    /// Applies the events one by one.
    public func apply(contentsOf events: [ChangeEvent<Record>]) async throws {
        for event in events { try await apply(event) }
    }
}
