public import DeltaKit
import Synchronization

/// A `MutableStateStore` in memory, applying `LatestStateMerge`: the fake to swap in for
/// `RisingWaveStateStore`, and the default store of the in-process materializer.
///
/// Memory is O(live keys + tombstones) plus a bounded history of the most recent
/// ``historyLimit`` events.
public final class InMemoryStateStore<Record: ChangeRecord>: MutableStateStore {
    private struct State {
        var latest = LatestState<Record>()
        /// The retained history, ascending by order; at most `historyLimit` events.
        var history: [ChangeEvent<Record>] = []
    }
    private let state = Mutex(State())

    /// How many of the most recent events (by order) ``history(limit:)`` can return.
    public let historyLimit: Int

    /// Creates an empty store.
    ///
    /// - Parameter historyLimit: How many of the most recent events to keep for ``history(limit:)``.
    ///   Default: 1,000.
    public init(historyLimit: Int = 1_000) {
        precondition(historyLimit >= 0, "historyLimit must not be negative")
        self.historyLimit = historyLimit
    }

    /// Applies one event under `LatestStateMerge` and returns the visible change, if any.
    @discardableResult
    public func apply(_ event: ChangeEvent<Record>) async throws -> StateChange<Record>? {
        applyNow(event)
    }

    /// Applies events in order.
    public func apply(contentsOf events: [ChangeEvent<Record>]) async throws {
        for event in events { applyNow(event) }
    }

    /// Applies one event without suspending (for synchronous callers).
    @discardableResult
    public func applyNow(_ event: ChangeEvent<Record>) -> StateChange<Record>? {
        state.withLock { state in
            let change = state.latest.apply(event)
            if historyLimit > 0 {
                Self.remember(event, in: &state.history, limit: historyLimit)
            }
            return change
        }
    }

    private static func remember(_ event: ChangeEvent<Record>, in history: inout [ChangeEvent<Record>], limit: Int) {
        if history.count == limit, let oldest = history.first, event.order < oldest.order { return }
        // Insert after every event with order <= event.order (stable for equal orders).
        var low = 0
        var high = history.count
        while low < high {
            let mid = (low + high) / 2
            if history[mid].order <= event.order { low = mid + 1 } else { high = mid }
        }
        history.insert(event, at: low)
        if history.count > limit { history.removeFirst(history.count - limit) }
    }

    public func snapshot() async throws -> [Record] { state.withLock { $0.latest.snapshot() } }

    public func value(forKey key: Record.Key) async throws -> Record? {
        state.withLock { $0.latest.value(forKey: key) }
    }

    /// The most recent events, newest first: at most `min(limit, historyLimit)`.
    public func history(limit: Int) async throws -> [ChangeEvent<Record>] {
        state.withLock { Array($0.history.reversed().prefix(max(0, limit))) }
    }

    public func count() async throws -> Int { state.withLock { $0.latest.liveCount } }

    /// The highest order applied so far, or `nil` when nothing was applied.
    public var maxOrder: Int64? { state.withLock { $0.latest.maxOrder } }

    /// The number of tombstones kept for deleted keys.
    public var tombstoneCount: Int { state.withLock { $0.latest.tombstoneCount } }
}
