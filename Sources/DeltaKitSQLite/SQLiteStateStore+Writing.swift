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
        // Every event is checked and converted before the transaction starts: an invalid one throws here,
        // before anything of the batch is written.
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

    /// Removes every key, the history, the changes, the positions and the fingerprints in one transaction, and
    /// gives the file a new id: change feeds of the file (in any process) end with `changesUnavailable`, and a
    /// materializer starting on it reads its topic from the beginning. Used by `KafkaMaterializer` to rebuild
    /// from a recreated topic.
    public func removeAll() async throws {
        let newID = StoreID.new()
        try await write { db in
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

    // MARK: One transaction

    /// Runs `body` in a write transaction: rolled back when it throws.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
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
            throw DeltaKitError.storage(error, path: configuration.path, doing: "writing")
        }
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
}
