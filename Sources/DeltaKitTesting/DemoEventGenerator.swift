public import DeltaKit
public import Foundation

/// Reproduces the original demo's event stream from a seed: users Alice 25, Bob 30 and Charlie 36
/// (ids 1–3), with random inserts, updates and deletes.
///
/// As in the demo, an insert (re)creates a user with its base age, an update changes the age, and a
/// delete removes the user. Unlike the demo, orders come from a `HybridLogicalClock` (or the
/// ``init(seed:users:startOrder:startDate:)`` counter for reproducible tests), never restarting at 1.
public struct DemoEventGenerator: Sendable {
    /// The demo's users: `(id, name, age)`.
    public static let demoUsers: [DemoUser] = [
        DemoUser(id: 1, name: "Alice", age: 25),
        DemoUser(id: 2, name: "Bob", age: 30),
        DemoUser(id: 3, name: "Charlie", age: 36),
    ]

    private var random: SeededRandomNumberGenerator
    private let users: [DemoUser]
    private var nextOrder: Int64
    private var nextDate: Date
    private let clock: HybridLogicalClock?

    /// Creates a reproducible generator: orders count up from `startOrder`, timestamps advance
    /// one millisecond per event from `startDate`.
    ///
    /// - Parameters:
    ///   - seed: The seed; equal seeds give equal streams.
    ///   - users: How many distinct users (keys). The first three are the demo's; more get generated
    ///     names. Default: 3.
    ///   - startOrder: The first event's order. Default: 1.
    ///   - startDate: The first event's timestamp. Default: 2024-01-01T00:00:00Z.
    public init(
        seed: UInt64,
        users: Int = 3,
        startOrder: Int64 = 1,
        startDate: Date = Date(timeIntervalSince1970: 1_704_067_200)
    ) {
        self.random = SeededRandomNumberGenerator(seed: seed)
        self.users = Self.makeUsers(users)
        self.nextOrder = startOrder
        self.nextDate = startDate
        self.clock = nil
    }

    /// Creates a generator for live use: random choices from `seed`, orders from `clock`, timestamps
    /// from the wall clock.
    public init(seed: UInt64, users: Int = 3, clock: HybridLogicalClock) {
        self.random = SeededRandomNumberGenerator(seed: seed)
        self.users = Self.makeUsers(users)
        self.nextOrder = 0
        self.nextDate = Date()
        self.clock = clock
    }

    private static func makeUsers(_ count: Int) -> [DemoUser] {
        precondition(count > 0, "at least one user")
        return (0..<count).map { i in
            i < demoUsers.count ? demoUsers[i] : DemoUser(id: i + 1, name: "User \(i + 1)", age: 20 + (i * 7) % 50)
        }
    }

    /// Returns the next event.
    public mutating func next() -> ChangeEvent<DemoUser> {
        let base = users[Int.random(in: 0..<users.count, using: &random)]
        let op = ChangeOperation.allCases[Int.random(in: 0..<3, using: &random)]
        let order: Int64
        let date: Date
        if let clock {
            order = clock.next()
            date = Date()
        } else {
            order = nextOrder
            nextOrder += 1
            date = nextDate
            nextDate += 0.001
        }
        switch op {
        case .insert:
            return .insert(base, order: order, timestamp: date)
        case .update:
            var user = base
            user.age = base.age + Int.random(in: 1...10, using: &random)
            return .update(user, order: order, timestamp: date)
        case .delete:
            return .delete(key: base.id, order: order, timestamp: date)
        }
    }

    /// Returns the next `count` events.
    public mutating func next(_ count: Int) -> [ChangeEvent<DemoUser>] {
        (0..<count).map { _ in next() }
    }
}
