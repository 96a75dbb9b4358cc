import DeltaKit

/// The demo's record: one user, `{"id":1,"name":"Alice","age":25}` on the wire.
///
/// Declaring the fields is all a record needs: the JSON on the topic, the SQLite table and the RisingWave
/// columns all come from this `Codable` declaration. The type's name is part of a state file's identity:
/// `materialize` names the table after it (`demo_users`) and records it, and a file opens only for a record of
/// the same name and fields.
struct DemoUser: ChangeRecord {
    static let keyField = "id"

    var id: Int
    var name: String
    var age: Int

    var key: Int { id }
}
