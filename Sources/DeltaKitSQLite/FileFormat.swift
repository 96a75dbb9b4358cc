import DeltaKit
import Foundation
import GRDB

/// The versions of a state file's format, recorded in the file and applied by GRDB's `DatabaseMigrator`.
///
/// Each version has an identifier that the file records (GRDB's `grdb_migrations` table) once it is applied. A
/// writable store applies the versions a file lacks when it opens it, each in a transaction of its own, so a crash
/// between two leaves a file the next writer completes. A new file gets every version in the transaction that
/// creates it, so no reader ever sees a file half created. A file that records a version this code does not know
/// was written by a newer DeltaKit: it is refused, never written, because this code cannot know what that version
/// changed. So a released version is never edited: a change of the format is a new version, appended.
///
/// Files written before the format had versions record `format_version = '1'` in `deltakit_meta` instead, with
/// the tables of the versions that existed when they were written. A writable store registers those versions as
/// applied (their `grdb_migrations` rows), removes the marker — a DeltaKit from before the versions then refuses
/// the file instead of writing a format it does not follow — and applies the versions the file lacks. A read-only
/// store reads such a file as it is.
struct FileFormat: Sendable {
    /// What a file holds when a store opens it.
    enum Contents: Equatable {
        /// No tables at all: a new file.
        case empty
        /// A state file from before the versions (``FileFormat/legacyFormatVersion``).
        case legacy
        /// A state file whose versions are recorded.
        case versioned
    }

    /// The `format_version` of every file written before the format had versions.
    static let legacyFormatVersion = "1"

    /// The version from which changes are recorded only while a feed is open (before it, the file's triggers record
    /// every change).
    static let changesOnDemand = "4-changes-on-demand"

    /// The version from which the history has one row per batch (``HistoryChunks``).
    static let historyRowsPerBatch = "5-history-rows-per-batch"

    /// Whether the file has version `identifier` (a reader reads older files as they are).
    static func has(_ identifier: String, _ db: Database) throws -> Bool {
        try db.tableExists("grdb_migrations")
            && (try String.fetchOne(db, sql: SQLiteSchema.selectMigration, arguments: [identifier])) != nil
    }

    /// One version of the format.
    private struct Version: Sendable {
        /// The identifier the file records once the version is applied.
        let identifier: String
        /// The table whose presence shows that a file from before the versions has this one.
        let legacyTable: String?
        let apply: @Sendable (Database) throws -> Void
    }

    /// In the order they are applied.
    private let versions: [Version]
    private let migrator: DatabaseMigrator

    /// The versions of a file with the state table `table` of records of `schema`; `identity` is what a new file
    /// records.
    init(table: String, schema: RecordSchema, identity: RecordedIdentity) {
        versions = [
            Version(identifier: "1-state", legacyTable: SQLiteSchema.meta) { db in
                try db.execute(sql: SQLiteSchema.createMeta)
                for (name, value) in identity.entries {
                    try db.execute(sql: SQLiteSchema.insertMeta, arguments: [name, value])
                }
                try db.execute(sql: SQLiteSchema.createState(table: table, schema: schema))
            },
            // The store id is what a change-feed position names, so it comes with the feed.
            Version(identifier: "2-changes", legacyTable: SQLiteSchema.changes) { db in
                try db.execute(sql: SQLiteSchema.insertMeta, arguments: ["store_id", StoreID.new()])
                try db.execute(sql: SQLiteSchema.createChanges(table: table, schema: schema))
            },
            Version(identifier: "3-fingerprints", legacyTable: SQLiteSchema.fingerprints) { db in
                try db.execute(sql: SQLiteSchema.createFingerprints)
            },
            // Changes are recorded only while a feed is open, by the writer's temporary triggers.
            Version(identifier: Self.changesOnDemand, legacyTable: nil) { db in
                try db.execute(sql: SQLiteSchema.dropPermanentTriggers(table: table))
            },
            Version(identifier: Self.historyRowsPerBatch, legacyTable: nil) { db in
                try db.execute(sql: SQLiteSchema.renameEventHistory)
                try db.execute(sql: SQLiteSchema.createHistoryRows)
                // The earlier rows, in the order they were applied, become one row; the limit it was kept to is unknown,
                // and needs none: the rows are exactly the newest events (see `HistoryChunks`).
                let events = try Row.fetchAll(db, sql: SQLiteSchema.selectEventHistory)
                if !events.isEmpty {
                    var blob: [UInt8] = []
                    for (index, row) in events.enumerated() {
                        (row[1] as Data).withUnsafeBytes {
                            HistoryChunks.append(order: row[0], applied: Int64(index + 1), json: $0, to: &blob)
                        }
                    }
                    let orders = events.map { $0[0] as Int64 }
                    try db.execute(
                        sql: SQLiteSchema.insertHistoryRow,
                        arguments: [orders.min()!, orders.max()!, events.count, 1, events.count, Data(blob)]
                    )
                }
                try db.execute(sql: SQLiteSchema.dropEventHistory)
            },
        ]
        var migrator = DatabaseMigrator()
        for version in versions {
            // The file has no foreign keys: nothing to defer.
            migrator.registerMigration(version.identifier, foreignKeyChecks: .immediate, migrate: version.apply)
        }
        self.migrator = migrator
    }

    /// What the file at `path` holds; throws `incompatibleStore` for a SQLite database that is not a state file,
    /// or a state file of a format this code does not read (one written by a newer DeltaKit).
    func contents(of db: Database, path: String) throws -> Contents {
        guard try db.tableExists(SQLiteSchema.meta) else {
            guard try Int.fetchOne(db, sql: SQLiteSchema.countTables) == 0 else {
                throw DeltaKitError(
                    code: .incompatibleStore,
                    message:
                        "\(path) is a SQLite database but not a DeltaKit state file (it has tables but no \(SQLiteSchema.meta)); it was left untouched — choose another path"
                )
            }
            return .empty
        }
        let applied = try migrator.appliedIdentifiers(db)
        let unknown = applied.subtracting(migrator.migrations)
        guard unknown.isEmpty else {
            throw DeltaKitError(
                code: .incompatibleStore,
                message:
                    "\(path) was written by a newer version of DeltaKit: its file format has versions this version does not know (\(unknown.sorted().joined(separator: ", "))); open it with that version, or delete it to rebuild the state from the topic"
            )
        }
        if let marker = try String.fetchOne(db, sql: SQLiteSchema.selectFormatVersion) {
            guard marker == Self.legacyFormatVersion, applied.isEmpty else {
                throw DeltaKitError(
                    code: .incompatibleStore,
                    message:
                        "\(path) holds format_version '\(marker)'\(applied.isEmpty ? "" : " beside grdb_migrations"), a file format this version of DeltaKit does not read; rebuild the file from the topic (delete it and materialize again)"
                )
            }
            return .legacy
        }
        guard !applied.isEmpty else {
            throw DeltaKitError(
                code: .incompatibleStore,
                message:
                    "\(path) records neither the versions of its file format (grdb_migrations) nor a format_version; it was changed outside DeltaKit — rebuild the file from the topic (delete it and materialize again)"
            )
        }
        return .versioned
    }

    /// Gives a new file every version, in the caller's transaction.
    func create(_ db: Database) throws {
        try db.execute(sql: SQLiteSchema.createMigrations)
        for version in versions {
            try version.apply(db)
            try db.execute(sql: SQLiteSchema.insertMigration, arguments: [version.identifier])
        }
    }

    /// Records, in the caller's transaction, the versions a file from before the versions has, and removes its
    /// `format_version`; ``migrate(_:)`` then applies the others.
    func adoptLegacyFile(_ db: Database) throws {
        try db.execute(sql: SQLiteSchema.createMigrations)
        for version in versions {
            guard let table = version.legacyTable, try db.tableExists(table) else { continue }
            try db.execute(sql: SQLiteSchema.insertMigration, arguments: [version.identifier])
        }
        try db.execute(sql: SQLiteSchema.deleteFormatVersion)
    }

    /// Applies the versions the file lacks, in order.
    func migrate(_ writer: some DatabaseWriter) throws {
        try migrator.migrate(writer)
    }
}
