import DeltaKit
import GRDB
import GRDBSQLite

/// A statement of the write path bound and run through SQLite's C API: each value bound as what it is (an integer,
/// a double, or bytes still in the batch's buffer), with no `DatabaseValue`, no `StatementArguments` and no
/// validation per row: GRDB converts every value and checks the arguments on each execution, which on a path run
/// once per event is work SQLite's own binding does not need.
///
/// The statement is one of GRDB's cached statements of the writer's connection, used only inside its write
/// transaction; its SQL is run only through this type, so GRDB's record of the arguments it bound never
/// disagrees with what is bound. Every execution binds every parameter.
struct RawStatement {
    private let statement: SQLiteStatement
    private let database: Database
    private let sql: String

    /// The cached statement for `sql` on `db`, the write transaction's connection.
    init(_ db: Database, sql: String) throws {
        statement = try db.cachedStatement(sql: sql).sqliteStatement
        database = db
        self.sql = sql
    }

    // Parameters are 1-based, as in SQLite. Binding fails only for an index out of range (a bug, caught by every
    // test that writes) or when SQLite runs out of memory; it is reported when the statement runs.

    func bindNull(_ index: Int32) { _ = sqlite3_bind_null(statement, index) }

    func bind(_ index: Int32, _ value: Int64) { _ = sqlite3_bind_int64(statement, index, value) }

    func bind(_ index: Int32, _ value: Double) { _ = sqlite3_bind_double(statement, index, value) }

    /// Binds UTF-8 text that stays where it is until the statement has run (`SQLITE_STATIC`).
    func bindText(_ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        _ = sqlite3_bind_text(
            statement,
            index,
            bytes.baseAddress?.assumingMemoryBound(to: CChar.self) ?? Self.empty,
            Int32(bytes.count),
            nil
        )
    }

    /// Binds a copy of `text`.
    func bindText(_ index: Int32, _ text: String) {
        _ = sqlite3_bind_text(statement, index, text, -1, Self.transient)
    }

    /// Binds a blob that stays where it is until the statement has run (`SQLITE_STATIC`).
    func bindBlob(_ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        _ = sqlite3_bind_blob(
            statement,
            index,
            bytes.baseAddress ?? UnsafeRawPointer(Self.empty),
            Int32(bytes.count),
            nil
        )
    }

    /// Runs the statement to its end and resets it; returns the number of rows it changed.
    ///
    /// - Throws: GRDB's `DatabaseError` naming the statement.
    func execute() throws -> Int {
        let code = sqlite3_step(statement)
        // The reset returns the step's error again; the bindings are cleared so that nothing points into a buffer
        // that is gone.
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        guard code == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: database.lastErrorMessage, sql: sql)
        }
        return Int(sqlite3_changes(database.sqliteConnection))
    }

    /// `SQLITE_TRANSIENT`: SQLite copies the value before the call returns.
    private static var transient: sqlite3_destructor_type {
        unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
    }
    /// What empty text or an empty blob points to (a null pointer would bind NULL).
    private static var empty: UnsafePointer<CChar> {
        UnsafeRawPointer(("" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
