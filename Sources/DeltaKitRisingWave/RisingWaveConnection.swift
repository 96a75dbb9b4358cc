import DeltaKit
import Foundation
public import Logging

/// An asynchronous connection to RisingWave (or any PostgreSQL-wire server) on libpq, for a
/// ``RisingWavePipeline`` to provision through and a ``RisingWaveStateStore`` to read through. It is not a general
/// SQL client: the statements it runs are the pipeline's.
///
/// An actor whose executor is one dedicated thread: every libpq call runs there, one at a time (libpq blocks
/// and a `PGconn` is not thread-safe), and no thread of Swift's cooperative pool ever blocks. Statements run in
/// the caller's task — structured concurrency: cancelling the caller sends libpq's cancel request for the
/// statement in progress (a waiting subscription `FETCH` on RisingWave v3.0.3 or earlier ignores it and ends at its
/// timeout). Parameterized reads use the extended protocol (one statement per call), DDL the simple
/// protocol. Results are read in single-row mode. A broken connection is re-established with exponential backoff
/// before the next call.
public actor RisingWaveConnection {
    /// The settings this connection was opened with (secrets included: print ``Configuration/redactedURL``).
    public nonisolated let configuration: Configuration
    private nonisolated let logger: Logger
    private nonisolated let executor: ConnectionExecutor
    /// Holds the libpq session (`nil` once closed).
    private let box = SessionBox()
    private var session: PQConnection? {
        get { box.session }
        set { box.session = newValue }
    }
    /// The streamed query in progress, if any (``rows(_:_:)``).
    private var activeStream: Int?
    private var nextStreamID = 0

    /// Runs the actor on its dedicated thread.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Connects.
    ///
    /// - Throws: `DeltaKitError` — `invalidConfiguration` for a setting out of range or a URL libpq cannot parse,
    ///   `connectionFailed` (with a ``RisingWaveError``) naming the redacted URL when the server cannot be
    ///   reached or refuses the login. No message ever contains the password.
    public init(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "deltakit.risingwave")
    ) async throws {
        try configuration.validate()
        if let problem = pqValidateConninfo(configuration.conninfo) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "invalid connection URL \(configuration.redactedURL): \(configuration.scrub(problem))"
            )
        }
        self.configuration = configuration
        self.logger = logger
        self.executor = ConnectionExecutor(name: "deltakit-libpq")
        // From here on the initializer runs on the actor's executor: libpq connects on the dedicated thread.
        do {
            session = try PQConnection(conninfo: configuration.conninfo, logger: logger)
        } catch let error as RisingWaveError {
            executor.stop()
            throw Self.connectionError(configuration, error)
        }
    }

    deinit {
        // The session is finished on its own thread, then the thread ends. (Not an `isolated deinit`: Swift 6.3
        // fails release builds of importing modules with "circular reference".)
        let box = self.box
        executor.submit { box.session = nil }
        executor.stop()
    }

    /// Closes the session (libpq `PQfinish`); idempotent. Later calls throw `DeltaKitError` with code `closed`.
    /// Dropping the last reference closes it too.
    public func close() {
        session = nil
        activeStream = nil
    }

    /// The name of the thread the actor runs on (tests check that libpq never runs on the cooperative pool).
    func executorThreadName() -> String? { Thread.current.name }

    /// `true` when the actor's code runs on its dedicated thread (tests).
    func runsOnDedicatedThread() -> Bool { executor.isCurrentThread }

    static func connectionError(_ configuration: Configuration, _ error: RisingWaveError) -> DeltaKitError {
        var fix = "check that RisingWave (or PostgreSQL) runs there and that the URL is right"
        if error.message.contains("password") || error.message.contains("authentication") {
            fix = "check the user name and password in the URL"
        } else if error.message.contains("does not exist") {
            fix = "check the database name in the URL (RisingWave's default is `dev`)"
        }
        let oneLine = error.message.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: " ")
        return DeltaKitError(
            code: .connectionFailed,
            message: "cannot connect to \(configuration.redactedURL): \(configuration.scrub(oneLine)); \(fix)",
            underlying: scrubbed(error, configuration)
        )
    }

    /// `error` with its message, detail and hint scrubbed of the configuration's secrets (libpq's connection
    /// messages quote fragments of the connection string).
    static func scrubbed(_ error: RisingWaveError, _ configuration: Configuration) -> RisingWaveError {
        var scrubbed = error
        scrubbed.message = configuration.scrub(error.message)
        scrubbed.detail = error.detail.map(configuration.scrub)
        scrubbed.hint = error.hint.map(configuration.scrub)
        return scrubbed
    }

    /// Runs SQL through the simple protocol: DDL, or several `;`-separated statements (not atomic on RisingWave).
    ///
    /// - Throws: `DeltaKitError` with code `queryFailed` carrying a ``RisingWaveError`` (SQLSTATE, message,
    ///   detail, statement); `CancellationError` when the calling task was cancelled.
    package func execute(_ sql: String) async throws {
        try await withSession { session in try session.simple(sql) }
    }

    /// Runs one parameterized statement (`$1`, `$2`, … as text) and returns all rows.
    func query(_ sql: String, _ parameters: [(any SQLEncodable)?] = []) async throws -> [SQLRow] {
        let texts = parameters.map { $0?.sqlText }
        return try await withSession { session in
            var rows: [SQLRow] = []
            try session.send(sql, parameters: texts)
            while let chunk = try session.nextRows(max: Int.max) {
                rows += chunk.rows.map { SQLRow(columns: chunk.columns, values: $0) }
            }
            return rows
        }
    }

    /// Runs one parameterized statement with parameters already in PostgreSQL's text format (`nil` for NULL) and
    /// returns all rows. Package API: DeltaKitOutbox and the example's `outbox` commands run their statements
    /// through this one libpq client rather than a second PostgreSQL driver.
    package func query(_ sql: String, text parameters: [String?]) async throws -> [SQLRow] {
        try await withSession { session in
            var rows: [SQLRow] = []
            try session.send(sql, parameters: parameters)
            while let chunk = try session.nextRows(max: Int.max) {
                rows += chunk.rows.map { SQLRow(columns: chunk.columns, values: $0) }
            }
            return rows
        }
    }

    /// How many times the session was re-established after it broke. A session-scoped state (an advisory lock,
    /// `LISTEN`) is gone after a reconnect; its holder compares this number to notice.
    package private(set) var reconnects = 0

    /// Waits up to `timeout` for a `NOTIFY` on a channel this session `LISTEN`s to; returns whether one arrived
    /// (all that arrived are consumed). Blocks the connection's own thread, never the cooperative pool; a
    /// cancelled caller is seen when the wait ends, so keep `timeout` short.
    package func waitForNotification(timeout: Duration) async throws -> Bool {
        let milliseconds = Int32(
            clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        )
        return try await withSession { session in try session.waitForNotification(timeoutMilliseconds: milliseconds) }
    }

    /// Runs one parameterized statement and streams its rows: each `next()` of the sequence reads the next
    /// chunk from libpq in the caller's task, so memory stays bounded and cancellation reaches the server.
    ///
    /// The connection serves one statement at a time: another call on it while the sequence is unfinished ends
    /// the sequence (its next `next()` throws `closed`). Use a second connection to interleave.
    nonisolated func rows(_ sql: String, _ parameters: [(any SQLEncodable)?] = []) -> SQLRowSequence {
        SQLRowSequence(connection: self, sql: sql, parameters: parameters.map { $0?.sqlText })
    }

    /// Starts a streamed statement; returns its id.
    func startStream(_ sql: String, _ parameters: [String?]) async throws -> Int {
        try await withSession { session in try session.send(sql, parameters: parameters) }
        nextStreamID += 1
        activeStream = nextStreamID
        return nextStreamID
    }

    /// The next chunk of a streamed statement, or `nil` at its end.
    func nextChunk(_ stream: Int) async throws -> [SQLRow]? {
        guard activeStream == stream, let session else {
            throw DeltaKitError(
                code: .closed,
                message:
                    "the row stream was ended by another statement on the same connection (or by close()); read it to the end first, or use a second connection"
            )
        }
        let cancel = session.cancelHandle
        do {
            let chunk = try await withTaskCancellationHandler {
                try Task.checkCancellation()
                return try session.nextRows(max: 512)
            } onCancel: {
                cancel?.cancel()
            }
            guard let chunk else {
                activeStream = nil
                return nil
            }
            return chunk.rows.map { SQLRow(columns: chunk.columns, values: $0) }
        } catch {
            activeStream = nil
            session.drain()
            throw try mapped(error)
        }
    }

    /// Runs `body` with the libpq session on the actor's thread: ends an unfinished stream, reconnects a broken
    /// session first, and turns a cancellation of the calling task into libpq's cancel request.
    private func withSession<T>(_ body: (PQConnection) throws -> T) async throws -> T {
        guard let session else {
            throw DeltaKitError(
                code: .closed,
                message: "the connection to \(configuration.redactedURL) was closed; open a new one"
            )
        }
        if activeStream != nil {
            activeStream = nil
            session.drain()
        }
        do {
            if session.isBroken { try reconnect(session) }
            let cancel = session.cancelHandle
            return try await withTaskCancellationHandler {
                try Task.checkCancellation()
                return try await onConnectionThread { try body(session) }
            } onCancel: {
                cancel?.cancel()
            }
        } catch {
            session.drain()
            throw try mapped(error)
        }
    }

    /// Runs `body` — a blocking libpq call — on the connection's dedicated thread. The actor's jobs run there, so
    /// this is normally a direct call. Once, in a test run with many connections, a debugger showed two of them
    /// blocked in libpq on the cooperative pool's threads instead (both `DROP DATABASE … WITH (FORCE)`, waiting
    /// for a backend whose reader needed the pool: a deadlock on a 2-core machine, whose pool has two threads).
    /// The cause was not found; so libpq is never called from any other thread than the dedicated one: a call
    /// found elsewhere is handed to that thread and awaited.
    private func onConnectionThread<T>(_ body: () throws -> T) async throws -> T {
        if executor.isCurrentThread { return try body() }
        return try await withoutActuallyEscaping(body) { body in
            // Safe: the closure runs once, on the dedicated thread, and this call waits for it to finish.
            nonisolated(unsafe) let body = body
            return try await withCheckedThrowingContinuation { continuation in
                executor.submit {
                    nonisolated(unsafe) let result = Result { try body() }
                    continuation.resume(with: result)
                }
            }
        }
    }

    /// A libpq error as DeltaKit reports it; a statement cancelled for a cancelled task is a `CancellationError`.
    private func mapped(_ error: any Error) throws -> any Error {
        guard let error = error as? RisingWaveError else { return error }
        if Task.isCancelled { return CancellationError() }
        if error.isConnectionError { return Self.connectionError(configuration, error) }
        return DeltaKitError(code: .queryFailed, message: error.description, underlying: error)
    }

    /// Blocking reconnect with exponential backoff; runs on the connection's thread.
    private func reconnect(_ session: PQConnection) throws {
        var delay = configuration.reconnectBackoff
        var lastError: (any Error)?
        for attempt in 1...max(1, configuration.reconnectAttempts) {
            do {
                try session.reconnect()
                reconnects += 1
                logger.info("reconnected to \(configuration.redactedURL) after \(attempt) attempt(s)")
                return
            } catch {
                lastError = error
                let shown = (error as? RisingWaveError).map { "\(Self.scrubbed($0, configuration))" } ?? "\(error)"
                logger.warning("reconnect attempt \(attempt) to \(configuration.redactedURL) failed: \(shown)")
                Thread.sleep(
                    forTimeInterval: delay.secondsAsDouble
                )
                delay = min(delay * 2, .seconds(5))
            }
        }
        throw lastError!
    }

    /// The libpq library version (e.g. 150004 for 15.4).
    static var libpqVersion: Int { pqLibraryVersion() }
}

/// Holds a connection's libpq session. Touched only on the connection's thread: by the actor's isolated
/// methods (which run on its executor, that thread) and by the one job `deinit` submits to the same thread —
/// which is why sharing the reference is safe.
private final class SessionBox: @unchecked Sendable {
    var session: PQConnection?
}
