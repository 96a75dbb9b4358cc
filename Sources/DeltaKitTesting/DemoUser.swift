public import DeltaKit

/// The original demo's record: `{"id":1,"name":"Alice","age":25}`.
///
/// Used by the seeded ``DemoEventGenerator`` and DeltaKit's own tests, and wire-compatible with the
/// `DemoUser` the UserEvents example declares for itself; also a compact example of declaring a `ChangeRecord`.
public struct DemoUser: ChangeRecord, Comparable {
    /// The key field on the wire and in SQL.
    public static let keyField = "id"

    /// The user's id (the key).
    public var id: Int
    /// The user's name.
    public var name: String
    /// The user's age.
    public var age: Int

    /// The key: ``id``.
    public var key: Int { id }

    /// Creates a user.
    public init(id: Int, name: String, age: Int) {
        self.id = id
        self.name = name
        self.age = age
    }

    public static func < (lhs: DemoUser, rhs: DemoUser) -> Bool { lhs.id < rhs.id }
}
