import DeltaKit
import Foundation

/// The demo's stream of change events: users Alice 25, Bob 30 and Charlie 36 (ids 1–3) inserted, updated
/// (a new age, 1–10 years over the base) and deleted at random.
///
/// The same seed gives the same users, operations and ages, so a run can be reproduced with `--seed`; orders
/// come from a `HybridLogicalClock` and timestamps from the wall clock.
struct DemoEvents {
    /// The users the events are about.
    static let users = [
        DemoUser(id: 1, name: "Alice", age: 25),
        DemoUser(id: 2, name: "Bob", age: 30),
        DemoUser(id: 3, name: "Charlie", age: 36),
    ]

    private var random: SplitMix64
    private let clock: HybridLogicalClock

    init(seed: UInt64, clock: HybridLogicalClock) {
        self.random = SplitMix64(seed: seed)
        self.clock = clock
    }

    /// Returns the next event.
    mutating func next() -> ChangeEvent<DemoUser> {
        let base = Self.users[Int.random(in: 0..<Self.users.count, using: &random)]
        let operation = ChangeOperation.allCases[Int.random(in: 0..<3, using: &random)]
        let order = clock.next()
        let now = Date()
        switch operation {
        case .insert:
            return .insert(base, order: order, timestamp: now)
        case .update:
            var user = base
            user.age = base.age + Int.random(in: 1...10, using: &random)
            return .update(user, order: order, timestamp: now)
        case .delete:
            return .delete(key: base.id, order: order, timestamp: now)
        }
    }

    /// Returns the next `count` events.
    mutating func next(_ count: Int) -> [ChangeEvent<DemoUser>] {
        (0..<count).map { _ in next() }
    }
}

/// A small seedable random number generator (SplitMix64), so that a seed gives the same numbers on every
/// platform (the standard library's generator cannot be seeded).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
