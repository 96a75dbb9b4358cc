import DeltaKit
import Foundation

/// Every SQL text of a state file, in one place: the names of its tables and columns, the DDL of each version of
/// the file format (``FileFormat`` applies it), the statements on `deltakit_meta` and GRDB's `grdb_migrations`,
/// a writer's `PRAGMA`, and ``Statements``, the statements a store runs on its state. No other file of the module
/// writes SQL.
enum SQLiteSchema {
    // MARK: Names

    /// What the file holds (topic, record type, schema, table) and its id: one `name`, `value` row each.
    static let meta = "deltakit_meta"
    static let positions = "deltakit_positions"
    static let history = "deltakit_history"
    static let changes = "deltakit_changes"
    /// The last message applied per partition (`MessageFingerprint`), written with the positions.
    static let fingerprints = "deltakit_fingerprints"
    /// The state table's column holding the winning event's wire JSON (exact round trip, whatever the columns).
    static let eventColumn = "deltakit_event"

    /// Names a record field may not take: the state table's own columns.
    static let reservedColumns: Set<String> = [eventColumn]

    static func validateTable(_ name: String) throws {
        let valid =
            (1...63).contains(name.utf8.count)
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
            && !(name.utf8.first.map { $0 >= 0x30 && $0 <= 0x39 } ?? true)
            && !name.hasPrefix("sqlite_") && !name.hasPrefix("deltakit_")
        guard valid else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "SQLiteStateStore.tableName '\(name)' is not allowed; use 1–63 of a-z, 0-9 and _, not starting with a digit, 'sqlite_' or 'deltakit_'"
            )
        }
    }

    /// A quoted identifier (names are validated or come from a record's fields).
    static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The SQLite column type for a field type: what the `sqlite3` shell shows and sorts by. Decimals are
    /// kept as text, which SQLite would otherwise round to a double.
    static func columnType(_ type: RecordSchema.FieldType) -> String {
        switch type {
        case .bool, .int32, .int64: "INTEGER"
        case .float, .double: "REAL"
        default: "TEXT"
        }
    }

    // MARK: The file format's versions

    /// Version `1-state`: the identity table.
    static let createMeta = "CREATE TABLE \(meta) (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"

    /// Version `1-state`: the state table (one row per key: the record's columns, the winning event's order, op,
    /// timestamp and wire JSON), its index of tombstones, the history and the positions.
    static func createState(table: String, schema: RecordSchema) -> String {
        let q = quote
        let t = q(table)
        let key = q(schema.keyField)
        var columns: [String] = []
        for field in schema.fields {
            if field.name == schema.keyField {
                // An integer key is the rowid itself (INTEGER PRIMARY KEY); other keys get a unique index.
                columns.append("\(key) \(columnType(field.type)) PRIMARY KEY NOT NULL")
            } else {
                columns.append("\(q(field.name)) \(columnType(field.type))")
            }
        }
        columns.append("event_order INTEGER NOT NULL")
        columns.append("op TEXT NOT NULL")
        columns.append("ts TEXT NOT NULL")
        columns.append("\(eventColumn) BLOB NOT NULL")
        return """
            CREATE TABLE \(t) (\(columns.joined(separator: ", ")));
            CREATE INDEX \(q(table + "_deleted")) ON \(t) (event_order) WHERE op = 'delete';
            CREATE TABLE \(history) (seq INTEGER PRIMARY KEY, event_order INTEGER NOT NULL, \(eventColumn) BLOB NOT NULL);
            CREATE INDEX \(history)_order ON \(history) (event_order, seq);
            CREATE TABLE \(positions) (partition INTEGER PRIMARY KEY NOT NULL, next_offset INTEGER NOT NULL);
            """
    }

    /// Version `2-changes`: the change feed's table and the state table's triggers that record each visible
    /// change into it, in the transaction of the write.
    static func createChanges(table: String, schema: RecordSchema) -> String {
        let q = quote
        let t = q(table)
        let c = changes
        let event = eventColumn
        // A visible update: some value column changed (`IS NOT` compares NULLs as values).
        let valueColumns = schema.valueFields.map { q($0.name) }
        let valuesDiffer =
            valueColumns.isEmpty ? "0" : valueColumns.map { "OLD.\($0) IS NOT NEW.\($0)" }.joined(separator: " OR ")
        return """
            CREATE TABLE \(c) (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, \(event) BLOB NOT NULL);
            CREATE TRIGGER \(q(table + "_inserted")) AFTER INSERT ON \(t) WHEN NEW.op <> 'delete'
            BEGIN INSERT INTO \(c) (kind, \(event)) VALUES ('insert', NEW.\(event)); END;
            CREATE TRIGGER \(q(table + "_updated")) AFTER UPDATE ON \(t)
            WHEN NOT (OLD.op = 'delete' AND NEW.op = 'delete') AND (OLD.op = 'delete' OR NEW.op = 'delete' OR \(valuesDiffer))
            BEGIN INSERT INTO \(c) (kind, \(event)) VALUES (
                CASE WHEN OLD.op = 'delete' THEN 'insert' WHEN NEW.op = 'delete' THEN 'delete' ELSE 'update' END,
                CASE WHEN NEW.op = 'delete' THEN OLD.\(event) ELSE NEW.\(event) END); END;
            """
    }

    /// Version `3-fingerprints`: the last message applied per partition.
    static let createFingerprints =
        "CREATE TABLE \(fingerprints) (partition INTEGER PRIMARY KEY NOT NULL, \"offset\" INTEGER NOT NULL, timestamp INTEGER NOT NULL, digest INTEGER NOT NULL)"

    /// Version `4-changes-on-demand`: the state table's triggers and its index of tombstones go. The writer records
    /// changes only while a change feed of the file is open (``ChangeCapture``), with the same triggers made
    /// temporary on its own connection (``createCaptureTriggers(table:schema:)``); removing tombstones scans the
    /// table instead of keeping an index up to date on every write.
    static func dropPermanentTriggers(table: String) -> String {
        let q = quote
        return """
            DROP TRIGGER IF EXISTS \(q(table + "_inserted"));
            DROP TRIGGER IF EXISTS \(q(table + "_updated"));
            DROP INDEX IF EXISTS \(q(table + "_deleted"));
            """
    }

    /// Version `5-history-rows-per-batch`: the history as one row per batch (``HistoryChunks``): the newest
    /// events of the batch in one blob, with their lowest and highest order. The rows of the earlier history become
    /// one such row.
    static let createHistoryRows =
        "CREATE TABLE \(history) (seq INTEGER PRIMARY KEY, min_order INTEGER NOT NULL, max_order INTEGER NOT NULL, count INTEGER NOT NULL, first_applied INTEGER NOT NULL, last_applied INTEGER NOT NULL, events BLOB NOT NULL)"
    static let renameEventHistory = "ALTER TABLE \(history) RENAME TO \(history)_events"
    static let selectEventHistory = "SELECT event_order, \(eventColumn) FROM \(history)_events ORDER BY seq"
    static let dropEventHistory = "DROP TABLE \(history)_events"
    /// The history of a file before version 5, for a reader: one row per event.
    static let selectEventHistoryBefore5 =
        "SELECT \(eventColumn) FROM \(history) ORDER BY event_order DESC, seq DESC LIMIT ?"

    // MARK: The history's rows

    static let insertHistoryRow =
        "INSERT INTO \(history) (min_order, max_order, count, first_applied, last_applied, events) VALUES (?, ?, ?, ?, ?, ?)"
    static let selectHistoryBounds =
        "SELECT seq, min_order, max_order, count, first_applied, last_applied FROM \(history)"
    static let selectHistoryRow = "SELECT events FROM \(history) WHERE seq = ?"
    static let selectLastApplied = "SELECT coalesce(max(last_applied), 0) FROM \(history)"
    static let deleteHistoryRow = "DELETE FROM \(history) WHERE seq = ?"
    /// The limit the writer keeps the history to (``HistoryChunks``).
    static let selectHistoryLimit = "SELECT value FROM \(meta) WHERE name = 'history_limit'"
    static let upsertHistoryLimit = "INSERT OR REPLACE INTO \(meta) (name, value) VALUES ('history_limit', ?)"

    // MARK: Recording changes while a feed is open

    /// The triggers of version `2-changes`, made temporary: they exist on the writer's connection only while it
    /// records changes, and in no file.
    static func createCaptureTriggers(table: String, schema: RecordSchema) -> String {
        let q = quote
        let t = "main." + q(table)
        let c = changes
        let event = eventColumn
        let valueColumns = schema.valueFields.map { q($0.name) }
        let valuesDiffer =
            valueColumns.isEmpty ? "0" : valueColumns.map { "OLD.\($0) IS NOT NEW.\($0)" }.joined(separator: " OR ")
        // A temporary trigger's body names the file's tables unqualified (SQLite refuses `main.` there).
        return """
            CREATE TEMP TRIGGER IF NOT EXISTS \(captureInserted) AFTER INSERT ON \(t) WHEN NEW.op <> 'delete'
            BEGIN INSERT INTO \(c) (kind, \(event)) VALUES ('insert', NEW.\(event)); END;
            CREATE TEMP TRIGGER IF NOT EXISTS \(captureUpdated) AFTER UPDATE ON \(t)
            WHEN NOT (OLD.op = 'delete' AND NEW.op = 'delete') AND (OLD.op = 'delete' OR NEW.op = 'delete' OR \(valuesDiffer))
            BEGIN INSERT INTO \(c) (kind, \(event)) VALUES (
                CASE WHEN OLD.op = 'delete' THEN 'insert' WHEN NEW.op = 'delete' THEN 'delete' ELSE 'update' END,
                CASE WHEN NEW.op = 'delete' THEN OLD.\(event) ELSE NEW.\(event) END); END;
            """
    }

    private static let captureInserted = "deltakit_capture_inserted"
    private static let captureUpdated = "deltakit_capture_updated"
    static let dropCaptureTriggers =
        "DROP TRIGGER IF EXISTS temp.\(captureInserted); DROP TRIGGER IF EXISTS temp.\(captureUpdated);"
    static let countCaptureTriggers = "SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger'"

    /// The `kind` of the row that marks changes not recorded (no feed was open): a position before it cannot be
    /// resumed from.
    static let gapKind = "gap"
    static let insertGap = "INSERT INTO \(changes) (kind, \(eventColumn)) VALUES ('\(gapKind)', x'')"
    /// Whether the last change row is a gap (or there is none: a new or emptied file has no position to protect).
    static let lastChangeIsGap =
        "SELECT coalesce((SELECT kind = '\(gapKind)' FROM \(changes) ORDER BY seq DESC LIMIT 1), 1)"
    /// Whether changes after a position (`?`) were not recorded.
    static let gapAfter = "SELECT EXISTS (SELECT 1 FROM \(changes) WHERE seq > ? AND kind = '\(gapKind)')"

    /// A writer's page cache: the state table's pages of a batch stay in memory instead of being read back from
    /// the operating system's cache on every batch (SQLite's default is 2 MiB).
    static let writerCacheSize = "PRAGMA cache_size = -32768"
    /// A writer's checkpoint interval, in pages (SQLite's default is 1,000, about 4 MiB): a batch of random keys
    /// rewrites most of the state table's pages, so a checkpoint after every batch or two would copy each page to
    /// the database file about as often as it is written to the WAL; every 8,192 pages (32 MiB of WAL) copies only
    /// the last version of each. The WAL file keeps that size (it is persistent).
    static let writerCheckpointPages = "PRAGMA wal_autocheckpoint = 8192"

    // MARK: deltakit_meta

    static let insertMeta = "INSERT INTO \(meta) (name, value) VALUES (?, ?)"
    static let selectMeta = "SELECT name, value FROM \(meta)"
    static let selectSource = "SELECT value FROM \(meta) WHERE name = 'source'"
    static let selectStoreID = "SELECT value FROM \(meta) WHERE name = 'store_id'"
    static let updateStoreID = "UPDATE \(meta) SET value = ? WHERE name = 'store_id'"
    /// The marker of a file written before the file format had versions (``FileFormat/legacyFormatVersion``).
    static let selectFormatVersion = "SELECT value FROM \(meta) WHERE name = 'format_version'"
    static let deleteFormatVersion = "DELETE FROM \(meta) WHERE name = 'format_version'"
    /// Tables of any kind: a file without `deltakit_meta` must have none to become a state file.
    static let countTables = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"

    // MARK: A writer's connection

    /// A writer's durability: `FULL` flushes every commit, `NORMAL` only at checkpoints (a power loss may then
    /// roll the file back by its last commits, positions with the state).
    static func synchronous(everyCommit: Bool) -> String {
        "PRAGMA synchronous = \(everyCommit ? "FULL" : "NORMAL")"
    }

    // MARK: grdb_migrations

    /// GRDB's table of the versions applied to a file, as `DatabaseMigrator` creates it (it reads
    /// `identifier` only): written directly when a file gets its versions in the transaction that checks it.
    static let createMigrations = "CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)"
    static let insertMigration = "INSERT INTO grdb_migrations (identifier) VALUES (?)"
    static let selectMigration = "SELECT identifier FROM grdb_migrations WHERE identifier = ?"
}

/// The statements a store runs on its state, built once from its table and schema.
struct Statements: Sendable {
    let selectWinner: String
    let updateRow: String
    let upsertIfNewer: String
    let trimChanges: String
    let selectChanges: String
    let changeBounds: String
    let upsertPosition: String
    let selectPositions: String
    let upsertFingerprint: String
    let selectFingerprints: String
    let selectLive: String
    let selectPage: String
    let selectPageAfter: String
    let selectPageWithKey: String
    let selectPageAfterWithKey: String
    let selectValue: String
    let countLive: String
    let countTombstones: String
    let removeTombstones: String
    let removeTombstonesByAge: String
    /// Empties the state, the history, the changes, the positions and the fingerprints (a rebuild).
    let removeAll: String
    /// The writer's temporary triggers that record changes while a feed is open.
    let createCaptureTriggers: String

    init(table: String, schema: RecordSchema) {
        let q = SQLiteSchema.quote
        let t = q(table)
        let key = q(schema.keyField)
        let event = SQLiteSchema.eventColumn
        let names = schema.fields.map { q($0.name) } + ["event_order", "op", "ts", event]
        let h = SQLiteSchema.history
        let p = SQLiteSchema.positions
        let c = SQLiteSchema.changes
        let f = SQLiteSchema.fingerprints
        selectWinner = "SELECT event_order, \(event) FROM \(t) WHERE \(key) = ?"
        let nonKey = names.filter { $0 != key }
        updateRow = "UPDATE \(t) SET \(nonKey.map { "\($0) = ?" }.joined(separator: ", ")) WHERE \(key) = ?"
        let updates = names.filter { $0 != key }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        upsertIfNewer =
            "INSERT INTO \(t) (\(names.joined(separator: ", "))) VALUES (\(names.map { _ in "?" }.joined(separator: ", "))) ON CONFLICT (\(key)) DO UPDATE SET \(updates) WHERE excluded.event_order > \(t).event_order"
        trimChanges = "DELETE FROM \(c) WHERE seq <= (SELECT max(seq) FROM \(c)) - ?"
        selectChanges = "SELECT seq, kind, \(event) FROM \(c) WHERE seq > ? ORDER BY seq LIMIT ?"
        changeBounds =
            "SELECT (SELECT min(seq) FROM \(c)), coalesce((SELECT seq FROM sqlite_sequence WHERE name = '\(c)'), 0)"
        upsertPosition = "INSERT OR REPLACE INTO \(p) (partition, next_offset) VALUES (?, ?)"
        selectPositions = "SELECT partition, next_offset FROM \(p) ORDER BY partition"
        upsertFingerprint =
            "INSERT OR REPLACE INTO \(f) (partition, \"offset\", timestamp, digest) VALUES (?, ?, ?, ?)"
        selectFingerprints = "SELECT partition, \"offset\", timestamp, digest FROM \(f) ORDER BY partition"
        selectLive = "SELECT \(event) FROM \(t) WHERE op <> 'delete' ORDER BY \(key)"
        selectPage = "SELECT \(event) FROM \(t) WHERE op <> 'delete' ORDER BY \(key) LIMIT ?"
        selectPageAfter = "SELECT \(event) FROM \(t) WHERE \(key) > ? AND op <> 'delete' ORDER BY \(key) LIMIT ?"
        selectPageWithKey = "SELECT \(event), \(key) FROM \(t) WHERE op <> 'delete' ORDER BY \(key) LIMIT ?"
        selectPageAfterWithKey =
            "SELECT \(event), \(key) FROM \(t) WHERE \(key) > ? AND op <> 'delete' ORDER BY \(key) LIMIT ?"
        selectValue = "SELECT \(event) FROM \(t) WHERE \(key) = ? AND op <> 'delete'"
        countLive = "SELECT count(*) FROM \(t) WHERE op <> 'delete'"
        countTombstones = "SELECT count(*) FROM \(t) WHERE op = 'delete'"
        removeTombstones = "DELETE FROM \(t) WHERE op = 'delete' AND event_order < ?"
        removeTombstonesByAge = "DELETE FROM \(t) WHERE op = 'delete' AND ts < ?"
        removeAll = [t, h, c, p, f].map { "DELETE FROM \($0);" }.joined(separator: " ")
        createCaptureTriggers = SQLiteSchema.createCaptureTriggers(table: table, schema: schema)
    }
}
