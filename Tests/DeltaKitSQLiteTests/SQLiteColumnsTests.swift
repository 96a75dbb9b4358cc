import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// Writes its fields in another order than its schema's (which its decoding gives).
struct BackwardsRow: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String
    var score: Double
    var key: Int { id }

    private enum CodingKeys: String, CodingKey { case id, name, score }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(score, forKey: .score)
        try container.encode(name, forKey: .name)
        try container.encode(id, forKey: .id)
    }
}

/// Leaves out `nickname` when it is `nil`.
struct SparseRow: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var nickname: String?
    var age: Int
    var key: Int { id }

    private enum CodingKeys: String, CodingKey { case id, nickname, age }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        if let nickname { try container.encode(nickname, forKey: .nickname) }
        try container.encode(age, forKey: .age)
    }
}

/// The columns are bound from the values the JSON writer captured, or read back from the JSON when a record does not
/// write its schema's fields in order: either way they hold the record's values.
@Suite("SQLiteStateStore: the columns of records with their own encode(to:)")
struct SQLiteColumnsTests {
    @Test("a record writing its fields out of order, or leaving one out, gets its values in its columns")
    func columns() async throws {
        let directory = try TemporaryDirectory()
        let backwards = directory.path("backwards.sqlite")
        let store = try SQLiteStateStore<BackwardsRow>(configuration: .init(path: backwards, source: "b"))
        try await store.apply(contentsOf: [
            .insert(BackwardsRow(id: 1, name: "tab\there \"q\"", score: 2.5), order: 1),
            .insert(BackwardsRow(id: 2, name: "Bo", score: -1), order: 2),
            .delete(key: 2, order: 3),
        ])
        #expect(
            try SQLiteStateStoreTests.sqlite3(
                backwards,
                "SELECT id, quote(name), quote(score), op FROM backwards_rows ORDER BY id;"
            ) == "1|'tab\there \"q\"'|2.5|insert\n2|NULL|NULL|delete\n"
        )
        #expect(try await store.value(forKey: 1) == BackwardsRow(id: 1, name: "tab\there \"q\"", score: 2.5))

        let sparse = directory.path("sparse.sqlite")
        let sparseStore = try SQLiteStateStore<SparseRow>(configuration: .init(path: sparse, source: "s"))
        try await sparseStore.apply(contentsOf: [
            .insert(SparseRow(id: 1, nickname: nil, age: 30), order: 1),
            .insert(SparseRow(id: 2, nickname: "Zo\u{eb}", age: 31), order: 2),
        ])
        #expect(
            try SQLiteStateStoreTests.sqlite3(sparse, "SELECT id, quote(nickname), age FROM sparse_rows ORDER BY id;")
                == "1|NULL|30\n2|'Zoë'|31\n"
        )
    }
}
