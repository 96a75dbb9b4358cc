public import DeltaKit
public import Foundation
import GRDB
import Instrumentation
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
        return try await writeEvents { db, recording in
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
        try await writeEvents { db, recording in
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
        changeTraces.removeAll()
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
        let types = schema.fields.map(\.type)
        try batch.bytes.withUnsafeBytes { bytes in
            let upsert = try RawStatement(db, sql: sql.upsertIfNewer)
            for index in batch.entries.indices {
                batch.bind(index, to: upsert, types: types, keyLast: false, in: bytes)
                // One statement for the usual case: a newer order wins, a new key is inserted.
                won.append(try upsert.execute() > 0 || resolveTie(index, of: batch, events, types, bytes, db))
            }
            if configuration.historyLimit > 0, !batch.entries.isEmpty {
                try HistoryChunks.adopt(limit: configuration.historyLimit, db)
                // Only the batch's newest `historyLimit` events can be among the newest: one row holds them, applied
                // after every event already in the history.
                let lastApplied = try Int64.fetchOne(db, sql: SQLiteSchema.selectLastApplied) ?? 0
                var applied = lastApplied
                var blob: [UInt8] = []
                var lowest = Int64.max
                var highest = Int64.min
                let newest = batch.newest(limit: configuration.historyLimit)
                for index in newest {
                    let entry = batch.entries[index]
                    applied += 1
                    HistoryChunks.append(
                        order: entry.order,
                        applied: applied,
                        json: UnsafeRawBufferPointer(rebasing: bytes[entry.json]),
                        to: &blob
                    )
                    lowest = min(lowest, entry.order)
                    highest = max(highest, entry.order)
                }
                let insert = try RawStatement(db, sql: SQLiteSchema.insertHistoryRow)
                insert.bind(1, lowest)
                insert.bind(2, highest)
                insert.bind(3, Int64(newest.count))
                insert.bind(4, lastApplied + 1)
                insert.bind(5, applied)
                blob.withUnsafeBytes { insert.bindBlob(6, $0) }
                _ = try insert.execute()
            }
        }
        if configuration.historyLimit > 0, !batch.entries.isEmpty {
            try HistoryChunks.trim(db, limit: configuration.historyLimit)
        }
        if recording, !batch.entries.isEmpty { try trimChanges(db) }
        let statement = try db.cachedStatement(sql: sql.upsertPosition)
        for (partition, offset) in positions {
            try statement.execute(arguments: [Int64(partition), offset])
        }
        return won
    }

    /// ``write(_:)`` for a body that applies events. Inside a trace context (the materializer's span for events that
    /// carried one) the sequences of the changes the transaction recorded are read around `body`, and kept with the
    /// context once it committed (``ChangeTraces``), for this store's own feeds. Without a context: no query.
    private func writeEvents<T: Sendable>(
        _ body: @escaping @Sendable (Database, _ recording: Bool) throws -> T
    ) async throws -> T {
        guard let trace = ServiceContext.current else { return try await write(body) }
        let (result, recorded) = try await write { db, recording -> (T, ClosedRange<Int64>?) in
            guard recording else { return (try body(db, recording), nil) }
            let before = try Self.lastChangeSequence(db)
            let result = try body(db, recording)
            let after = try Self.lastChangeSequence(db)
            return (result, after > before ? (before + 1)...after : nil)
        }
        if let recorded { changeTraces.record(recorded, trace) }
        return result
    }

    /// The last sequence the changes table gave out (0 before its first change): AUTOINCREMENT's counter, which
    /// trimming the table does not lower.
    private static func lastChangeSequence(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = ?", arguments: [SQLiteSchema.changes])
            ?? 0
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

    /// When entry `index` of `batch` changed nothing — an older order, or a tie —: whether it supersedes the stored
    /// winner after all (a tie merged in Swift), and if so writes it. Off the hot path: generic code here would ask
    /// for type metadata on every event.
    @inline(never)
    private func resolveTie(
        _ index: Int,
        of batch: PreparedBatch,
        _ events: [ChangeEvent<Record>],
        _ types: [RecordSchema.FieldType],
        _ bytes: UnsafeRawBufferPointer,
        _ db: Database
    ) throws -> Bool {
        let keyValue = Self.databaseValue(batch.column(batch.keyIndex, of: index).scalar(in: bytes), schema.key.type)
        guard let previous = try currentOrder(keyValue, db), previous.order == batch.entries[index].order,
            LatestStateMerge.supersedes(events[index], try self.event(from: previous.json))
        else { return false }
        let update = try RawStatement(db, sql: sql.updateRow)
        batch.bind(index, to: update, types: types, keyLast: true, in: bytes)
        _ = try update.execute()
        return true
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

}
