import DeltaKit
import Foundation
import GRDB

/// The history table's rows: each holds the newest events of one batch (at most `historyLimit`), one after the
/// other in one blob, with their lowest and highest order.
///
/// One row per batch instead of one per event: writing a thousand history rows and their index entries, then
/// removing as many, cost a write a fifth of its time; one blob costs a few pages. After each batch the rows
/// hold exactly the newest `historyLimit` events (by order, ties: the later applied) — the same events as a table
/// of one row per event trimmed to that limit: a row all of whose events are beaten by `historyLimit` others goes;
/// when that is not enough (batches whose orders overlap) or the rows become many (small batches), the rows are
/// merged into one holding exactly the newest events.
///
/// A blob is a sequence of entries, in the order they were applied: the event's order (8 bytes, little-endian), the
/// length of its JSON (4 bytes, little-endian), the JSON.
enum HistoryChunks {
    /// One row's numbers.
    struct Bounds {
        var seq: Int64
        var minOrder: Int64
        var maxOrder: Int64
        var count: Int
    }

    /// One event of the history.
    struct Entry {
        var order: Int64
        /// The row it is in and its place there: the order it was applied in.
        var seq: Int64
        var index: Int
        var json: Data

        /// Newer: a higher order, or the same order applied later.
        func isNewer(than other: Entry) -> Bool {
            (order, seq, index) > (other.order, other.seq, other.index)
        }
    }

    /// The most rows kept before they are merged into one.
    static let maxRows = 64

    /// Appends one entry to a blob.
    static func append(order: Int64, json: UnsafeRawBufferPointer, to blob: inout [UInt8]) {
        withUnsafeBytes(of: order.littleEndian) { blob.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { blob.append(contentsOf: $0) }
        blob.append(contentsOf: json)
    }

    /// The entries of row `seq`'s blob.
    static func entries(of blob: Data, seq: Int64) throws -> [Entry] {
        var entries: [Entry] = []
        var offset = blob.startIndex
        while offset < blob.endIndex {
            guard blob.endIndex - offset >= 12 else { throw corrupt(seq) }
            let order = blob[offset..<(offset + 8)].withUnsafeBytes {
                Int64(littleEndian: $0.loadUnaligned(as: Int64.self))
            }
            let length = Int(
                blob[(offset + 8)..<(offset + 12)].withUnsafeBytes {
                    UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))
                }
            )
            offset += 12
            guard blob.endIndex - offset >= length else { throw corrupt(seq) }
            entries.append(Entry(order: order, seq: seq, index: entries.count, json: blob[offset..<(offset + length)]))
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

    /// The newest `limit` of every row's entries, newest first.
    static func newest(_ db: Database, limit: Int) throws -> [Entry] {
        var all: [Entry] = []
        for row in try Row.fetchAll(db, sql: SQLiteSchema.selectHistoryRows) {
            all += try entries(of: row[1], seq: row[0])
        }
        return Array(all.sorted { $0.isNewer(than: $1) }.prefix(limit))
    }

    /// Brings the rows back to exactly the newest `limit` events, after a row was added.
    static func trim(_ db: Database, limit: Int) throws {
        var rows = try Row.fetchAll(db, sql: SQLiteSchema.selectHistoryBounds).map {
            Bounds(seq: $0[0], minOrder: $0[1], maxOrder: $0[2], count: $0[3])
        }
        var total = rows.reduce(0) { $0 + $1.count }
        guard total > limit || rows.count > maxRows else { return }
        // A row goes when at least `limit` events of other rows beat each of its own (a higher order, or the same
        // order in a later row): rows sorted by their lowest order, newest first, and counted from there.
        let byLowest = rows.sorted { ($0.minOrder, $0.seq) > ($1.minOrder, $1.seq) }
        var beating: [Int] = [0]
        for row in byLowest { beating.append(beating.last! + row.count) }
        var removed: Set<Int64> = []
        for row in rows {
            // The rows whose every event beats all of `row`'s: a greater lowest order, or the same and later.
            let count = byLowest.prefix { ($0.minOrder, $0.seq) > (row.maxOrder, row.seq) }.count
            if beating[count] >= limit { removed.insert(row.seq) }
        }
        if !removed.isEmpty {
            let statement = try db.cachedStatement(sql: SQLiteSchema.deleteHistoryRow)
            for seq in removed { try statement.execute(arguments: [seq]) }
            rows.removeAll { removed.contains($0.seq) }
            total = rows.reduce(0) { $0 + $1.count }
        }
        guard total > limit || rows.count > maxRows else { return }
        // Rows whose orders overlap, or many small ones: one row of exactly the newest events, in the order they
        // were applied.
        let kept = try newest(db, limit: limit).sorted { ($0.seq, $0.index) < ($1.seq, $1.index) }
        try db.execute(sql: SQLiteSchema.deleteHistoryRows)
        var blob: [UInt8] = []
        for entry in kept { entry.json.withUnsafeBytes { append(order: entry.order, json: $0, to: &blob) } }
        try db.execute(
            sql: SQLiteSchema.insertHistoryRow,
            arguments: [
                kept.map(\.order).min() ?? 0, kept.map(\.order).max() ?? 0, kept.count, Data(blob),
            ]
        )
    }
}
