// The only folder that imports libpq. Nothing here is public; no C type leaves this folder.
import CDeltaKitLibPQ
import DeltaKit
import Foundation
import Logging

/// A result row in text format: one optional string per column.
typealias PQRowValues = [String?]

/// Column metadata of a result.
struct PQColumns: Sendable {
    var names: [String]
}

/// Owns one `PGconn`. Not thread-safe: used only from its ``ConnectionThread``.
final class PQConnection {
    private var conn: OpaquePointer?
    private let conninfo: String
    private let logger: Logger
    private var noticeContext: Unmanaged<NoticeContext>?
    /// Cancels the statement in progress from any thread; replaced on reconnect.
    private(set) var cancelHandle: PQCancelHandle?
    /// Set while a statement's results are being read (``send(_:parameters:)`` … ``nextRows(max:)``).
    private var inFlight: String?
    private var columns: [String] = []
    private var pendingError: (any Error)?

    /// Connects (blocking). Throws ``RisingWaveError`` with libpq's message on failure.
    init(conninfo: String, logger: Logger) throws {
        self.conninfo = conninfo
        self.logger = logger
        try connect()
    }

    deinit {
        if let conn { PQfinish(conn) }
        noticeContext?.release()
    }

    private func connect() throws {
        if let conn { PQfinish(conn) }
        let c = PQconnectdb(conninfo)
        conn = c
        guard let c, PQstatus(c) == CONNECTION_OK else {
            let message = c.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            throw RisingWaveError(
                sqlState: nil,
                message: message.trimmingCharacters(in: .whitespacesAndNewlines),
                isConnectionError: true
            )
        }
        let context = NoticeContext(logger: logger)
        noticeContext?.release()
        noticeContext = Unmanaged.passRetained(context)
        PQsetNoticeProcessor(c, pqNotice, noticeContext!.toOpaque())
        cancelHandle = PQgetCancel(c).map(PQCancelHandle.init)
        inFlight = nil
    }

    var isBroken: Bool { conn.map { PQstatus($0) != CONNECTION_OK } ?? true }

    /// Re-establishes the connection (blocking).
    func reconnect() throws { try connect() }

    /// Server version number (e.g. 150004), or 0 if unknown.
    var serverVersion: Int { conn.map { Int(PQserverVersion($0)) } ?? 0 }

    /// Runs `sql` through the simple protocol (DDL, several `;`-separated statements allowed).
    func simple(_ sql: String) throws {
        guard let conn else { throw brokenError() }
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        try check(result, statement: sql)
    }

    /// Sends one parameterized statement through the extended protocol and switches to single-row mode; read
    /// its rows with ``nextRows(max:)`` until it returns `nil`.
    func send(_ sql: String, parameters: [String?]) throws {
        guard let conn else { throw brokenError() }
        if inFlight != nil { drain() }
        let sent: Int32 = withCStrings(parameters) { values in
            PQsendQueryParams(conn, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        guard sent == 1 else {
            throw RisingWaveError(
                sqlState: nil,
                message: String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines),
                statement: sql,
                isConnectionError: isBroken
            )
        }
        _ = PQsetSingleRowMode(conn)
        inFlight = sql
        columns = []
        pendingError = nil
    }

    /// Reads up to `max` rows of the statement in flight; `nil` once it is complete (after throwing its error,
    /// if it failed). Blocks while the server computes.
    func nextRows(max: Int) throws -> (columns: [String], rows: [PQRowValues])? {
        guard let conn, let sql = inFlight else { return nil }
        var rows: [PQRowValues] = []
        while rows.count < max, let result = PQgetResult(conn) {
            defer { PQclear(result) }
            if pendingError != nil { continue }  // drain the remaining results
            let status = PQresultStatus(result)
            if status == PGRES_SINGLE_TUPLE || status == PGRES_TUPLES_OK {
                if columns.isEmpty {
                    columns = (0..<PQnfields(result)).map { String(cString: PQfname(result, $0)) }
                }
                let nfields = PQnfields(result)
                for row in 0..<PQntuples(result) {
                    var values = PQRowValues()
                    values.reserveCapacity(Int(nfields))
                    for col in 0..<nfields {
                        values.append(
                            PQgetisnull(result, row, col) == 1 ? nil : String(cString: PQgetvalue(result, row, col))
                        )
                    }
                    rows.append(values)
                }
            } else if status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY {
                do { try check(result, statement: sql) } catch { pendingError = error }
            }
        }
        if rows.count >= max { return (columns, rows) }
        // PQgetResult returned NULL: the statement is complete.
        inFlight = nil
        if let pendingError {
            self.pendingError = nil
            throw pendingError
        }
        return rows.isEmpty ? nil : (columns, rows)
    }

    /// Abandons the statement in flight: asks the server to cancel it and discards its results.
    ///
    /// Blocks until the server ends the statement. RisingWave v3.0.3 and earlier do not interrupt a waiting
    /// `FETCH … WITH (timeout)` on a cancel request, so that takes up to the `FETCH`'s timeout: every `FETCH`
    /// DeltaKit sends carries one (the change feed's `fetchTimeout`, at most 60 s), which is what bounds this.
    func drain() {
        guard let conn, inFlight != nil else { return }
        cancelHandle?.cancel()
        while let result = PQgetResult(conn) { PQclear(result) }
        inFlight = nil
        pendingError = nil
    }

    /// Waits up to `timeoutMilliseconds` for a notification (`LISTEN`) and consumes every one that arrived;
    /// returns whether any did. Notifications that arrived during earlier statements count too.
    func waitForNotification(timeoutMilliseconds: Int32) throws -> Bool {
        guard let conn else { throw brokenError() }
        if inFlight != nil { drain() }
        func consume() throws -> Bool {
            guard PQconsumeInput(conn) == 1 else {
                throw RisingWaveError(
                    sqlState: nil,
                    message: String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines),
                    isConnectionError: true
                )
            }
            var any = false
            while let notification = PQnotifies(conn) {
                any = true
                PQfreemem(notification)
            }
            return any
        }
        if try consume() { return true }
        var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, timeoutMilliseconds) > 0 else { return false }
        return try consume()
    }

    private func check(_ result: OpaquePointer?, statement: String) throws {
        guard let result else {
            throw RisingWaveError(
                sqlState: nil,
                message: conn.map { String(cString: PQerrorMessage($0)) } ?? "no connection",
                statement: statement,
                isConnectionError: isBroken
            )
        }
        let status = PQresultStatus(result)
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY
            || status == PGRES_SINGLE_TUPLE
        {
            return
        }
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let primary = field(UInt8(ascii: "M")) ?? String(cString: PQresultErrorMessage(result))
        throw RisingWaveError(
            sqlState: field(UInt8(ascii: "C")),
            message: primary.trimmingCharacters(in: .whitespacesAndNewlines),
            detail: field(UInt8(ascii: "D")),
            hint: field(UInt8(ascii: "H")),
            statement: statement,
            isConnectionError: isBroken
        )
    }

    private func brokenError() -> RisingWaveError {
        RisingWaveError(sqlState: nil, message: "the connection is closed", isConnectionError: true)
    }
}

/// libpq's cancel request for one session (`PGcancel`). `PQcancel` is documented thread-safe, and the handle
/// is immutable until freed in `deinit`, so any task may call ``cancel()`` while the session's thread is
/// blocked in a statement.
final class PQCancelHandle: @unchecked Sendable {
    private let handle: OpaquePointer

    init(_ handle: OpaquePointer) { self.handle = handle }
    deinit { PQfreeCancel(handle) }

    /// Asks the server to cancel the statement in progress (no effect when there is none).
    func cancel() {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(handle, &buffer, Int32(buffer.count))
    }
}

/// Checks a connection string with libpq's own parser; returns libpq's message when it is invalid.
func pqValidateConninfo(_ conninfo: String) -> String? {
    var errmsg: UnsafeMutablePointer<CChar>?
    guard let options = PQconninfoParse(conninfo, &errmsg) else {
        defer { if let errmsg { PQfreemem(errmsg) } }
        return errmsg.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "invalid"
    }
    PQconninfoFree(options)
    return nil
}

/// The libpq version in use (e.g. 150004).
func pqLibraryVersion() -> Int { Int(PQlibVersion()) }

private final class NoticeContext {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

private func pqNotice(_ arg: UnsafeMutableRawPointer?, _ message: UnsafePointer<CChar>?) {
    guard let arg, let message else { return }
    let context = Unmanaged<NoticeContext>.fromOpaque(arg).takeUnretainedValue()
    context.logger.info("\(String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines))")
}

/// Calls `body` with a C array of NUL-terminated strings (NULL for nil) that lives for the call.
private func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) throws -> R) rethrows -> R {
    let storage: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { for p in storage { free(p) } }
    return try body(storage.map { $0.map { UnsafePointer($0) } })
}
