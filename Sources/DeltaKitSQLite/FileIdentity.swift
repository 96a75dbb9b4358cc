import DeltaKit
import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Which file a store has open, three ways: what the file records it holds (checked on every open), the random
// id that change-feed positions carry (new with every rebuild), and the file on the disk (a feed notices a file
// deleted and created anew at its path).

/// What a state file records it holds, in `deltakit_meta`: a store opens only a file of its own topic, record
/// type, record schema and table, and leaves any other untouched.
struct RecordedIdentity: Sendable, Equatable {
    var source: String
    var record: String
    var schema: String
    var table: String

    /// The `deltakit_meta` rows, in the order they are checked.
    var entries: [(String, String)] {
        [("source", source), ("record", record), ("schema", schema), ("table", table)]
    }

    /// Checks that the file records this identity; throws `incompatibleStore` naming the first difference.
    func check(in db: Database, path: String) throws {
        var stored: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: SQLiteSchema.selectMeta) {
            stored[row[0]] = row[1]
        }
        for (name, expected) in entries where stored[name] != expected {
            let found = stored[name].map { "'\($0)'" } ?? "nothing"
            let what = name == "source" ? "topic" : name
            throw DeltaKitError(
                code: .incompatibleStore,
                message:
                    "\(path) holds \(what) \(found), not '\(expected)'; open the file with the \(what) it was written for, or use another path (or delete it to rebuild from the topic)"
            )
        }
    }

    /// The topic recorded in an existing file (for a store opened without a topic).
    static func storedSource(_ pool: DatabasePool, path: String) throws -> String {
        let source = try pool.read { db -> String? in
            guard try db.tableExists(SQLiteSchema.meta) else { return nil }
            return try String.fetchOne(db, sql: SQLiteSchema.selectSource)
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
}

/// The file's id in `deltakit_meta`: random, written when the file is created and anew by every rebuild
/// (`removeAll()`), so that a change-feed position, which names it, is never read against another state.
enum StoreID {
    static func new() -> String { String(UInt64.random(in: 0...UInt64.max), radix: 36) }

    /// The file's id; "0" for a file from before the change feed that no writer has opened since.
    static func read(_ db: Database) throws -> String {
        try String.fetchOne(db, sql: SQLiteSchema.selectStoreID) ?? "0"
    }
}

/// A file's identity on the disk (device and inode): a path that names another file than the one opened was
/// deleted and created anew.
struct FileIdentity: Sendable, Equatable {
    private let device: UInt64
    private let inode: UInt64

    /// The identity of the file at `path` now; `nil` when there is none.
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}
