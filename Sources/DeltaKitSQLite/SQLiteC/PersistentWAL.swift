// The only folder of DeltaKitSQLite that calls SQLite's C API directly (everything else goes through GRDB).
import DeltaKit
import GRDB
import GRDBSQLite

extension Database {
    /// Keeps the `-wal` and `-shm` files when the last connection closes (`SQLITE_FCNTL_PERSIST_WAL`), so that
    /// a reader without write access to the file's directory can open the file read-only later: SQLite cannot
    /// create those files for it, but it can read existing ones (GRDB's "Sharing a database" guide).
    func persistWAL() throws {
        var flag: CInt = 1
        let code = withUnsafeMutablePointer(to: &flag) { pointer in
            sqlite3_file_control(sqliteConnection, nil, SQLITE_FCNTL_PERSIST_WAL, pointer)
        }
        guard code == SQLITE_OK else { throw DatabaseError(resultCode: ResultCode(rawValue: code)) }
    }
}
