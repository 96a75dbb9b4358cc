public import Instrumentation

/// A store whose state can be followed: it offers a change feed of ``StateChange``s.
///
/// The feed starts either with the current state (every live record as an insert, then the changes made
/// after that snapshot) or from now (only later changes), or resumes after a position a consumer kept.
/// There is no gap and no duplicate at the seam between the snapshot and the changes: a change made while
/// the snapshot is being taken is either in the snapshot or delivered after it, never both, never neither.
///
/// ## The contract
///
/// Every store's feed keeps it; `DeltaKitTesting`'s `ChangeFeedConformance` checks exactly this:
///
/// - **Per key, states in order, ending at the current one.** For each key, the feed delivers states the key
///   had, in the order it had them, and eventually the key's current state. A consumer that applies the feed
///   (insert and update set the record, delete removes it) ends up holding the store's state.
/// - **Intermediate states may be coalesced.** Of several changes to one key in quick succession, a store may
///   deliver only the last (as a Kafka Streams KTable cache does): RisingWave's subscription keeps the net change
///   per key per checkpoint. A key's latest state is never left out, and no state is delivered twice.
/// - **Kinds are relative to what the consumer holds.** An insert for a key the feed has not delivered (or has
///   delivered as deleted), an update or a delete for one it holds; from `.now` or `.after(_:)`, relative to the
///   state when the feed started, so an update of a key that existed before is an update.
/// - **Positions resume.** Every change after the snapshot carries a position, and `.after(position)` continues
///   with what follows it — nothing the feed delivered up to the position again, and no key's later state left out.
/// - **No order across keys.** Changes to different keys may arrive in any order (a partitioned store has none).
///
/// A store may promise more: `InMemoryStateStore` and `SQLiteStateStore` deliver every change, each once, in the
/// order it was made, with positions that count up without a gap (`ChangeFeedConformance`'s `everyChange` mode).
///
/// A store that can no longer give what a feed needs ends it — or refuses to start it — with
/// ``DeltaKitError/Code/changesUnavailable`` rather than skip changes silently: start again from a snapshot.
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

    /// Starts a change feed that keeps the contract above (per key, states in order ending at the current one;
    /// intermediate states may be coalesced; positions resume).
    ///
    /// - Parameter start: Where the feed starts.
    /// - Throws: ``DeltaKitError`` with code ``DeltaKitError/Code/changesUnavailable`` when `start` is a
    ///   position the store no longer retains, or ``DeltaKitError/Code/invalidConfiguration`` when the
    ///   position belongs to another store.
    func changes(from start: ChangeFeedStart) async throws -> Changes
}

/// Where a change feed starts.
public enum ChangeFeedStart: Hashable, Sendable {
    /// Every live record as an insert (``ChangeFeedElement/isSnapshot`` set), then the changes after that snapshot.
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
    /// Where to resume to receive what follows this element; `nil` inside a snapshot, where the only safe
    /// restart is a new snapshot. A store that knows where its snapshot ends gives the snapshot's last element a
    /// position (the in-process stores do; RisingWave's does not: its first change after the snapshot has one).
    public var position: ChangeFeedPosition?
    /// The trace context of the event that caused the change, when the store has it: the in-memory store sets it
    /// for a change it applies while a context is current — inside the span `KafkaMaterializer` opens for an event
    /// that carried one — and so does the SQLite store for its own feeds. `nil` otherwise (snapshot elements,
    /// replayed history, stores that do not keep it).
    ///
    /// Not part of the element's equality: two elements for the same change at the same position are equal
    /// whatever trace they belong to.
    public var traceContext: ServiceContext?

    /// Creates an element.
    public init(
        change: StateChange<Record>,
        isSnapshot: Bool,
        position: ChangeFeedPosition?,
        traceContext: ServiceContext? = nil
    ) {
        self.change = change
        self.isSnapshot = isSnapshot
        self.position = position
        self.traceContext = traceContext
    }

    /// Whether two elements are for the same change, snapshot flag and position (``traceContext`` aside).
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.change == rhs.change && lhs.isSnapshot == rhs.isSnapshot && lhs.position == rhs.position
    }

    /// Hashes what ``==(_:_:)`` compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(change)
        hasher.combine(isSnapshot)
        hasher.combine(position)
    }
}
