/// A transactional outbox as an application's code sees it: change events enqueued inside a unit of work are
/// published (by the outbox's relay) exactly when that unit commits, and never when it rolls back.
///
/// Write the application's code against this protocol and it runs on the PostgreSQL outbox in production
/// (`DeltaKitOutboxPostgresNIO`'s `PostgresNIOOutbox`) and on DeltaKitTesting's `InMemoryOutbox` in unit tests:
///
/// ```swift
/// func rename(_ user: User, to name: String, outbox: some TransactionalOutbox<User>) async throws {
///     try await outbox.withTransaction { transaction in
///         try await transaction.enqueue(.update(User(id: user.id, name: name), order: 0))
///     }
/// }
/// ```
///
/// The guarantees an implementation gives (DeltaKitTesting's `OutboxConformance` checks them): nothing committed is
/// lost and nothing rolled back is published; per key, events are published in commit order, with an order that
/// grows in that order; an event that cannot be published holds back only its own key; a relay that restarts
/// loses nothing; events committed out of the order they were enqueued in are not skipped.
public protocol TransactionalOutbox<Record>: Sendable {
    /// The record type of the events.
    associatedtype Record: ChangeRecord
    /// The unit of work events are enqueued in.
    associatedtype Transaction: OutboxTransaction<Record>

    /// Runs `body` in a new transaction and commits it when `body` returns; rolls it back when `body` throws
    /// (and rethrows).
    ///
    /// - Throws: What `body` throws, or the outbox's error when the transaction cannot begin or commit (then
    ///   nothing enqueued in it is published).
    func withTransaction<Result: Sendable>(
        _ body: (Transaction) async throws -> Result
    ) async throws -> Result
}

/// A unit of work of a ``TransactionalOutbox``, in which change events are enqueued.
public protocol OutboxTransaction<Record>: Sendable {
    /// The record type of the events.
    associatedtype Record: ChangeRecord

    /// Enqueues `event`, to be published when the transaction commits.
    ///
    /// The event is published with an order of the outbox's choosing, not necessarily `event.order`: the greater of
    /// `event.order` and one more than the key's previous order, so that per key the order follows commit order.
    ///
    /// - Throws: `DeltaKitError` with code `serializationFailed` when the event cannot be encoded; the outbox's
    ///   error when it cannot be stored.
    func enqueue(_ event: ChangeEvent<Record>) async throws
}
