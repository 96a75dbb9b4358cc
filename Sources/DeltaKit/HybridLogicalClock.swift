public import Foundation
import Synchronization

/// A source of event orders that stays strictly increasing across restarts and producers.
///
/// Each call to ``next()`` returns `max(wall clock in microseconds since 1970, last + 1)`.
/// Because the value tracks the wall clock, a restarted process continues above every order it
/// issued before (as long as the host clock does not step back past them), unlike the original demo's
/// counter that restarted at 1 — which made a restarted producer's new events lose to its old ones.
/// (The clock runs ahead of the wall clock only while it issues more than one order per microsecond,
/// by that many microseconds; a restart takes far longer than such a lead.)
///
/// Several producers stay ordered the same way: each clock follows real time, and a producer
/// that learns of another's order (for example from the state it reads) calls ``observe(_:)`` so its
/// next order is higher still — the hybrid-logical-clock rule. To survive a clock that stepped backwards
/// across a restart, seed the clock with the highest order already published
/// (`HybridLogicalClock(floor: maxOrderSeen)`).
///
/// Orders from two producers can still be equal in the same microsecond; ``LatestStateMerge``
/// resolves such ties deterministically.
public final class HybridLogicalClock: Sendable {
    private let last: Mutex<Int64>
    private let now: @Sendable () -> Date

    /// Creates a clock.
    ///
    /// - Parameters:
    ///   - floor: Every order this clock issues is greater than `floor`. Default: `0`.
    ///   - now: The wall clock. Default: `Date()`; tests inject their own.
    public init(floor: Int64 = 0, now: @escaping @Sendable () -> Date = { Date() }) {
        self.last = Mutex(floor)
        self.now = now
    }

    /// Returns the next order: greater than every order issued or observed before.
    public func next() -> Int64 {
        let wall = EventTimestamp.microseconds(now())
        return last.withLock { last in
            last = max(wall, last + 1)
            return last
        }
    }

    /// Takes note of an order issued elsewhere, so later ``next()`` calls exceed it.
    public func observe(_ order: Int64) {
        last.withLock { $0 = max($0, order) }
    }

    /// The highest order issued or observed so far.
    public var current: Int64 { last.withLock { $0 } }
}
