import DeltaKit
import Foundation
import GRDB

/// The history table's rows: each holds the newest events of one batch (at most `historyLimit`), one after the
/// other in one blob, with their lowest and highest order.
///
/// One row per batch instead of one per event: a batch then writes one row (a few pages) instead of up to
/// `historyLimit` rows with as many index entries, and removes one row instead of as many.
///
/// The rows always hold the newest `historyLimit` events of all applied (by order; ties: the later applied) — the
/// events a table of one row per event trimmed to that limit would hold —, and possibly older ones: a row goes only
/// when `historyLimit` events of other rows beat each of its events. Reads return at most the limit the writer
/// keeps (recorded in `deltakit_meta` as `history_limit`), so those older events are never returned; a writer that
/// opens the file with another limit first cuts the rows down to exactly the newest events under the smaller of the
/// two. When batches are small the rows become many: past ``maxRows`` the small ones are merged into one (only their
/// newest `historyLimit` events kept), so a trim and a read look at a bounded number of rows.
///
/// A blob is a sequence of entries, in the order they were applied: the event's order and when it was applied
/// (``Entry/applied``; 8 bytes each), the length of its JSON (4 bytes), all little-endian, then the JSON. A row's
/// `first_applied` and `last_applied` are its lowest and highest `applied`: a new row's events follow the highest of
/// all rows.
enum HistoryChunks {
    /// One row's numbers.
    struct Bounds {
        var seq: Int64
        var minOrder: Int64
        var maxOrder: Int64
        var count: Int
        /// The lowest and highest ``Entry/applied`` of its events.
        var firstApplied: Int64
        var lastApplied: Int64

        /// Whether every event of `self` is newer than every event of `other`.
        func beatsAll(of other: Bounds) -> Bool {
            (minOrder, firstApplied) > (other.maxOrder, other.lastApplied)
        }
    }

    /// One event of the history.
    struct Entry {
        var order: Int64
        /// When it was applied: a number that grows with every event written to the history (ties go to the later).
        var applied: Int64
        var json: Data

        /// Newer: a higher order, or the same order applied later.
        func isNewer(than other: Entry) -> Bool { (order, applied) > (other.order, other.applied) }
    }

    /// The number of rows past which the small ones are merged.
    static let maxRows = 64
    /// A row of at most this many events is small: merging it costs little.
    static let smallRow = 2_048

    /// Appends one entry to a blob.
    static func append(order: Int64, applied: Int64, json: UnsafeRawBufferPointer, to blob: inout [UInt8]) {
        withUnsafeBytes(of: order.littleEndian) { blob.append(contentsOf: $0) }
        withUnsafeBytes(of: applied.littleEndian) { blob.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { blob.append(contentsOf: $0) }
        blob.append(contentsOf: json)
    }

    /// The entries of row `seq`'s blob.
    static func entries(of blob: Data, seq: Int64) throws -> [Entry] {
        var entries: [Entry] = []
        var offset = blob.startIndex
        func integer<I: FixedWidthInteger>(_ type: I.Type, at start: Int) -> I {
            blob[start..<(start + MemoryLayout<I>.size)].withUnsafeBytes {
                I(littleEndian: $0.loadUnaligned(as: I.self))
            }
        }
        while offset < blob.endIndex {
            guard blob.endIndex - offset >= 20 else { throw corrupt(seq) }
            let order = integer(Int64.self, at: offset)
            let applied = integer(Int64.self, at: offset + 8)
            let length = Int(integer(UInt32.self, at: offset + 16))
            offset += 20
            guard blob.endIndex - offset >= length else { throw corrupt(seq) }
            entries.append(Entry(order: order, applied: applied, json: blob[offset..<(offset + length)]))
            offset += length
        }
        return entries
    }

    private static func corrupt(_ seq: Int64) -> DeltaKitError {
        DeltaKitError(
            code: .storageFailed,
            message:
                "row \(seq) of \(SQLiteSchema.history) is not a list of events; the file was changed outside DeltaKit"
        )
    }

    static func bounds(_ db: Database) throws -> [Bounds] {
        try Row.fetchAll(db, sql: SQLiteSchema.selectHistoryBounds).map {
            Bounds(seq: $0[0], minOrder: $0[1], maxOrder: $0[2], count: $0[3], firstApplied: $0[4], lastApplied: $0[5])
        }
    }

    /// The limit the writer keeps the history to, when one was recorded.
    static func recordedLimit(_ db: Database) throws -> Int? {
        try String.fetchOne(db, sql: SQLiteSchema.selectHistoryLimit).flatMap { Int($0) }
    }

    /// The newest `limit` events (at most the recorded limit), newest first: the rows read from the one with the
    /// highest order down, until no row left can hold a newer event than the ones found.
    static func newest(_ db: Database, limit: Int) throws -> [Entry] {
        let limit = min(limit, try recordedLimit(db) ?? limit)
        return try newest(db, limit: limit, of: bounds(db))
    }

    private static func newest(_ db: Database, limit: Int, of rows: [Bounds]) throws -> [Entry] {
        guard limit > 0 else { return [] }
        var found: [Entry] = []
        let statement = try db.cachedStatement(sql: SQLiteSchema.selectHistoryRow)
        for row in rows.sorted(by: { ($0.maxOrder, $0.lastApplied) > ($1.maxOrder, $1.lastApplied) }) {
            // No event of `row`, nor of a row after it, is newer than the last found.
            if found.count == limit, let last = found.last, (row.maxOrder, row.lastApplied) < (last.order, last.applied)
            {
                break
            }
            guard let blob = try Data.fetchOne(statement, arguments: [row.seq]) else { continue }
            found += try entries(of: blob, seq: row.seq)
            found.sort { $0.isNewer(than: $1) }
            if found.count > limit { found.removeLast(found.count - limit) }
        }
        return found
    }

    /// After a row was added: removes the rows none of whose events can be among the newest `limit`, and merges
    /// small rows when there are many.
    static func trim(_ db: Database, limit: Int) throws {
        var rows = try bounds(db)
        guard rows.count > 1 else { return }
        // A row goes when at least `limit` events of other rows are newer than each of its own: rows sorted by their
        // oldest event, newest first; the rows that beat all of a row's events are a prefix of that order.
        let byOldest = rows.sorted { ($0.minOrder, $0.firstApplied) > ($1.minOrder, $1.firstApplied) }
        var beating: [Int] = [0]
        for row in byOldest { beating.append(beating.last! + row.count) }
        var removed: Set<Int64> = []
        for row in rows {
            let count = byOldest.prefix { $0.beatsAll(of: row) }.count
            if beating[count] >= limit { removed.insert(row.seq) }
        }
        if !removed.isEmpty {
            let statement = try db.cachedStatement(sql: SQLiteSchema.deleteHistoryRow)
            for seq in removed { try statement.execute(arguments: [seq]) }
            rows.removeAll { removed.contains($0.seq) }
        }
        let small = rows.filter { $0.count <= smallRow }
        guard rows.count > maxRows, small.count > 1 else { return }
        // Many small rows (small batches): one row of their newest `limit` events. An event `limit` others beat is
        // not among the newest.
        try replace(small, with: newest(db, limit: limit, of: small), db)
    }

    /// Before a writer's rows: records `limit`, the one it keeps the history to. When another was recorded, the rows
    /// are first cut down to exactly the newest events under the smaller of the two — what a table of one row per
    /// event would hold —, so that no older event kept beside them is read under the new limit.
    static func adopt(limit: Int, _ db: Database) throws {
        let recorded = try recordedLimit(db)
        guard recorded != limit else { return }
        if let recorded {
            let rows = try bounds(db)
            if !rows.isEmpty { try replace(rows, with: newest(db, limit: min(recorded, limit), of: rows), db) }
        }
        try db.execute(sql: SQLiteSchema.upsertHistoryLimit, arguments: [String(limit)])
    }

    /// Replaces `rows` by one row of `entries` (each keeps when it was applied), in the order they were applied.
    private static func replace(_ rows: [Bounds], with entries: [Entry], _ db: Database) throws {
        let delete = try db.cachedStatement(sql: SQLiteSchema.deleteHistoryRow)
        for row in rows { try delete.execute(arguments: [row.seq]) }
        guard !entries.isEmpty else { return }
        var blob: [UInt8] = []
        for entry in entries.sorted(by: { $0.applied < $1.applied }) {
            entry.json.withUnsafeBytes { append(order: entry.order, applied: entry.applied, json: $0, to: &blob) }
        }
        try db.execute(
            sql: SQLiteSchema.insertHistoryRow,
            arguments: [
                entries.map(\.order).min()!, entries.map(\.order).max()!, entries.count,
                entries.map(\.applied).min()!, entries.map(\.applied).max()!, Data(blob),
            ]
        )
    }
}
