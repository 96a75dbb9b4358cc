public import DeltaKit
public import Foundation
import GRDB
import Synchronization

// The write path: events merged into the state table under `LatestStateMerge`, with their history, positions
// and fingerprints, one transaction per call.

extension SQLiteStateStore {
    /// Applies one event under `LatestStateMerge` and returns the visible change, if any. Positions are not
    /// changed: use ``apply(contentsOf:positions:)`` when reading a topic.
    ///
    /// - Throws: `DeltaKitError` — `serializationFailed` for an invalid event (the state is unchanged),
    ///   `storageFailed` when the file cannot be written.
    @discardableResult
    public func apply(_ event: ChangeEvent<Record>) async throws -> StateChange<Record>? {
        let event = try event.canonicalized(schema: schema)
        let batch = try prepare([event])
        let keyValue = try Self.keyValue(event.key, schema: schema)
        return try await write { db, recording in
            let previous = try self.current(keyValue: keyValue, db)
            guard try self.writeBatch(batch, [event], positions: [:], recording: recording, db) == [true] else {
                return nil
            }
            switch (previous?.record, event.record) {
            case (nil, nil): return nil
            case (nil, let new?): return StateChange(kind: .insert, key: event.key, record: new)
            case (let old?, nil): return StateChange(kind: .delete, key: event.key, record: old)
            case (let old?, let new?):
                return old == new ? nil : StateChange(kind: .update, key: event.key, record: new)
            }
        }
    }

    /// Applies the events in order in one transaction: all of them, or — when one is invalid — none.
    ///
    /// - Throws: `DeltaKitError` — `serializationFailed` for an invalid event (nothing of the batch is
    ///   applied), `storageFailed` when the file cannot be written (nothing of the batch is applied).
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
        // Every event is checked and written to the batch's buffer before the transaction starts: an invalid one
        // throws here, before anything of the batch is written.
        let canonical =
            schema.changesInRoundTrip ? try events.map { try $0.canonicalized(schema: schema) } : events
        let batch = try prepare(canonical)
        guard !events.isEmpty || !positions.isEmpty else { return }
        try await write { db, recording in
            _ = try self.writeBatch(batch, canonical, positions: positions, recording: recording, db)
            let statement = try db.cachedStatement(sql: self.sql.upsertFingerprint)
            for (partition, fingerprint) in fingerprints {
                try statement.execute(arguments: [
                    Int64(partition), fingerprint.offset, fingerprint.timestamp, Int64(bitPattern: fingerprint.digest),
                ])
            }
        }
    }

    /// Removes every key, the history, the changes, the positions and the fingerprints in one transaction, and
    /// gives the file a new id: change feeds of the file (in any process) end with `changesUnavailable`, and a
    /// materializer starting on it reads its topic from the beginning. Used by `KafkaMaterializer` to rebuild
    /// from a recreated topic.
    public func removeAll() async throws {
        let newID = StoreID.new()
        try await write { db, _ in
            try db.execute(sql: self.sql.removeAll)
            try db.execute(sql: SQLiteSchema.updateStoreID, arguments: [newID])
        }
        currentStoreID.withLock { $0 = newID }
    }

    /// Removes the rows of deleted keys whose delete is older than `order`, making room (a later insert of an
    /// older order could then bring such a key back: only remove what no producer can still send).
    ///
    /// - Returns: The number of removed rows.
    @discardableResult
    public func removeTombstones(olderThan order: Int64) async throws -> Int {
        try await write { db, _ in
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
        return try await write { db, _ in
            try db.execute(sql: self.sql.removeTombstonesByAge, arguments: [bound])
            return db.changesCount
        }
    }

    // MARK: One transaction

    /// Runs `body` in a write transaction, rolled back when it throws; `body` learns whether it must record the
    /// changes it makes (a change feed of the file is open, in any process: see ``ChangeCapture``).
    func write<T: Sendable>(_ body: @escaping @Sendable (Database, _ recording: Bool) throws -> T) async throws -> T {
        guard !configuration.readOnly, let capture else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "the state file \(configuration.path) was opened read-only; open it with readOnly: false to apply events"
            )
        }
        do {
            // As `DatabasePool.write`, with the feeds' lock taken on the writer's connection before the transaction
            // and released after its commit (or rollback).
            return try await pool.writeWithoutTransaction { db in
                let noFeed = try capture.beginTransaction()
                defer { if noFeed { capture.endTransaction() } }
                var result: T?
                try db.inTransaction {
                    result = try body(db, !noFeed)
                    return .commit
                }
                return result!
            }
        } catch let error as DeltaKitError {
            throw error
        } catch {
            throw DeltaKitError.storage(error, path: configuration.path, doing: "writing")
        }
    }

    /// Writes `events` (whose wire JSON and columns `batch` holds, in the same order) in order, their history and
    /// `positions`, in the caller's transaction; returns whether each event won (superseded the stored winner).
    ///
    /// With `recording`, the capture triggers record each visible change; without, they are dropped and a `gap`
    /// row marks that changes went unrecorded.
    private func writeBatch(
        _ batch: PreparedBatch,
        _ events: [ChangeEvent<Record>],
        positions: [Int32: Int64],
        recording: Bool,
        _ db: Database
    ) throws -> [Bool] {
        if !batch.entries.isEmpty { try prepareCapture(recording: recording, db) }
        var won: [Bool] = []
        won.reserveCapacity(batch.entries.count)
        try batch.bytes.withUnsafeBytes { bytes in
            let upsert = try RawStatement(db, sql: sql.upsertIfNewer)
            for index in batch.entries.indices {
                won.append(try applyOne(index, of: batch, events, bytes, upsert, db))
            }
            if configuration.historyLimit > 0, !batch.entries.isEmpty {
                // Only the batch's newest `historyLimit` events can survive the trim.
                let insert = try RawStatement(db, sql: sql.insertHistory)
                for index in batch.newest(limit: configuration.historyLimit) {
                    let entry = batch.entries[index]
                    insert.bind(1, entry.order)
                    insert.bindBlob(2, UnsafeRawBufferPointer(rebasing: bytes[entry.json]))
                    _ = try insert.execute()
                }
            }
        }
        if configuration.historyLimit > 0, !batch.entries.isEmpty { try trimHistory(db) }
        if recording, !batch.entries.isEmpty { try trimChanges(db) }
        let statement = try db.cachedStatement(sql: sql.upsertPosition)
        for (partition, offset) in positions {
            try statement.execute(arguments: [Int64(partition), offset])
        }
        return won
    }

    /// Makes the writer's connection record changes (`recording`) or not, and marks unrecorded changes.
    private func prepareCapture(recording: Bool, _ db: Database) throws {
        // Asked of the connection each time rather than remembered: a rolled-back transaction takes back the
        // triggers it created or dropped.
        let installed = try Int.fetchOne(db, sql: SQLiteSchema.countCaptureTriggers) ?? 0 > 0
        if recording {
            if !installed { try db.execute(sql: sql.createCaptureTriggers) }
        } else {
            if installed { try db.execute(sql: SQLiteSchema.dropCaptureTriggers) }
            // One gap row after the last recorded change is enough: every position is before it.
            if try Bool.fetchOne(db, sql: SQLiteSchema.lastChangeIsGap) != true {
                try db.execute(sql: SQLiteSchema.insertGap)
            }
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

    private func current(keyValue: DatabaseValue, _ db: Database) throws -> Stored? {
        guard var stored = try currentOrder(keyValue, db) else { return nil }
        stored.record = try event(from: stored.json).record
        return stored
    }

    /// Writes entry `index` of `batch` if it supersedes the stored winner; `true` when it won. One statement for the
    /// usual case (a newer order wins, a new key is inserted); only when nothing changed — an older order, or a
    /// tie — is the stored winner read, and a tie merged in Swift.
    private func applyOne(
        _ index: Int,
        of batch: PreparedBatch,
        _ events: [ChangeEvent<Record>],
        _ bytes: UnsafeRawBufferPointer,
        _ upsert: RawStatement,
        _ db: Database
    ) throws -> Bool {
        let entry = batch.entries[index]
        let fields = schema.fields
        var parameter: Int32 = 1
        for field in fields.indices {
            upsert.bind(parameter, batch.column(field, of: index), fields[field].type, in: bytes)
            parameter += 1
        }
        bindEnvelope(entry, from: parameter, bytes, upsert)
        if try upsert.execute() > 0 { return true }
        let keyValue = Self.databaseValue(
            batch.column(batch.keyIndex, of: index).scalar(in: bytes),
            schema.key.type
        )
        guard let previous = try currentOrder(keyValue, db), previous.order == entry.order,
            LatestStateMerge.supersedes(events[index], try self.event(from: previous.json))
        else { return false }
        // The row's columns other than the key, then the key (`Statements.updateRow`).
        let update = try RawStatement(db, sql: sql.updateRow)
        parameter = 1
        for field in fields.indices where field != batch.keyIndex {
            update.bind(parameter, batch.column(field, of: index), fields[field].type, in: bytes)
            parameter += 1
        }
        bindEnvelope(entry, from: parameter, bytes, update)
        update.bind(parameter + 4, batch.column(batch.keyIndex, of: index), schema.key.type, in: bytes)
        _ = try update.execute()
        return true
    }

    /// Binds `event_order`, `op`, `ts` and the event's JSON at `first`…`first + 3`.
    @inline(__always)
    private func bindEnvelope(
        _ entry: PreparedBatch.Entry,
        from first: Int32,
        _ bytes: UnsafeRawBufferPointer,
        _ statement: RawStatement
    ) {
        statement.bind(first, entry.order)
        statement.bindText(first + 1, entry.operation.rawValue)
        statement.bindText(first + 2, UnsafeRawBufferPointer(rebasing: bytes[entry.timestamp]))
        statement.bindBlob(first + 3, UnsafeRawBufferPointer(rebasing: bytes[entry.json]))
    }

    /// The events' wire JSON and columns, written with the record's layout (checked: an invalid event throws).
    func prepare(_ events: [ChangeEvent<Record>]) throws -> PreparedBatch {
        var batch = PreparedBatch(fieldCount: layout.fieldCount, keyIndex: layout.keyIndex, capacity: events.count)
        let writer = WireEventWriter(layout: layout, capturesColumns: true)
        for event in events { try batch.append(event, writer: writer) }
        return batch
    }

    private func trimChanges(_ db: Database) throws {
        try db.cachedStatement(sql: sql.trimChanges).execute(arguments: [configuration.changeBufferLimit])
    }

    private func trimHistory(_ db: Database) throws {
        guard configuration.historyLimit > 0 else { return }
        try db.cachedStatement(sql: sql.trimHistory).execute(arguments: [configuration.historyLimit])
    }
}
