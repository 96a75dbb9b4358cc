import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// The file format's versions (GRDB's `DatabaseMigrator`): files from before the versions open and are brought up
/// to date, files of a newer DeltaKit are refused.
@Suite("SQLiteStateStore: the file format's versions")
struct SQLiteFileFormatTests {
    typealias Store = SQLiteStateStore<DemoUser>

    static let versions = "1-state\n2-changes\n3-fingerprints\n4-changes-on-demand\n5-history-rows-per-batch\n"

    @Test("a new file records every version of the format and no format_version")
    func newFileRecordsVersions() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        try await SQLiteStateStoreTests.open(path).apply(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        #expect(
            try SQLiteStateStoreTests.sqlite3(path, "SELECT identifier FROM grdb_migrations ORDER BY 1;")
                == Self.versions
        )
        #expect(
            try SQLiteStateStoreTests.sqlite3(path, "SELECT count(*) FROM deltakit_meta WHERE name = 'format_version';")
                == "0\n"
        )
    }

    /// A file as DeltaKit wrote it before the format had versions (`format_version = '1'`), at each of the shapes
    /// such files have: with the change feed and the fingerprints, without the fingerprints, and without either.
    @Test(
        "a file from before the versions opens, read-only as it is, writable brought up to date; rows, tombstones and positions are kept",
        arguments: ["current", "before fingerprints", "before the change feed"]
    )
    func legacyFileOpens(shape: String) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let hasFeed = shape != "before the change feed"
        let hasFingerprints = shape == "current"
        _ = try SQLiteStateStoreTests.sqlite3(
            path,
            try Self.legacyFile(changeFeed: hasFeed, fingerprints: hasFingerprints)
        )
        let fingerprints: [Int32: MessageFingerprint] =
            hasFingerprints ? [0: MessageFingerprint(offset: 4, timestamp: 1_700_000_000_000, digest: 77)] : [:]
        let alice = DemoUser(id: 1, name: "Alice", age: 25)

        // A reader takes the file as it is and writes nothing.
        let before = try SQLiteStateStoreTests.sqlite3(path, ".dump")
        do {
            let reader = try Store(configuration: .init(path: path, source: nil, readOnly: true))
            #expect(try await reader.snapshot() == [alice])
            #expect(try await reader.tombstoneCount() == 1)
            #expect(try await reader.positions() == [0: 5, 1: 7])
            #expect(try await reader.fingerprints() == fingerprints)
            #expect(try await reader.history(limit: 10).map(\.order) == [4, 2, 1])
        }
        #expect(try SQLiteStateStoreTests.sqlite3(path, ".dump") == before)

        // A writer registers the versions the file has, applies the others, and drops the old marker.
        do {
            let store = try SQLiteStateStoreTests.open(path)
            #expect(try await store.snapshot() == [alice])
            #expect(try await store.positions() == [0: 5, 1: 7])
            #expect(try await store.fingerprints() == fingerprints)
            // The tombstone of key 2 (order 4) still refuses an older insert.
            try await store.apply(.insert(DemoUser(id: 2, name: "Late", age: 1), order: 3))
            #expect(try await store.value(forKey: 2) == nil)
            // The change feed and the fingerprints work on it, whatever the file had.
            var feed = try await store.changes(from: .now).makeAsyncIterator()
            try await store.apply(
                contentsOf: [.update(DemoUser(id: 1, name: "Alice", age: 26), order: 5)],
                positions: [0: 6],
                fingerprints: [0: MessageFingerprint(offset: 5, timestamp: 1, digest: 2)]
            )
            #expect(
                try await feed.next()?.change
                    == StateChange(kind: .update, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26))
            )
        }
        #expect(
            try SQLiteStateStoreTests.sqlite3(path, "SELECT identifier FROM grdb_migrations ORDER BY 1;")
                == Self.versions
        )
        #expect(
            try SQLiteStateStoreTests.sqlite3(path, "SELECT count(*) FROM deltakit_meta WHERE name = 'format_version';")
                == "0\n"
        )
        let storeID = try SQLiteStateStoreTests.sqlite3(
            path,
            "SELECT value FROM deltakit_meta WHERE name = 'store_id';"
        )
        if hasFeed {
            #expect(storeID == "legacy1\n", "a file keeps its id: change-feed positions stay valid")
        } else {
            #expect(!storeID.isEmpty && storeID != "0\n", "the change feed's version gives the file an id")
        }
        let reopened = try SQLiteStateStoreTests.open(path, readOnly: true)
        #expect(try await reopened.snapshot() == [DemoUser(id: 1, name: "Alice", age: 26)])
        #expect(try await reopened.positions() == [0: 6, 1: 7])
        #expect(try await reopened.fingerprints() == [0: MessageFingerprint(offset: 5, timestamp: 1, digest: 2)])
    }

    /// A file of version `3-fingerprints`, whose triggers record every change and whose index keeps its tombstones:
    /// the shape every file had before changes were recorded only while a feed is open.
    @Test(
        "a file of version 3 opens: read-only as it is, its triggers feeding a feed; writable, brought up to date without them"
    )
    func versionThreeFileOpens() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        _ = try SQLiteStateStoreTests.sqlite3(
            path,
            try Self.legacyFile(changeFeed: true, fingerprints: true) + """

                DELETE FROM deltakit_meta WHERE name = 'format_version';
                CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                INSERT INTO grdb_migrations VALUES ('1-state'), ('2-changes'), ('3-fingerprints');
                """
        )
        let alice = DemoUser(id: 1, name: "Alice", age: 25)
        let objects =
            "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY 2;"
        #expect(
            try SQLiteStateStoreTests.sqlite3(path, objects)
                == "index|deltakit_history_order\nindex|demo_users_deleted\ntrigger|demo_users_inserted\ntrigger|demo_users_updated\n"
        )

        // A reader takes the file as it is: a writer of version 3 (here the sqlite3 shell) feeds its feed through the
        // file's triggers.
        do {
            let reader = try Store(configuration: .init(path: path, source: nil, readOnly: true))
            #expect(try await reader.snapshot() == [alice])
            var feed = try await reader.changes(from: .now).makeAsyncIterator()
            _ = try SQLiteStateStoreTests.sqlite3(
                path,
                "UPDATE demo_users SET age = 26, event_order = 5, deltakit_event = X'\(try Self.hex(.update(DemoUser(id: 1, name: "Alice", age: 26), order: 5)))' WHERE id = 1;"
            )
            #expect(
                try await feed.next()?.change
                    == StateChange(kind: .update, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26))
            )
        }

        // A writer brings it to version 5: the triggers and the tombstones' index go, the history becomes one row per
        // batch, the rows stay.
        let store = try SQLiteStateStoreTests.open(path)
        #expect(
            try SQLiteStateStoreTests.sqlite3(path, "SELECT identifier FROM grdb_migrations ORDER BY 1;")
                == Self.versions
        )
        #expect(try SQLiteStateStoreTests.sqlite3(path, objects) == "")
        #expect(try await store.history(limit: 10).map(\.order) == [4, 2, 1])
        #expect(try await store.snapshot() == [DemoUser(id: 1, name: "Alice", age: 26)])
        #expect(try await store.tombstoneCount() == 1)
        #expect(try await store.positions() == [0: 5, 1: 7])
        try await store.apply(.insert(DemoUser(id: 2, name: "Late", age: 1), order: 3))
        #expect(try await store.value(forKey: 2) == nil, "the tombstone of key 2 still refuses an older insert")
        #expect(try await store.removeTombstones(olderThan: 5) == 1)
        #expect(try await store.tombstoneCount() == 0)
        // Changes are recorded while a feed is open.
        var feed = try await store.changes(from: .now).makeAsyncIterator()
        try await store.apply(.delete(key: 1, order: 6))
        #expect(
            try await feed.next()?.change
                == StateChange(kind: .delete, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26))
        )
    }

    @Test("a file of a newer DeltaKit (a version this one does not know) is refused, naming the file; it is untouched")
    func newerFileRefused() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        try await SQLiteStateStoreTests.open(path).apply(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        _ = try SQLiteStateStoreTests.sqlite3(path, "INSERT INTO grdb_migrations (identifier) VALUES ('4-future');")
        let before = try SQLiteStateStoreTests.sqlite3(path, ".dump")
        for readOnly in [false, true] {
            let refused = #expect(throws: DeltaKitError.self) {
                _ = try SQLiteStateStoreTests.open(path, readOnly: readOnly)
            }
            #expect(refused?.code == .incompatibleStore)
            #expect(refused?.message.contains("\(path) was written by a newer version of DeltaKit") == true)
            #expect(refused?.message.contains("(4-future)") == true, "\(String(describing: refused))")
        }
        #expect(try SQLiteStateStoreTests.sqlite3(path, ".dump") == before)
    }

    /// The event's wire JSON in hexadecimal, for a blob literal.
    static func hex(_ event: ChangeEvent<DemoUser>) throws -> String {
        (try event.jsonData()).map { String(format: "%02x", $0) }.joined()
    }

    /// The SQL of a state file of `DemoUser`s for the topic `user-events` as DeltaKit wrote it before the file
    /// format had versions: Alice (id 1), the tombstone of Bob (id 2), their history and positions.
    static func legacyFile(changeFeed: Bool, fingerprints: Bool) throws -> String {
        let ts = Date(timeIntervalSince1970: 1_700_000_000)
        func hex(_ event: ChangeEvent<DemoUser>) throws -> String { "X'" + (try Self.hex(event)) + "'" }
        let alice = try hex(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1, timestamp: ts))
        let bob = try hex(.insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2, timestamp: ts))
        let bobDeleted = try hex(.delete(key: 2, order: 4, timestamp: ts))
        let schema = try DemoUser.schema.description
        var sql = """
            PRAGMA journal_mode = WAL;
            CREATE TABLE deltakit_meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            INSERT INTO deltakit_meta (name, value) VALUES ('format_version', '1');
            INSERT INTO deltakit_meta (name, value) VALUES ('source', 'user-events');
            INSERT INTO deltakit_meta (name, value) VALUES ('record', 'DemoUser');
            INSERT INTO deltakit_meta (name, value) VALUES ('schema', '\(schema)');
            INSERT INTO deltakit_meta (name, value) VALUES ('table', 'demo_users');
            CREATE TABLE IF NOT EXISTS "demo_users" ("id" INTEGER PRIMARY KEY NOT NULL, "name" TEXT, "age" INTEGER, event_order INTEGER NOT NULL, op TEXT NOT NULL, ts TEXT NOT NULL, deltakit_event BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS "demo_users_deleted" ON "demo_users" (event_order) WHERE op = 'delete';
            CREATE TABLE IF NOT EXISTS deltakit_history (seq INTEGER PRIMARY KEY, event_order INTEGER NOT NULL, deltakit_event BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS deltakit_history_order ON deltakit_history (event_order, seq);
            CREATE TABLE IF NOT EXISTS deltakit_positions (partition INTEGER PRIMARY KEY NOT NULL, next_offset INTEGER NOT NULL);

            """
        if fingerprints {
            sql += """
                CREATE TABLE IF NOT EXISTS deltakit_fingerprints (partition INTEGER PRIMARY KEY NOT NULL, "offset" INTEGER NOT NULL, timestamp INTEGER NOT NULL, digest INTEGER NOT NULL);
                INSERT INTO deltakit_fingerprints VALUES (0, 4, 1700000000000, 77);

                """
        }
        if changeFeed {
            sql += """
                INSERT INTO deltakit_meta (name, value) VALUES ('store_id', 'legacy1');
                CREATE TABLE IF NOT EXISTS deltakit_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, deltakit_event BLOB NOT NULL);
                CREATE TRIGGER IF NOT EXISTS "demo_users_inserted" AFTER INSERT ON "demo_users" WHEN NEW.op <> 'delete'
                BEGIN INSERT INTO deltakit_changes (kind, deltakit_event) VALUES ('insert', NEW.deltakit_event); END;
                CREATE TRIGGER IF NOT EXISTS "demo_users_updated" AFTER UPDATE ON "demo_users"
                WHEN NOT (OLD.op = 'delete' AND NEW.op = 'delete') AND (OLD.op = 'delete' OR NEW.op = 'delete' OR OLD."name" IS NOT NEW."name" OR OLD."age" IS NOT NEW."age")
                BEGIN INSERT INTO deltakit_changes (kind, deltakit_event) VALUES (
                    CASE WHEN OLD.op = 'delete' THEN 'insert' WHEN NEW.op = 'delete' THEN 'delete' ELSE 'update' END,
                    CASE WHEN NEW.op = 'delete' THEN OLD.deltakit_event ELSE NEW.deltakit_event END); END;

                """
        }
        sql += """
            INSERT INTO "demo_users" VALUES (1, 'Alice', 25, 1, 'insert', '2023-11-14T22:13:20.000000+00:00', \(alice));
            INSERT INTO "demo_users" VALUES (2, 'Bob', 30, 2, 'insert', '2023-11-14T22:13:20.000000+00:00', \(bob));
            UPDATE "demo_users" SET "name" = NULL, "age" = NULL, event_order = 4, op = 'delete', deltakit_event = \(bobDeleted) WHERE "id" = 2;
            INSERT INTO deltakit_history (event_order, deltakit_event) VALUES (1, \(alice)), (2, \(bob)), (4, \(bobDeleted));
            INSERT INTO deltakit_positions VALUES (0, 5), (1, 7);
            """
        return sql
    }
}
