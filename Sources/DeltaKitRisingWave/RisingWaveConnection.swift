import DeltaKit
import Foundation
public import Logging

/// An asynchronous connection to RisingWave (or any PostgreSQL-wire server) on libpq.
///
/// An actor whose executor is one dedicated thread: every libpq call runs there, one at a time (libpq blocks
/// and a `PGconn` is not thread-safe), and no thread of Swift's cooperative pool ever blocks. Queries run in
/// the caller's task — structured concurrency: cancelling the caller sends libpq's cancel request for the
/// statement in progress. Parameterized statements use the extended protocol (one statement per call);
/// ``execute(_:)`` uses the simple protocol for DDL. Results are read in single-row mode. A broken connection is
/// re-established with exponential backoff before the next call.
public actor RisingWaveConnection {
    /// Connection settings. Every property has a documented default.
    public struct Configuration: Sendable, CustomStringConvertible {
        /// A `postgres://` URL or a libpq `key=value` string.
        /// Default: `"postgres://root@localhost:4566/dev"` (RisingWave's defaults).
        public var url: String
        /// libpq `sslmode` (`disable`, `prefer`, `require`, `verify-full`, …); `nil` keeps the URL's or libpq's
        /// default (`prefer`). Default: `nil`.
        public var sslMode: String?
        /// How long to wait for the server when connecting. Default: 10 seconds.
        public var connectTimeout: Duration
        /// How many times to retry re-establishing a broken connection. Default: 5.
        public var reconnectAttempts: Int
        /// The first reconnect delay; it doubles per attempt up to 5 seconds. Default: 200 ms.
        public var reconnectBackoff: Duration
        /// `application_name` shown in the server's session list. Default: `"deltakit"`.
        public var applicationName: String

        /// Creates a configuration.
        public init(
            url: String = "postgres://root@localhost:4566/dev",
            sslMode: String? = nil,
            connectTimeout: Duration = .seconds(10),
            reconnectAttempts: Int = 5,
            reconnectBackoff: Duration = .milliseconds(200),
            applicationName: String = "deltakit"
        ) {
            self.url = url
            self.sslMode = sslMode
            self.connectTimeout = connectTimeout
            self.reconnectAttempts = reconnectAttempts
            self.reconnectBackoff = reconnectBackoff
            self.applicationName = applicationName
        }

        /// The URL with everything that may be a secret replaced by `***`: safe for logs and errors. Hidden are
        /// the user information (all between the scheme and the last `@`, the user name included: a mistyped URL
        /// can put the password there), a non-numeric port when there is no `@` (`postgres://root:S3cr3t`), and
        /// password parameters (`?password=`, `passwd`, `sslpassword`, `key=value` forms).
        public var redactedURL: String { ConnectionSecrets.redactURL(url) }

        public var description: String { "RisingWaveConnection.Configuration(url: \(redactedURL))" }

        /// `text` with every password replaced by `***` (see `ConnectionSecrets`).
        static func redact(_ text: String) -> String { ConnectionSecrets.redact(text) }

        /// A message from libpq with ``redact(_:)`` applied and this configuration's secrets — and their
        /// fragments — removed wherever they appear (libpq quotes parts of a conninfo it cannot parse).
        func scrub(_ message: String) -> String {
            ConnectionSecrets.scrub(message, secrets: ConnectionSecrets.secrets(in: url))
        }

        /// Checks the settings; called by ``RisingWaveConnection/init(configuration:logger:)``.
        ///
        /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the setting; a URL is never echoed with its
        ///   password.
        public func validate() throws {
            let trimmed = url.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else {
                throw DeltaKitError.invalidValue(
                    "url",
                    "empty",
                    allowed: "postgres://user@host:port/database (an empty URL would silently use the local socket)"
                )
            }
            let isKeyValue = !trimmed.contains("//") && !trimmed.contains("@") && trimmed.contains("=")
            let lower = trimmed.lowercased()
            if !isKeyValue, !(lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")) {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message: "the URL \(redactedURL) must start with postgres:// or postgresql://"
                )
            }
            try DeltaKitError.check(connectTimeout, in: .seconds(1) ... .seconds(Int64(Int32.max)), "connectTimeout")
            try DeltaKitError.check(reconnectAttempts, in: 0...1_000, "reconnectAttempts")
            try DeltaKitError.check(reconnectBackoff, in: .zero ... .seconds(60), "reconnectBackoff")
            if let sslMode {
                let modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
                guard modes.contains(sslMode) else {
                    throw DeltaKitError.invalidValue("sslMode", "'\(sslMode)'", allowed: modes.joined(separator: ", "))
                }
            }
        }

        var conninfo: String {
            var extras = [
                ("connect_timeout", String(connectTimeout.wholeSecondsRoundedUp(minimum: 1))),
                ("application_name", applicationName),
                ("client_encoding", "UTF8"),
            ]
            if let sslMode { extras.append(("sslmode", sslMode)) }
            if url.contains("://") {
                let separator = url.contains("?") ? "&" : "?"
                let query = extras.map {
                    "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0.1)"
                }
                return url + separator + query.joined(separator: "&")
            }
            return url + " " + extras.map { "\($0.0)='\($0.1)'" }.joined(separator: " ")
        }
    }

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
    public func execute(_ sql: String) async throws {
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
                return try body(session)
            } onCancel: {
                cancel?.cancel()
            }
        } catch {
            session.drain()
            throw try mapped(error)
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
    public static var libpqVersion: Int { pqLibraryVersion() }
}

/// Holds a connection's libpq session. Touched only on the connection's thread: by the actor's isolated
/// methods (which run on its executor, that thread) and by the one job `deinit` submits to the same thread —
/// which is why sharing the reference is safe.
private final class SessionBox: @unchecked Sendable {
    var session: PQConnection?
}

/// Rows of a streamed statement; see ``RisingWaveConnection/rows(_:_:)``.
struct SQLRowSequence: AsyncSequence, Sendable {
    typealias Element = SQLRow
    typealias Failure = any Error
    let connection: RisingWaveConnection
    let sql: String
    let parameters: [String?]

    func makeAsyncIterator() -> Iterator { Iterator(sequence: self) }

    struct Iterator: AsyncIteratorProtocol {
        let sequence: SQLRowSequence
        private var stream: Int?
        private var buffer: [SQLRow] = []
        private var index = 0
        private var finished = false

        init(sequence: SQLRowSequence) { self.sequence = sequence }

        mutating func next() async throws -> SQLRow? {
            while index == buffer.count {
                if finished { return nil }
                if stream == nil {
                    stream = try await sequence.connection.startStream(sequence.sql, sequence.parameters)
                }
                guard let chunk = try await sequence.connection.nextChunk(stream!) else {
                    finished = true
                    return nil
                }
                buffer = chunk
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}
