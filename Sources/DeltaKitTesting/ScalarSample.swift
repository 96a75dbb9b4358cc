public import DeltaKit
public import Foundation

/// A record with one field of every scalar kind DeltaKit supports: the fixture for round-trip and
/// validation checks (``EventSinkConformance``'s `makeScalarSink`).
public struct ScalarSample: ChangeRecord {
    /// A `String`-backed enum field.
    public enum Status: String, Codable, Hashable, Sendable, CaseIterable {
        /// Active.
        case active
        /// Suspended.
        case suspended
    }
    /// An `Int`-backed enum field.
    public enum Tier: Int, Codable, Hashable, Sendable, CaseIterable {
        /// Free tier.
        case free = 0
        /// Paid tier.
        case paid = 1
    }

    /// The key field on the wire and in SQL.
    public static let keyField = "id"

    /// The key.
    public var id: Int
    /// A string.
    public var label: String
    /// A double; must be finite.
    public var score: Double
    /// An optional float.
    public var ratio: Float?
    /// A decimal.
    public var amount: Decimal
    /// A date; the wire keeps microseconds.
    public var at: Date
    /// A UUID.
    public var token: UUID
    /// A `String`-backed enum.
    public var status: Status
    /// An `Int`-backed enum.
    public var tier: Tier
    /// A boolean.
    public var flag: Bool
    /// A small integer.
    public var small: Int16
    /// An optional unsigned integer; must fit a 64-bit signed column.
    public var big: UInt64?
    /// An optional URL.
    public var link: URL?

    /// The key: ``id``.
    public var key: Int { id }

    /// Creates a sample; every field but `id` has a typical default.
    public init(
        id: Int,
        label: String = "sample",
        score: Double = 1.5,
        ratio: Float? = 0.25,
        amount: Decimal = Decimal(string: "12.34")!,
        at: Date = Date(timeIntervalSince1970: 1_704_067_200.123456),
        token: UUID = UUID(uuidString: "e621e1f8-c36c-495a-93fc-0c247a3e6e5f")!,
        status: Status = .active,
        tier: Tier = .paid,
        flag: Bool = true,
        small: Int16 = -7,
        big: UInt64? = 42,
        link: URL? = URL(string: "https://example.com/a?b=c")
    ) {
        self.id = id
        self.label = label
        self.score = score
        self.ratio = ratio
        self.amount = amount
        self.at = at
        self.token = token
        self.status = status
        self.tier = tier
        self.flag = flag
        self.small = small
        self.big = big
        self.link = link
    }
}
