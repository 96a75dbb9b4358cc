public import DeltaKit
import Foundation
import GRDB

extension SQLiteStateStore: ChangeFeedStore {
    /// A feed of the visible changes to the file's state, from any process that writes it.
    ///
    /// While a feed of the file is open, in any process, the writer records each change in the same transaction
    /// as the state, numbered, and keeps up to ``Configuration/changeBufferLimit`` of them; a feed reads them every
    /// ``Configuration/feedPollInterval``. When no feed is open the writer records nothing (recording is work on
    /// every write that only feeds read). A position (`<file id>:<number>`) can be resumed from in any process as
    /// long as the file still keeps the changes after it: when no more than ``Configuration/changeBufferLimit``
    /// changes followed it and a feed was open whenever events were applied since (keep a feed open to be able to
    /// resume).
    ///
    /// - `.snapshot`: every live record as an insert (`isSnapshot`), read in pages from one consistent
    ///   read transaction, then every change after that snapshot — none lost, none repeated.
    /// - `.now`: changes after the call.
    /// - `.after(position)`: changes after a position an earlier feed delivered.
    ///
    /// A change this store applied while a trace context was current (the materializer's span for an event that
    /// carried one) has that context as its element's `traceContext`, for the last 4,096 such batches; the file
    /// keeps no context, so the feed of another store object (or process) reading the same file gives none.
    ///
    /// - Throws: `DeltaKitError` (`changesUnavailable`) for a position of another file, one older than the
    ///   changes the file keeps, or one after which events were applied while no feed was open (also thrown by the
    ///   feed when it falls that far behind, and when the file is rebuilt — ``removeAll()`` — or deleted and created
    ///   anew at its path: its positions no longer apply); `storageFailed` when the feed cannot register itself
    ///   (`<file>-feeds.lock` cannot be opened).
    public func changes(from start: ChangeFeedStart) async throws -> SQLiteChangeFeed<Record> {
        // Registered before it reads where the changes end: every transaction after that point records.
        let registration =
            recordsChangesOnDemand
            ? try await ChangeCapture.Registration(databasePath: configuration.path) : nil
        let reader = try pool.makeSnapshot()
        let (first, last, fileID) = try await reader.read { db in
            let (first, last) = try Self.changeBounds(db, self.sql)
            return (first, last, try StoreID.read(db))
        }
        switch start {
        case .snapshot:
            return SQLiteChangeFeed(
                store: self,
                after: last,
                snapshot: reader,
                storeID: fileID,
                registration: registration
            )
        case .now:
            return SQLiteChangeFeed(
                store: self,
                after: last,
                snapshot: nil,
                storeID: fileID,
                registration: registration
            )
        case .after(let position):
            let sequence = try sequence(of: position)
            // Changes sequence+1 … last must still be in the file.
            guard sequence <= last, sequence >= (first ?? last + 1) - 1 else {
                throw changesUnavailable(
                    "position \(position) is \(sequence > last ? "ahead of" : "older than") the changes \(configuration.path) keeps (\(first.map { "\($0)…\(last)" } ?? "none after \(last)")); start again from a snapshot"
                )
            }
            if try await reader.read({ db in try Bool.fetchOne(db, sql: SQLiteSchema.gapAfter, arguments: [sequence]) })
                == true
            {
                throw changesNotRecorded(after: position)
            }
            return SQLiteChangeFeed(
                store: self,
                after: sequence,
                snapshot: nil,
                storeID: fileID,
                registration: registration
            )
        }
    }

    /// The error for a position after which events were applied while no feed of the file was open.
    func changesNotRecorded(after position: ChangeFeedPosition) -> DeltaKitError {
        changesUnavailable(
            "the changes after position \(position) were not recorded: events were applied to \(configuration.path) while no change feed of it was open (the writer records changes only then); start again from a snapshot, and keep a feed open to be able to resume"
        )
    }

    static func changeBounds(_ db: Database, _ sql: Statements) throws -> (first: Int64?, last: Int64) {
        guard let row = try Row.fetchOne(db, sql: sql.changeBounds) else { return (nil, 0) }
        return (row[0] as Int64?, row[1] as Int64)
    }

    func position(_ sequence: Int64) -> ChangeFeedPosition { ChangeFeedPosition("\(storeID):\(sequence)") }

    private func sequence(of position: ChangeFeedPosition) throws -> Int64 {
        let parts = position.description.split(separator: ":")
        guard parts.count == 2, parts[0] == storeID, let sequence = Int64(parts[1]), sequence >= 0 else {
            throw changesUnavailable(
                "position \(position) was not delivered by a feed of \(configuration.path) (file id \(storeID)); start again from a snapshot"
            )
        }
        return sequence
    }

    func changesUnavailable(_ message: String) -> DeltaKitError {
        DeltaKitError(code: .changesUnavailable, message: message)
    }
}

/// The change feed of a ``SQLiteStateStore``: an `AsyncSequence` of `ChangeFeedElement`s (see
/// ``SQLiteStateStore/changes(from:)``). Iterate it from one task.
public struct SQLiteChangeFeed<Record: ChangeRecord>: AsyncSequence, Sendable {
    public typealias Element = ChangeFeedElement<Record>
    public typealias Failure = any Error

    let store: SQLiteStateStore<Record>
    /// The last change already covered: the snapshot's, or the start position's.
    let after: Int64
    /// The consistent read the snapshot comes from, when the feed starts with one.
    let snapshot: DatabaseSnapshot?
    /// The file's id when the feed was created: a rebuild (``SQLiteStateStore/removeAll()``) changes it.
    let storeID: String
    /// Keeps the writer recording changes while the feed (or an iterator of it) exists.
    let registration: ChangeCapture.Registration?

    /// Creates the iterator.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(store: store, after: after, snapshot: snapshot, storeID: storeID, registration: registration)
    }

    /// Reads the snapshot in pages, then polls the file's changes.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let store: SQLiteStateStore<Record>
        var after: Int64
        var snapshot: DatabaseSnapshot?
        var snapshotKey: DatabaseValue?
        var buffer: [Element] = []
        var bufferIndex = 0
        /// The file's id when the feed started: a rebuild changes it.
        let storeID: String
        let registration: ChangeCapture.Registration?

        init(
            store: SQLiteStateStore<Record>,
            after: Int64,
            snapshot: DatabaseSnapshot?,
            storeID: String,
            registration: ChangeCapture.Registration?
        ) {
            self.store = store
            self.after = after
            self.snapshot = snapshot
            self.storeID = storeID
            self.registration = registration
        }

        /// The next change; waits for one (polling the file). Throws `changesUnavailable` when the file no
        /// longer keeps the changes after the last one delivered.
        public mutating func next() async throws -> Element? {
            while bufferIndex == buffer.count {
                try Task.checkCancellation()
                buffer = []
                bufferIndex = 0
                if snapshot != nil {
                    try await readSnapshotPage()
                } else {
                    try await readChanges()
                    if buffer.isEmpty { try await Task.sleep(for: store.configuration.feedPollInterval) }
                }
            }
            defer { bufferIndex += 1 }
            return buffer[bufferIndex]
        }

        private mutating func readSnapshotPage() async throws {
            guard let snapshot else { return }
            let store = self.store
            let key = snapshotKey
            // Rows are not Sendable: take the values out inside the read (the async overload needs Sendable).
            let rows: [(event: Data, key: DatabaseValue)] = try await snapshot.read { @Sendable db in
                let rows =
                    if let key {
                        try Row.fetchAll(db, sql: store.sql.selectPageAfterWithKey, arguments: [key, 500])
                    } else {
                        try Row.fetchAll(db, sql: store.sql.selectPageWithKey, arguments: [500])
                    }
                return rows.map { ($0[0] as Data, $0[1] as DatabaseValue) }
            }
            if rows.isEmpty {
                self.snapshot = nil
                return
            }
            snapshotKey = rows.last!.key
            for row in rows {
                let event = try store.event(from: row.event)
                guard let record = event.record else { continue }
                buffer.append(
                    ChangeFeedElement(
                        change: StateChange(kind: .insert, key: record.key, record: record),
                        isSnapshot: true,
                        position: nil
                    )
                )
            }
        }

        private mutating func readChanges() async throws {
            let store = self.store
            let after = self.after
            let path = store.configuration.path
            guard FileIdentity(path: path) == store.fileIdentity else {
                throw store.changesUnavailable(
                    "\(path) was deleted or replaced by another file since it was opened; open it again and start from a snapshot"
                )
            }
            let (rows, first, storeID) = try await store.pool.read { @Sendable db in
                (
                    try Row.fetchAll(db, sql: store.sql.selectChanges, arguments: [after, 1_000]).map {
                        (sequence: $0[0] as Int64, kind: $0[1] as String, event: $0[2] as Data)
                    },
                    try SQLiteStateStore<Record>.changeBounds(db, store.sql).first,
                    try StoreID.read(db)
                )
            }
            guard storeID == self.storeID else {
                throw store.changesUnavailable(
                    "\(path) was rebuilt (its state removed to be read again from the topic's beginning); its earlier changes no longer apply — start again from a snapshot"
                )
            }
            if let firstRow = rows.first, firstRow.sequence != after + 1 {
                throw store.changesUnavailable(
                    "a change feed of \(store.configuration.path) fell more than changeBufferLimit (\(store.configuration.changeBufferLimit)) changes behind: the changes after \(after) were removed (the file keeps \(first.map(String.init) ?? "none") onward); resume from a snapshot"
                )
            }
            for row in rows {
                let sequence = row.sequence
                let kind: StateChange<Record>.Kind
                switch row.kind {
                case "insert": kind = .insert
                case "update": kind = .update
                case "delete": kind = .delete
                default:
                    // A gap: no feed was open when events were applied (not this one: it keeps recording on).
                    throw store.changesNotRecorded(after: store.position(self.after))
                }
                let event = try store.event(from: row.event)
                buffer.append(
                    ChangeFeedElement(
                        change: StateChange(kind: kind, key: event.key, record: event.record),
                        isSnapshot: false,
                        position: store.position(sequence),
                        traceContext: store.changeTraces.context(of: sequence)
                    )
                )
                self.after = sequence
            }
        }
    }
}
