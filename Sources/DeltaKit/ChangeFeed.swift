/// A store whose state can be followed: it offers a change feed of ``StateChange``s.
///
/// The feed starts either with the current state (every live record as an insert, then the changes made
/// after that snapshot) or from now (only later changes), or resumes after a position a consumer kept.
/// There is no gap and no duplicate at the seam between the snapshot and the changes: a change made while
/// the snapshot is being taken is either in the snapshot or delivered after it, never both, never neither.
///
/// ```swift
/// for try await element in store.changes(from: .snapshot) {
///     apply(element.change)
///     if let position = element.position { checkpoint = position }   // resume later with .after(checkpoint)
/// }
/// ```
public protocol ChangeFeedStore<Record>: StateStore {
    /// The sequence of changes; it ends only when the store or the consumer stops it, or with an error.
    associatedtype Changes: AsyncSequence<ChangeFeedElement<Record>, any Error> & Sendable

    /// Starts a change feed.
    ///
    /// - Parameter start: Where the feed starts.
    /// - Throws: ``DeltaKitError`` with code ``DeltaKitError/Code/changesUnavailable`` when `start` is a
    ///   position the store no longer retains, or ``DeltaKitError/Code/invalidConfiguration`` when the
    ///   position belongs to another store.
    func changes(from start: ChangeFeedStart) async throws -> Changes
}

/// Where a change feed starts.
public enum ChangeFeedStart: Hashable, Sendable {
    /// Every live record as an insert (``ChangeFeedElement/isSnapshot`` set), then every later change.
    case snapshot
    /// Only changes made after the feed started.
    case now
    /// The changes after `position`, which an earlier feed of the same store delivered.
    case after(ChangeFeedPosition)
}

/// A point in a store's sequence of changes, to resume a feed after it (``ChangeFeedStart/after(_:)``).
///
/// Opaque and store-specific; persist it with `Codable` or ``description`` and ``init(_:)``.
public struct ChangeFeedPosition: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The store's encoding of the position.
    public var description: String

    /// Recreates a position from its ``description``.
    public init(_ description: String) { self.description = description }
}

/// One element of a change feed.
public struct ChangeFeedElement<Record: ChangeRecord>: Hashable, Sendable {
    /// The change to the visible state.
    public var change: StateChange<Record>
    /// `true` for the inserts that replay the state at the start of a ``ChangeFeedStart/snapshot`` feed.
    public var isSnapshot: Bool
    /// Where to resume to receive exactly what follows this element; `nil` inside a snapshot, where the
    /// only safe restart is a new snapshot (the snapshot's last element carries the position).
    public var position: ChangeFeedPosition?

    /// Creates an element.
    public init(change: StateChange<Record>, isSnapshot: Bool, position: ChangeFeedPosition?) {
        self.change = change
        self.isSnapshot = isSnapshot
        self.position = position
    }
}
