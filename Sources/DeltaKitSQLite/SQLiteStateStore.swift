public import DeltaKit
import Foundation
import GRDB
import Synchronization

/// The latest state per key in a SQLite file: DeltaKit's durable embedded table, the alternative to
/// RisingWave that lives in your process and survives restarts.
///
/// One row per key holds the record's columns (readable with the `sqlite3` shell:
/// `SELECT * FROM users ORDER BY id`), the winning event's `event_order`, `op` and `ts`, and its exact wire JSON.
/// A deleted key keeps its row (`op = 'delete'`, value columns NULL) so that a late, older insert cannot bring
/// it back. A positions table holds the next offset to read per partition of ``source``: a batch of events
/// and the new positions are written in one transaction (``apply(contentsOf:positions:)``), so after a crash
/// the file holds exactly the state of the events before its positions — `KafkaMaterializer` resumes there.
///
/// The file is in WAL mode: readers in other processes see every committed batch while one process writes.
/// Memory stays bounded whatever the number of keys (reads page through the primary key).
///
/// The merge is the core's `LatestStateMerge` (the same tie rule as every other store); events are applied in
/// their canonical form, and a batch with an invalid event is refused whole with the sink's error.
///
/// ```swift
/// let store = try SQLiteStateStore<User>(configuration: .init(path: "users.sqlite", source: "user-events"))
/// let materializer = try await KafkaMaterializer(configuration: sourceConfiguration, store: store)
/// ```
public final class SQLiteStateStore<Record: ChangeRecord>: PositionedStateStore {
    /// The configuration the store was opened with.
    public let configuration: Configuration
    /// The state table's name (``Configuration/tableName`` or the derived one).
    public let tableName: String
    /// The topic the file's events and positions belong to (``Configuration/source``, or the file's own when
    /// that is `nil`).
    public let source: String

    let pool: DatabasePool
    let schema: RecordSchema
    /// The record's wire JSON layout: the write path's writer.
    let layout: WireLayout
    let sql: Statements
    /// A random id written into the file when it is created, and anew by ``removeAll()``: change-feed positions
    /// carry it.
    var storeID: String { currentStoreID.withLock { $0 } }
    let currentStoreID: Mutex<String>
    /// The file's identity on the disk when it was opened: a feed notices a file deleted and created anew.
    let fileIdentity: FileIdentity?
    /// Held by a writable store: one writer per file.
    private let writerLock: WriterLock?
    /// A writable store's side of the feeds' lock: whether a transaction records changes.
    let capture: ChangeCapture.Writer?
    /// The trace contexts of the changes this store recorded, for its own feeds' elements.
    let changeTraces = ChangeTraces()
    /// Whether the file records changes only while a feed is open (every file a writer of this version opened);
    /// a feed then registers itself (``ChangeCapture/Registration``).
    let recordsChangesOnDemand: Bool
    /// Whether the history has one row per batch (every file a writer of this version opened); a reader reads an
    /// older file's history of one row per event.
    let historyRowsPerBatch: Bool

    /// Opens (or creates) the state file.
    ///
    /// A writable store is the file's one writer: it holds a lock (`<file>-writer.lock`, released when the store
    /// is deinitialized or its process ends) that a second writable store, in any process, is refused. It brings
    /// a file written by an earlier version of DeltaKit up to this version's file format.
    ///
    /// - Throws: `DeltaKitError` — `invalidConfiguration` for a bad setting or an unsupported record;
    ///   `incompatibleStore` when the file holds another topic, record schema or table, or was written by a
    ///   newer version of DeltaKit (the message names both; the file is left untouched); `storageFailed` for a
    ///   file that cannot be opened or is not a SQLite database (a corrupt file is reported, never replaced), or
    ///   when another process (or store) is writing the file.
    public init(configuration: Configuration) throws {
        try configuration.validate()
        let schema = try Record.schema
        for field in schema.fields where SQLiteSchema.reservedColumns.contains(field.name) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "\(Record.self) has a field '\(field.name)', a name SQLiteStateStore reserves for its own column"
            )
        }
        let tableName = configuration.tableName ?? RecordSchema.snakeCaseName(of: Record.self) + "s"
        try SQLiteSchema.validateTable(tableName)
        self.configuration = configuration
        self.tableName = tableName
        self.schema = schema
        self.layout = try WireLayout.of(Record.self)
        self.sql = Statements(table: tableName, schema: schema)
        let path = configuration.path
        if configuration.readOnly || configuration.source == nil, !FileManager.default.fileExists(atPath: path) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "no state file at \(path); create it by materializing the topic first (UserEvents materialize --state \(path))"
            )
        }
        writerLock = configuration.readOnly ? nil : try WriterLock(databasePath: path)
        capture = configuration.readOnly ? nil : try ChangeCapture.Writer(databasePath: path)
        var grdb = GRDB.Configuration()
        grdb.readonly = configuration.readOnly
        grdb.busyMode = .timeout(configuration.busyTimeout.secondsAsDouble)
        grdb.label = "DeltaKitSQLite"
        if !configuration.readOnly {
            let synchronous = SQLiteSchema.synchronous(everyCommit: configuration.syncsEveryCommit)
            grdb.prepareDatabase { db in
                try db.execute(sql: synchronous)
                try db.persistWAL()
                // The pool's readers are read-only connections: only the writer keeps a large cache.
                if !db.configuration.readonly {
                    try db.execute(sql: SQLiteSchema.writerCacheSize)
                    try db.execute(sql: SQLiteSchema.writerCheckpointPages)
                }
            }
        }
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
        } catch {
            throw DeltaKitError.storage(error, path: path, doing: "opening")
        }
        let pool = self.pool
        do {
            let source = try configuration.source ?? RecordedIdentity.storedSource(pool, path: path)
            self.source = source
            let identity = RecordedIdentity(
                source: source,
                record: "\(Record.self)",
                schema: schema.description,
                table: tableName
            )
            let format = FileFormat(table: tableName, schema: schema, identity: identity)
            if configuration.readOnly {
                try pool.read { db in
                    guard try format.contents(of: db, path: path) != .empty else {
                        throw DeltaKitError(
                            code: .incompatibleStore,
                            message:
                                "\(path) is empty: no DeltaKit state in it yet; materialize the topic into it first"
                        )
                    }
                    try identity.check(in: db, path: path)
                }
            } else {
                // The file is checked before anything is written to it: a file of another topic, record or
                // format stays untouched.
                try pool.write { db in
                    switch try format.contents(of: db, path: path) {
                    case .empty:
                        try format.create(db)
                    case .legacy:
                        try identity.check(in: db, path: path)
                        try format.adoptLegacyFile(db)
                    case .versioned:
                        try identity.check(in: db, path: path)
                    }
                }
                try format.migrate(pool)
            }
            currentStoreID = Mutex(try pool.read { db in try StoreID.read(db) })
            (recordsChangesOnDemand, historyRowsPerBatch) = try pool.read { db in
                (
                    try FileFormat.has(FileFormat.changesOnDemand, db),
                    try FileFormat.has(FileFormat.historyRowsPerBatch, db)
                )
            }
            fileIdentity = FileIdentity(path: path)
        } catch let error as DeltaKitError {
            throw error
        } catch {
            throw DeltaKitError.storage(error, path: path, doing: "opening")
        }
    }

    // MARK: Reading

    /// Every live record, in key order. For large states prefer ``snapshot(after:limit:)``.
    public func snapshot() async throws -> [Record] {
        try await read { db in
            try Row.fetchAll(db, sql: self.sql.selectLive).map { try self.record(from: $0) }
        }
    }

    /// A page of live records after `key` in key order, read through the primary key: O(limit).
    public func snapshot(after key: Record.Key?, limit: Int) async throws -> [Record] {
        try DeltaKitError.check(limit, in: 0...Int.max, "snapshot page limit")
        guard limit > 0 else { return [] }
        let keyValue = try key.map { try Self.keyValue($0, schema: schema) }
        return try await read { db in
            let rows =
                if let keyValue {
                    try Row.fetchAll(db, sql: self.sql.selectPageAfter, arguments: [keyValue, limit])
                } else {
                    try Row.fetchAll(db, sql: self.sql.selectPage, arguments: [limit])
                }
            return try rows.map { try self.record(from: $0) }
        }
    }

    /// The live record for `key`, read through the primary key.
    public func value(forKey key: Record.Key) async throws -> Record? {
        let keyValue = try Self.keyValue(key, schema: schema)
        return try await read { db in
            try Row.fetchOne(db, sql: self.sql.selectValue, arguments: [keyValue]).map { try self.record(from: $0) }
        }
    }

    /// The live record for `key` with the order of the event it comes from (the row's stored event), in one read.
    public func valueAndOrder(forKey key: Record.Key) async throws -> (record: Record, order: Int64?)? {
        let keyValue = try Self.keyValue(key, schema: schema)
        return try await read { db -> (record: Record, order: Int64?)? in
            guard let row = try Row.fetchOne(db, sql: self.sql.selectValue, arguments: [keyValue]) else { return nil }
            let event = try self.event(from: row[0] as Data)
            return (try self.record(of: event), event.order)
        }
    }

    /// The most recent events applied, newest (highest order) first: at most
    /// `min(limit, historyLimit)`.
    public func history(limit: Int) async throws -> [ChangeEvent<Record>] {
        try DeltaKitError.check(limit, in: 0...Int.max, "history limit")
        let count = min(limit, configuration.historyLimit)
        guard count > 0 else { return [] }
        let rowsPerBatch = historyRowsPerBatch
        return try await read { db in
            guard rowsPerBatch else {
                return try Row.fetchAll(db, sql: SQLiteSchema.selectEventHistoryBefore5, arguments: [count]).map {
                    try self.event(from: $0[0] as Data)
                }
            }
            return try HistoryChunks.newest(db, limit: count).map { try self.event(from: $0.json) }
        }
    }

    /// The number of live records.
    public func count() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: self.sql.countLive) ?? 0 }
    }

    /// The number of deleted keys whose row is kept (see ``removeTombstones(olderThan:)``).
    public func tombstoneCount() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: self.sql.countTombstones) ?? 0 }
    }

    /// The next offset to read per partition of ``source``, as last recorded with a batch.
    public func positions() async throws -> [Int32: Int64] {
        try await read { db in
            var positions: [Int32: Int64] = [:]
            for row in try Row.fetchAll(db, sql: self.sql.selectPositions) {
                positions[Int32(truncatingIfNeeded: row[0] as Int64)] = row[1] as Int64
            }
            return positions
        }
    }

    /// The fingerprint of the last message applied per partition, as recorded with the positions.
    public func fingerprints() async throws -> [Int32: MessageFingerprint] {
        try await read { db in
            // A reader may have a file from before the fingerprints, which only a writer brings up to date.
            guard try db.tableExists(SQLiteSchema.fingerprints) else { return [:] }
            var fingerprints: [Int32: MessageFingerprint] = [:]
            for row in try Row.fetchAll(db, sql: self.sql.selectFingerprints) {
                fingerprints[Int32(truncatingIfNeeded: row[0] as Int64)] = MessageFingerprint(
                    offset: row[1],
                    timestamp: row[2],
                    digest: UInt64(bitPattern: row[3] as Int64)
                )
            }
            return fingerprints
        }
    }

    /// Runs `body` in a read transaction of its own: it sees the last committed batch, never part of one.
    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as DeltaKitError {
            throw error
        } catch {
            throw DeltaKitError.storage(error, path: configuration.path, doing: "reading")
        }
    }
}
