public import DeltaKit
import Foundation

/// A record the benchmarks generate: `make(key:round:)` gives the value a key has in a round of the stream.
public protocol BenchRecord: ChangeRecord where Key == Int {
    /// The record for `key` in `round` (values change from round to round, so updates are visible changes).
    static func make(key: Int, round: Int) -> Self
}

/// The demo's record shape (`{"id":1,"name":"User 1","age":25}`), declared in the benchmarks' own module as an
/// application declares its record: DeltaKit's generic code then runs for a type it was not compiled with, as it
/// does in every application.
public struct BenchUser: BenchRecord {
    public static let keyField = "id"

    /// The key.
    public var id: Int
    /// A short name, as the demo's (`User 1234`: a small string, stored inline).
    public var name: String
    /// The age; it changes from round to round.
    public var age: Int

    public var key: Int { id }

    public init(id: Int, name: String, age: Int) {
        self.id = id
        self.name = name
        self.age = age
    }

    public static func make(key: Int, round: Int) -> BenchUser {
        BenchUser(id: key, name: "User \(key)", age: 20 + (key &* 7 &+ round) % 50)
    }
}

/// A record of scalar fields only (integers, a Boolean, a double): the shape whose decode and apply the hot path
/// should do without allocating.
public struct Reading: BenchRecord {
    public static let keyField = "id"

    /// The key.
    public var id: Int
    /// A counter.
    public var count: Int
    /// A flag.
    public var active: Bool
    /// A measurement.
    public var score: Double

    public var key: Int { id }

    public init(id: Int, count: Int, active: Bool, score: Double) {
        self.id = id
        self.count = count
        self.active = active
        self.score = score
    }

    public static func make(key: Int, round: Int) -> Reading {
        Reading(id: key, count: key &* 31 &+ round, active: (key &+ round) % 2 == 0, score: Double(key) + 0.25)
    }
}

/// A reproducible stream of change events over `keys` keys, the same on every run (no randomness, no clock).
///
/// Event `g` is about key `g % keys + 1` in round `g / keys`; each key cycles insert, update, update, delete from
/// round to round, shifted by its key, so every `keys` consecutive events touch each key once and hold a quarter
/// of each phase: after the first round every batch of `keys` events costs the same. Orders count up from 1;
/// timestamps advance one millisecond per event from 2024-01-01.
public struct EventStream<Record: BenchRecord> {
    /// How many distinct keys the stream cycles through.
    public let keys: Int
    private var next = 0

    public init(keys: Int) {
        precondition(keys > 0, "at least one key")
        self.keys = keys
    }

    /// The wire JSON of the next `count` events (what a consumer reads from the topic).
    public mutating func nextMessages(_ count: Int) throws -> [[UInt8]] {
        try next(count).map { Array(try $0.jsonData()) }
    }

    /// The next `count` events.
    public mutating func next(_ count: Int) -> [ChangeEvent<Record>] {
        var events: [ChangeEvent<Record>] = []
        events.reserveCapacity(count)
        for _ in 0..<count {
            let index = next
            next += 1
            let key = index % keys + 1
            let round = index / keys
            let order = Int64(index) + 1
            let timestamp = Date(timeIntervalSince1970: 1_704_067_200 + Double(index) / 1_000)
            switch (key + round) % 4 {
            case 0: events.append(.insert(.make(key: key, round: round), order: order, timestamp: timestamp))
            case 3: events.append(.delete(key: key, order: order, timestamp: timestamp))
            default: events.append(.update(.make(key: key, round: round), order: order, timestamp: timestamp))
            }
        }
        return events
    }
}
