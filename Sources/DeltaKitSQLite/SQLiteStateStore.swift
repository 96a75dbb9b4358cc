public import DeltaKit
public import Foundation
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
/// their canonical form and an invalid event is refused with the sink's error.
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
    private let schema: RecordSchema
    let sql: Statements
    /// A random id written into the file when it is created, and anew by ``removeAll()``: change-feed positions
    /// carry it.
    var storeID: String { currentStoreID.withLock { $0 } }
    private let currentStoreID: Mutex<String>
    /// The file's identity on the disk when it was opened: a feed notices a file deleted and created anew.
    let fileIdentity: FileIdentity?
    /// Held by a writable store: one writer per file.
    private let writerLock: WriterLock?

    /// Opens (or creates) the state file.
    ///
    /// A writable store is the file's one writer: it holds a lock (`<file>-writer.lock`, released when the store
    /// is deinitialized or its process ends) that a second writable store, in any process, is refused.
    ///
    /// - Throws: `DeltaKitError` — `invalidConfiguration` for a bad setting or an unsupported record;
    ///   `incompatibleStore` when the file holds another topic, record schema, table or format version (the
    ///   message names both; the file is left untouched); `storageFailed` for a file that cannot be opened or
    ///   is not a SQLite database (a corrupt file is reported, never replaced), or when another process (or
    ///   store) is writing the file.
    public init(configuration: Configuration) throws {
        try configuration.validate()
        let schema = try Record.schema
        for field in schema.fields where SQLiteNames.reservedColumns.contains(field.name) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "\(Record.self) has a field '\(field.name)', a name SQLiteStateStore reserves for its own column"
            )
        }
        let tableName = configuration.tableName ?? RecordSchema.snakeCaseName(of: Record.self) + "s"
        try SQLiteNames.validateTable(tableName)
        self.configuration = configuration
        self.tableName = tableName
        self.schema = schema
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
        var grdb = GRDB.Configuration()
        grdb.readonly = configuration.readOnly
        grdb.busyMode = .timeout(configuration.busyTimeout.secondsAsDouble)
        grdb.label = "DeltaKitSQLite"
        if !configuration.readOnly {
            let synchronous = configuration.syncsEveryCommit ? "FULL" : "NORMAL"
            grdb.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
                try db.persistWAL()
            }
        }
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
        } catch {
            throw Self.storageError(error, path: path, doing: "opening")
        }
        let pool = self.pool
        let createTables = sql.createTables
        do {
            let source = try configuration.source ?? Self.storedSource(pool, path: path)
            self.source = source
            let identity = Identity(
                source: source,
                record: "\(Record.self)",
                schema: schema.description,
                table: tableName
            )
            if configuration.readOnly {
                try pool.read { db in try Self.check(identity, in: db, path: path, creating: false) }
            } else {
                try pool.write { db in
                    try Self.check(identity, in: db, path: path, creating: true)
                    try db.execute(sql: createTables)
                }
            }
            currentStoreID = Mutex(try pool.read { db in try Self.storeID(db) })
            fileIdentity = FileIdentity(path: path)
        } catch let error as DeltaKitError {
            throw error
        } catch {
            throw Self.storageError(error, path: path, doing: "opening")
        }
    }

    // MARK: Writing

    /// Applies one event under `LatestStateMerge` and returns the visible change, if any. Positions are not
    /// changed: use ``apply(contentsOf:positions:)`` when reading a topic.
    ///
    /// - Throws: `DeltaKitError` — `serializationFailed` for an invalid event (the state is unchanged),
    ///   `storageFailed` when the file cannot be written.
    @discardableResult
    public func apply(_ event: ChangeEvent<Record>) async throws -> StateChange<Record>? {
        let prepared = try Prepared(event.canonicalized(), schema: schema)
        return try await write { db in
            let previous = try self.current(prepared.event.key, keyValue: prepared.keyValue, db)
            guard try self.writeBatch([prepared], positions: [:], db) == [true] else { return nil }
            switch (previous?.record, prepared.event.record) {
            case (nil, nil): return nil
            case (nil, let new?): return StateChange(kind: .insert, key: prepared.event.key, record: new)
            case (let old?, nil): return StateChange(kind: .delete, key: prepared.event.key, record: old)
            case (let old?, let new?):
                return old == new ? nil : StateChange(kind: .update, key: prepared.event.key, record: new)
            }
        }
    }

    /// Applies the events in order in one transaction (nothing of the batch when one is invalid).
    public func apply(contentsOf events: [ChangeEvent<Record>]) async throws {
        try await apply(contentsOf: events, positions: [:])
    }

    /// Applies `events` in order and records `positions` (the next offset to read, per partition of
    /// ``source``) in one transaction: after a crash the file holds all of it or none of it.
    ///
    /// - Throws: `DeltaKitError` — `serializationFailed` for an invalid event (nothing of the batch is
    ///   applied), `invalidConfiguration` for a negative offset, `storageFailed` when the file cannot be written.
    public func apply(contentsOf events: [ChangeEvent<Record>], positions: [Int32: Int64]) async throws {
        try await apply(contentsOf: events, positions: positions, fingerprints: [:])
    }

    /// Applies `events` in order and records `positions` and `fingerprints` (the last message applied per
    /// partition) in one transaction.
    ///
    /// - Throws: as ``apply(contentsOf:positions:)``.
    public func apply(
        contentsOf events: [ChangeEvent<Record>],
        positions: [Int32: Int64],
        fingerprints: [Int32: MessageFingerprint]
    ) async throws {
        for (partition, offset) in positions where partition < 0 || offset < 0 {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "position \(offset) for partition \(partition) of '\(source)' is negative"
            )
        }
        let prepared = try events.map { try Prepared($0.canonicalized(), schema: schema) }
        guard !prepared.isEmpty || !positions.isEmpty else { return }
        try await write { db in
            _ = try self.writeBatch(prepared, positions: positions, db)
            let statement = try db.cachedStatement(sql: self.sql.upsertFingerprint)
            for (partition, fingerprint) in fingerprints {
                try statement.execute(arguments: [
                    Int64(partition), fingerprint.offset, fingerprint.timestamp, Int64(bitPattern: fingerprint.digest),
                ])
            }
        }
    }

    /// The fingerprint of the last message applied per partition, as recorded with the positions.
    public func fingerprints() async throws -> [Int32: MessageFingerprint] {
        try await read { db in
            guard try db.tableExists(SQLiteNames.fingerprints) else { return [:] }
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

    /// Removes every key, the history, the changes, the positions and the fingerprints in one transaction, and
    /// gives the file a new id: change feeds of the file (in any process) end with `changesUnavailable`, and a
    /// materializer starting on it reads its topic from the beginning. Used by `KafkaMaterializer` to rebuild
    /// from a recreated topic.
    public func removeAll() async throws {
        let newID = Self.newStoreID()
        try await write { db in
            for table in [self.tableName, SQLiteNames.history, SQLiteNames.changes, SQLiteNames.positions] {
                try db.execute(sql: "DELETE FROM \(SQLiteNames.quote(table))")
            }
            if try db.tableExists(SQLiteNames.fingerprints) {
                try db.execute(sql: "DELETE FROM \(SQLiteNames.fingerprints)")
            }
            try db.execute(
                sql: "UPDATE \(SQLiteNames.meta) SET value = ? WHERE name = 'store_id'",
                arguments: [newID]
            )
        }
        currentStoreID.withLock { $0 = newID }
    }

    /// Writes `events` in order, their history and `positions`, in the caller's transaction; returns whether
    /// each event won (superseded the stored winner).
    private func writeBatch(_ events: [Prepared], positions: [Int32: Int64], _ db: Database) throws -> [Bool] {
        let won = try events.map { try applyOne($0, db) }
        if configuration.historyLimit > 0, !events.isEmpty {
            // Only the batch's newest `historyLimit` events can survive the trim.
            let insert = try db.cachedStatement(sql: sql.insertHistory)
            for index in Self.newest(events, limit: configuration.historyLimit) {
                try insert.execute(arguments: [events[index].event.order, events[index].json])
            }
            try trimHistory(db)
        }
        if !events.isEmpty { try trimChanges(db) }
        let statement = try db.cachedStatement(sql: sql.upsertPosition)
        for (partition, offset) in positions {
            try statement.execute(arguments: [Int64(partition), offset])
        }
        return won
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

    /// Removes the rows of deleted keys whose delete is older than `order`, making room (a later insert of an
    /// older order could then bring such a key back: only remove what no producer can still send).
    ///
    /// - Returns: The number of removed rows.
    @discardableResult
    public func removeTombstones(olderThan order: Int64) async throws -> Int {
        try await write { db in
            try db.execute(sql: self.sql.removeTombstones, arguments: [order])
            return db.changesCount
        }
    }

    /// Removes the rows of deleted keys whose delete event's timestamp (`ts`) is before `date`: expiry by age,
    /// for a topic whose retention (or compaction's `delete.retention.ms`) has passed them. The same caution as
    /// ``removeTombstones(olderThan:)`` applies.
    ///
    /// - Returns: The number of removed rows.
    @discardableResult
    public func removeTombstones(deletedBefore date: Date) async throws -> Int {
        // `ts` is written in one fixed form (UTC, microseconds), so text order is time order.
        let bound = EventTimestamp.format(date)
        return try await write { db in
            try db.execute(sql: self.sql.removeTombstonesByAge, arguments: [bound])
            return db.changesCount
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
        let keyValue = try key.map { try Prepared.keyValue($0, schema: schema) }
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
        let keyValue = try Prepared.keyValue(key, schema: schema)
        return try await read { db in
            try Row.fetchOne(db, sql: self.sql.selectValue, arguments: [keyValue]).map { try self.record(from: $0) }
        }
    }

    /// The most recent events applied, newest (highest order) first: at most
    /// `min(limit, historyLimit)`.
    public func history(limit: Int) async throws -> [ChangeEvent<Record>] {
        try DeltaKitError.check(limit, in: 0...Int.max, "history limit")
        let count = min(limit, configuration.historyLimit)
        guard count > 0 else { return [] }
        return try await read { db in
            try Row.fetchAll(db, sql: self.sql.selectHistory, arguments: [count]).map {
                try self.event(from: $0[0] as Data)
            }
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

    // MARK: Internals

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as DeltaKitError {
            throw error
        } catch {
            throw Self.storageError(error, path: configuration.path, doing: "reading")
        }
    }

    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        guard !configuration.readOnly else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "the state file \(configuration.path) was opened read-only; open it with readOnly: false to apply events"
            )
        }
        do {
            return try await pool.write(body)
        } catch let error as DeltaKitError {
            throw error
        } catch {
            throw Self.storageError(error, path: configuration.path, doing: "writing")
        }
    }

    /// The stored winner's order and (only when a tie needs it) the event itself.
    private struct Stored {
        var order: Int64
        var json: Data
        var record: Record?
    }

    private func currentOrder(_ keyValue: DatabaseValue, _ db: Database) throws -> Stored? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: sql.selectWinner), arguments: [keyValue]) else {
            return nil
        }
        return Stored(order: row[0], json: row[1], record: nil)
    }

    private func current(_ key: Record.Key, keyValue: DatabaseValue, _ db: Database) throws -> Stored? {
        guard var stored = try currentOrder(keyValue, db) else { return nil }
        stored.record = try event(from: stored.json).record
        return stored
    }

    /// Writes `event` if it supersedes the stored winner; `true` when it won. One statement for the usual case
    /// (a newer order wins, a new key is inserted); only when nothing changed — an older order, or a tie — is the
    /// stored winner read, and a tie merged in Swift. The table's triggers record the visible change for feeds.
    private func applyOne(_ event: Prepared, _ db: Database) throws -> Bool {
        try db.cachedStatement(sql: sql.upsertIfNewer).execute(arguments: event.arguments)
        if db.changesCount > 0 { return true }
        guard let previous = try currentOrder(event.keyValue, db), previous.order == event.event.order,
            LatestStateMerge.supersedes(event.event, try self.event(from: previous.json))
        else { return false }
        try db.cachedStatement(sql: sql.updateRow).execute(arguments: event.updateArguments)
        return true
    }

    private func trimChanges(_ db: Database) throws {
        try db.cachedStatement(sql: sql.trimChanges).execute(arguments: [configuration.changeBufferLimit])
    }

    /// The indices of the `limit` events with the highest orders (the later one among equal orders), ascending.
    private static func newest(_ events: [Prepared], limit: Int) -> [Int] {
        guard events.count > limit else { return Array(events.indices) }
        let chosen = events.indices.sorted {
            (events[$0].event.order, $0) > (events[$1].event.order, $1)
        }.prefix(limit)
        return chosen.sorted()
    }

    private func trimHistory(_ db: Database) throws {
        guard configuration.historyLimit > 0 else { return }
        try db.cachedStatement(sql: sql.trimHistory).execute(arguments: [configuration.historyLimit])
    }

    private func record(from row: Row) throws -> Record {
        guard let record = try event(from: row[0] as Data).record else {
            throw DeltaKitError(
                code: .storageFailed,
                message:
                    "a live row of \(tableName) in \(configuration.path) holds a delete event; the file was changed outside DeltaKit"
            )
        }
        return record
    }

    func event(from json: Data) throws -> ChangeEvent<Record> {
        do {
            return try ChangeEvent<Record>(jsonData: json)
        } catch {
            throw DeltaKitError(
                code: .storageFailed,
                message: "an event stored in \(configuration.path) does not decode as \(Record.self): \(error)",
                underlying: error
            )
        }
    }

    // MARK: Identity of a file

    private struct Identity: Equatable {
        var source: String
        var record: String
        var schema: String
        var table: String
        var formatVersion = SQLiteNames.formatVersion

        var entries: [(String, String)] {
            [
                ("format_version", formatVersion), ("source", source), ("record", record), ("schema", schema),
                ("table", table),
            ]
        }
    }

    /// Checks that the file is a DeltaKit state file for this source, record and table (writing the identity
    /// into a new file when `creating`).
    private static func check(_ identity: Identity, in db: Database, path: String, creating: Bool) throws {
        let hasMeta = try db.tableExists(SQLiteNames.meta)
        if !hasMeta {
            let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
            guard tables == 0 else {
                throw DeltaKitError(
                    code: .incompatibleStore,
                    message:
                        "\(path) is a SQLite database but not a DeltaKit state file (it has tables but no \(SQLiteNames.meta)); it was left untouched — choose another path"
                )
            }
            guard creating else {
                throw DeltaKitError(
                    code: .incompatibleStore,
                    message: "\(path) is empty: no DeltaKit state in it yet; materialize the topic into it first"
                )
            }
            try db.execute(
                sql: "CREATE TABLE \(SQLiteNames.meta) (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
            )
            for (name, value) in identity.entries + [("store_id", newStoreID())] {
                try db.execute(
                    sql: "INSERT INTO \(SQLiteNames.meta) (name, value) VALUES (?, ?)",
                    arguments: [name, value]
                )
            }
            return
        }
        var stored: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT name, value FROM \(SQLiteNames.meta)") {
            stored[row[0]] = row[1]
        }
        for (name, expected) in identity.entries where stored[name] != expected {
            let found = stored[name].map { "'\($0)'" } ?? "nothing"
            let hint =
                name == "format_version"
                ? "this version of DeltaKit reads format \(expected); rebuild the file from the topic (delete it and materialize again)"
                : "open the file with the \(name == "source" ? "topic" : name) it was written for, or use another path (or delete it to rebuild from the topic)"
            let what = name == "source" ? "topic" : name
            throw DeltaKitError(
                code: .incompatibleStore,
                message: "\(path) holds \(what) \(found), not '\(expected)'; \(hint)"
            )
        }
    }

    private static func newStoreID() -> String { String(UInt64.random(in: 0...UInt64.max), radix: 36) }

    static func storeID(_ db: Database) throws -> String {
        try String.fetchOne(db, sql: "SELECT value FROM \(SQLiteNames.meta) WHERE name = 'store_id'") ?? "0"
    }

    /// The topic recorded in an existing file (for a store opened without ``Configuration/source``).
    private static func storedSource(_ pool: DatabasePool, path: String) throws -> String {
        let source = try pool.read { db -> String? in
            guard try db.tableExists(SQLiteNames.meta) else { return nil }
            return try String.fetchOne(db, sql: "SELECT value FROM \(SQLiteNames.meta) WHERE name = 'source'")
        }
        guard let source else {
            throw DeltaKitError(
                code: .incompatibleStore,
                message:
                    "\(path) records no topic: it is not a DeltaKit state file or holds no state yet; materialize a topic into it first, or name the topic"
            )
        }
        return source
    }

    private static func storageError(_ error: any Error, path: String, doing: String) -> DeltaKitError {
        if let error = error as? DatabaseError {
            let failure = SQLiteFailure(
                code: error.extendedResultCode.rawValue,
                message: error.message ?? "\(error.resultCode)"
            )
            let hint: String
            switch error.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT:
                hint =
                    "the file is not a SQLite database or is corrupt; it was left untouched — move it away to rebuild the state from the topic"
            case .SQLITE_CANTOPEN:
                hint = "check that the directory exists and is writable"
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                hint = "another process holds the write lock; run one materializer per file"
            case .SQLITE_FULL:
                hint = "the disk is full"
            case .SQLITE_READONLY, .SQLITE_PERM:
                hint = "the file or its directory is not writable"
            default:
                hint = "see the underlying SQLite error"
            }
            return DeltaKitError(
                code: .storageFailed,
                message: "\(doing) the state file \(path) failed: \(failure.message); \(hint)",
                underlying: failure
            )
        }
        return DeltaKitError(
            code: .storageFailed,
            message: "\(doing) the state file \(path) failed: \(error)",
            underlying: error
        )
    }
}

/// An error of the SQLite engine under a ``SQLiteStateStore``, as the `underlying` error of a `DeltaKitError`.
public struct SQLiteFailure: Error, Sendable, CustomStringConvertible {
    /// SQLite's extended result code (`SQLITE_NOTADB` is 26, `SQLITE_BUSY` 5, `SQLITE_FULL` 13, …).
    public var code: Int32
    /// SQLite's message.
    public var message: String

    /// SQLite's code and message.
    public var description: String { "SQLite error \(code): \(message)" }
}

extension SQLiteStateStore {
    /// An event ready to be written: its canonical form, wire JSON and column values.
    fileprivate struct Prepared: Sendable {
        var event: ChangeEvent<Record>
        var json: Data
        var keyValue: DatabaseValue
        /// Every column of the state row, in the table's order.
        var row: [DatabaseValue]
        /// `row` as statement arguments, built once. (GRDB's initializer from `[DatabaseValue]` maps through a key
        /// path, unspecialized: measured at an eighth of a materializer's CPU; the one from optional
        /// existentials maps through a closure.)
        var arguments: StatementArguments
        /// The key's position in `row`.
        var keyIndex: Int

        /// The row's columns except the key, then the key: the arguments of `Statements.updateRow` (needed only
        /// when two events for a key tie on order).
        var updateArguments: StatementArguments {
            var update = row
            update.remove(at: keyIndex)
            update.append(keyValue)
            return StatementArguments(update.map { $0 as (any DatabaseValueConvertible)? })
        }

        init(_ event: ChangeEvent<Record>, schema: RecordSchema) throws {
            self.event = event
            let (json, fields) = try event.wireJSONAndFields()
            self.json = Data(json)
            var row: [DatabaseValue] = []
            row.reserveCapacity(schema.fields.count + 4)
            for (index, field) in schema.fields.enumerated() {
                row.append(Self.value(Self.field(field.name, at: index, in: fields), field.type))
            }
            keyValue = row[schema.fields.firstIndex { $0.name == schema.keyField }!]
            row.append(event.order.databaseValue)
            row.append(event.operation.rawValue.databaseValue)
            let ts = Self.field(ChangeEventField.timestamp, at: schema.fields.count + 2, in: fields)
            row.append(Self.value(ts, .timestamp))
            row.append(self.json.databaseValue)
            self.row = row
            self.arguments = StatementArguments(row.map { $0 as (any DatabaseValueConvertible)? })
            self.keyIndex = schema.fields.firstIndex { $0.name == schema.keyField }!
        }

        /// The value of field `name`, expected at `index` (the encoder writes the schema's order).
        static func field(_ name: String, at index: Int, in fields: [(name: String, value: JSONScalar?)])
            -> JSONScalar?
        {
            if index < fields.count, fields[index].name == name { return fields[index].value }
            return fields.first { $0.name == name }?.value ?? nil
        }

        static func keyValue(_ key: Record.Key, schema: RecordSchema) throws -> DatabaseValue {
            let (_, fields) = try ChangeEvent<Record>.delete(
                key: key,
                order: 0,
                timestamp: Date(timeIntervalSince1970: 0)
            )
            .wireJSONAndFields()
            return value(field(schema.keyField, at: 0, in: fields), schema.key.type)
        }

        static func value(_ scalar: JSONScalar?, _ type: RecordSchema.FieldType) -> DatabaseValue {
            switch scalar {
            case nil: return .null
            case .bool(let flag): return (flag ? 1 : 0).databaseValue
            case .string(let text): return text.databaseValue
            case .number(let text, let isInteger):
                switch type {
                case .bool, .int32, .int64:
                    if isInteger, let number = Int64(text) { return number.databaseValue }
                    return text.databaseValue
                case .float, .double:
                    return (Double(text) ?? .nan).isNaN ? text.databaseValue : Double(text)!.databaseValue
                default:
                    return text.databaseValue
                }
            }
        }
    }
}

/// The SQL of a store, built once from its table and schema.
struct Statements: Sendable {
    let createTables: String
    let selectWinner: String
    let updateRow: String
    let upsertIfNewer: String
    let trimChanges: String
    let selectChanges: String
    let changeBounds: String
    let insertHistory: String
    let trimHistory: String
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
    let selectHistory: String
    let countLive: String
    let countTombstones: String
    let removeTombstones: String
    let removeTombstonesByAge: String

    init(table: String, schema: RecordSchema) {
        let q = SQLiteNames.quote
        let t = q(table)
        let key = q(schema.keyField)
        let event = SQLiteNames.eventColumn
        var columns: [String] = []
        for field in schema.fields {
            if field.name == schema.keyField {
                // An integer key is the rowid itself (INTEGER PRIMARY KEY); other keys get a unique index.
                columns.append("\(key) \(SQLiteNames.columnType(field.type)) PRIMARY KEY NOT NULL")
            } else {
                columns.append("\(q(field.name)) \(SQLiteNames.columnType(field.type))")
            }
        }
        columns.append("event_order INTEGER NOT NULL")
        columns.append("op TEXT NOT NULL")
        columns.append("ts TEXT NOT NULL")
        columns.append("\(event) BLOB NOT NULL")
        let names = schema.fields.map { q($0.name) } + ["event_order", "op", "ts", event]
        let h = SQLiteNames.history
        let p = SQLiteNames.positions
        let c = SQLiteNames.changes
        let f = SQLiteNames.fingerprints
        // A visible update: some value column changed (`IS NOT` compares NULLs as values).
        let valueColumns = schema.valueFields.map { q($0.name) }
        let valuesDiffer =
            valueColumns.isEmpty ? "0" : valueColumns.map { "OLD.\($0) IS NOT NEW.\($0)" }.joined(separator: " OR ")
        createTables = """
            CREATE TABLE IF NOT EXISTS \(t) (\(columns.joined(separator: ", ")));
            CREATE INDEX IF NOT EXISTS \(q(table + "_deleted")) ON \(t) (event_order) WHERE op = 'delete';
            CREATE TABLE IF NOT EXISTS \(h) (seq INTEGER PRIMARY KEY, event_order INTEGER NOT NULL, \(event) BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS \(h)_order ON \(h) (event_order, seq);
            CREATE TABLE IF NOT EXISTS \(p) (partition INTEGER PRIMARY KEY NOT NULL, next_offset INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS \(f) (partition INTEGER PRIMARY KEY NOT NULL, "offset" INTEGER NOT NULL, timestamp INTEGER NOT NULL, digest INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS \(c) (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, \(event) BLOB NOT NULL);
            CREATE TRIGGER IF NOT EXISTS \(q(table + "_inserted")) AFTER INSERT ON \(t) WHEN NEW.op <> 'delete'
            BEGIN INSERT INTO \(c) (kind, \(event)) VALUES ('insert', NEW.\(event)); END;
            CREATE TRIGGER IF NOT EXISTS \(q(table + "_updated")) AFTER UPDATE ON \(t)
            WHEN NOT (OLD.op = 'delete' AND NEW.op = 'delete') AND (OLD.op = 'delete' OR NEW.op = 'delete' OR \(valuesDiffer))
            BEGIN INSERT INTO \(c) (kind, \(event)) VALUES (
                CASE WHEN OLD.op = 'delete' THEN 'insert' WHEN NEW.op = 'delete' THEN 'delete' ELSE 'update' END,
                CASE WHEN NEW.op = 'delete' THEN OLD.\(event) ELSE NEW.\(event) END); END;
            """
        selectWinner = "SELECT event_order, \(event) FROM \(t) WHERE \(key) = ?"
        let nonKey = names.filter { $0 != key }
        updateRow = "UPDATE \(t) SET \(nonKey.map { "\($0) = ?" }.joined(separator: ", ")) WHERE \(key) = ?"
        let updates = names.filter { $0 != key }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        upsertIfNewer =
            "INSERT INTO \(t) (\(names.joined(separator: ", "))) VALUES (\(names.map { _ in "?" }.joined(separator: ", "))) ON CONFLICT (\(key)) DO UPDATE SET \(updates) WHERE excluded.event_order > \(t).event_order"
        insertHistory = "INSERT INTO \(h) (event_order, \(event)) VALUES (?, ?)"
        // Keep the newest `limit` by order (ties: the later applied); the index makes this a short scan.
        trimHistory =
            "DELETE FROM \(h) WHERE seq IN (SELECT seq FROM \(h) ORDER BY event_order DESC, seq DESC LIMIT -1 OFFSET ?)"
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
        selectHistory = "SELECT \(event) FROM \(h) ORDER BY event_order DESC, seq DESC LIMIT ?"
        countLive = "SELECT count(*) FROM \(t) WHERE op <> 'delete'"
        countTombstones = "SELECT count(*) FROM \(t) WHERE op = 'delete'"
        removeTombstones = "DELETE FROM \(t) WHERE op = 'delete' AND event_order < ?"
        removeTombstonesByAge = "DELETE FROM \(t) WHERE op = 'delete' AND ts < ?"
    }
}
