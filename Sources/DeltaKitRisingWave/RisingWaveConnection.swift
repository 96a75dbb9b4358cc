import DeltaKit
import Foundation
public import Logging
import Synchronization

/// An asynchronous connection to RisingWave (or any PostgreSQL-wire server) on libpq.
///
/// Every libpq call runs on the connection's own thread, one at a time; no thread of Swift's
/// cooperative pool ever blocks. Parameterized statements use the extended protocol (one statement per
/// call); ``execute(_:)`` uses the simple protocol for DDL. Results are streamed in single-row mode.
/// A broken connection is re-established with exponential backoff before the next call.
public final class RisingWaveConnection: Sendable {
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

        /// The URL with any password replaced by `***`: safe for logs and errors.
        public var redactedURL: String { Self.redact(url) }

        public var description: String { "RisingWaveConnection.Configuration(url: \(redactedURL))" }

        /// Replaces every password in `text` with `***`, whatever shape the text has: a URL (also a mistyped one
        /// such as `postgres//user:SECRET@host` or `postgresql+psycopg://…`), a `key=value` string, or a message
        /// that quotes either.
        static func redact(_ text: String) -> String {
            var result = text
            // user:password@ anywhere (the user part may be empty).
            result = result.replacing(userInfoPattern) { match in "\(match.output.1):***@" }
            // password=value and password='value' (libpq key=value form, also inside messages).
            result = result.replacing(keyValuePattern) { match in "\(match.output.1)***" }
            return result
        }

        /// Like ``redact(_:)``, and also removes this configuration's own password wherever it appears
        /// (libpq quotes parts of a conninfo it cannot parse).
        func scrub(_ message: String) -> String {
            var result = Self.redact(message)
            for secret in secrets where !secret.isEmpty {
                result = result.replacingOccurrences(of: secret, with: "***")
            }
            return result
        }

        /// The passwords in ``url``, raw and percent-decoded.
        var secrets: [String] {
            var found: [String] = []
            for match in url.matches(of: Self.userInfoPattern) {
                let raw = String(match.output.2)
                found.append(raw)
                if let decoded = raw.removingPercentEncoding { found.append(decoded) }
                // An unencoded '@' in a password makes libpq read the rest as the host and quote it: scrub the parts.
                found += raw.split(separator: "@").map(String.init).filter { $0.count >= 3 }
            }
            for match in url.matches(of: Self.keyValueSecretPattern) { found.append(String(match.output.1)) }
            return found.filter { $0.count >= 1 }.sorted { $0.count > $1.count }
        }

        nonisolated(unsafe) private static let userInfoPattern = try! Regex<(Substring, Substring, Substring)>(
            #"([^\s/@:'"]*):([^\s/]+)@"#
        )
        nonisolated(unsafe) private static let keyValuePattern = try! Regex<(Substring, Substring)>(
            #"((?i:password)\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s]+)"#
        )
        nonisolated(unsafe) private static let keyValueSecretPattern = try! Regex<(Substring, Substring)>(
            #"(?i:password)\s*=\s*'?([^'\s]+)"#
        )

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
                    message: "the URL \(Self.redact(trimmed)) must start with postgres:// or postgresql://"
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
                ("connect_timeout", String(max(1, connectTimeout.components.seconds))),
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

    /// The settings this connection was opened with (secrets included: never print it, print ``Configuration/redactedURL``).
    public let configuration: Configuration
    private let logger: Logger
    private let thread: ConnectionThread
    private let connection: ConnectionBox

    /// Connects.
    ///
    /// - Throws: `DeltaKitError` — `invalidConfiguration` for a URL
    ///   libpq cannot parse, `connectionFailed` (with a ``RisingWaveError``)
    ///   naming the redacted URL and the fix when the server cannot be reached or refuses the login.
    public init(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "deltakit.risingwave")
    ) async throws {
        try configuration.validate()
        if let problem = pqValidateConninfo(configuration.conninfo) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: configuration.scrub("invalid connection URL \(configuration.redactedURL): \(problem)")
            )
        }
        self.configuration = configuration
        self.logger = logger
        self.thread = ConnectionThread(name: "deltakit-libpq")
        self.connection = ConnectionBox()
        let conninfo = configuration.conninfo
        let box = connection
        do {
            try await thread.run {
                box.value = try PQConnection(conninfo: conninfo, logger: logger)
            }
        } catch let error as RisingWaveError {
            thread.stop()
            throw Self.connectionError(configuration, error)
        }
    }

    deinit {
        let box = connection
        thread.submit { box.value = nil }
        thread.stop()
    }

    /// Closes the session (libpq `PQfinish`); idempotent. Later calls throw `DeltaKitError` with code `closed`.
    /// Dropping the last reference closes it too.
    public func close() async {
        let box = connection
        _ = try? await thread.run { box.value = nil }
    }

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
        var scrubbed = error
        scrubbed.message = configuration.scrub(error.message)
        return DeltaKitError(
            code: .connectionFailed,
            message: configuration.scrub("cannot connect to \(configuration.redactedURL): \(oneLine); \(fix)"),
            underlying: scrubbed
        )
    }

    /// Runs SQL through the simple protocol: DDL, or several `;`-separated statements (not atomic on RisingWave).
    ///
    /// - Throws: `DeltaKitError` with code `queryFailed` carrying a
    ///   ``RisingWaveError`` (SQLSTATE, message, detail, statement).
    public func execute(_ sql: String) async throws {
        try await withConnection { connection in try connection.simple(sql) }
    }

    /// Runs one parameterized statement (`$1`, `$2`, …) and returns all rows.
    public func query(_ sql: String, _ parameters: [(any SQLEncodable)?] = []) async throws -> [SQLRow] {
        let texts = parameters.map { $0?.sqlText }
        return try await withConnection { connection in
            var columns: [String] = []
            var rows: [SQLRow] = []
            try connection.query(
                sql,
                parameters: texts,
                onColumns: { columns = $0.names },
                onRow: { values in
                    rows.append(SQLRow(columns: columns, values: values))
                    return true
                }
            )
            return rows
        }
    }

    /// Runs one parameterized statement and streams its rows without holding the whole result in memory.
    ///
    /// Rows arrive in chunks; the connection waits while the consumer is behind (bounded memory).
    /// The connection is busy until the sequence ends or is abandoned.
    public func rows(_ sql: String, _ parameters: [(any SQLEncodable)?] = []) -> SQLRowSequence {
        let channel = RowChannel()
        let texts = parameters.map { $0?.sqlText }
        Task {
            do {
                try await withConnection { connection in
                    var columns: [String] = []
                    var chunk: [SQLRow] = []
                    chunk.reserveCapacity(RowChannel.chunkSize)
                    try connection.query(
                        sql,
                        parameters: texts,
                        onColumns: { columns = $0.names },
                        onRow: { values in
                            chunk.append(SQLRow(columns: columns, values: values))
                            if chunk.count == RowChannel.chunkSize {
                                defer { chunk.removeAll(keepingCapacity: true) }
                                return channel.send(chunk)
                            }
                            return true
                        }
                    )
                    if !chunk.isEmpty { _ = channel.send(chunk) }
                }
                channel.finish(nil)
            } catch {
                channel.finish(error)
            }
        }
        return SQLRowSequence(channel: channel)
    }

    /// Runs `body` with the libpq connection on its thread, reconnecting first if it is broken.
    private func withConnection<T: Sendable>(_ body: @escaping @Sendable (PQConnection) throws -> T) async throws -> T {
        let box = connection
        let configuration = self.configuration
        let logger = self.logger
        do {
            return try await thread.run {
                guard let connection = box.value else {
                    throw DeltaKitError(
                        code: .closed,
                        message: "the connection to \(configuration.redactedURL) was closed; open a new one"
                    )
                }
                if connection.isBroken {
                    try Self.reconnect(connection, configuration: configuration, logger: logger)
                }
                return try body(connection)
            }
        } catch let error as RisingWaveError {
            if error.isConnectionError { throw Self.connectionError(configuration, error) }
            throw DeltaKitError(code: .queryFailed, message: error.description, underlying: error)
        }
    }

    /// Blocking reconnect with exponential backoff; runs on the connection thread.
    private static func reconnect(_ connection: PQConnection, configuration: Configuration, logger: Logger) throws {
        var delay = configuration.reconnectBackoff
        var lastError: (any Error)?
        for attempt in 1...max(1, configuration.reconnectAttempts) {
            do {
                try connection.reconnect()
                logger.info("reconnected to \(configuration.redactedURL) after \(attempt) attempt(s)")
                return
            } catch {
                lastError = error
                logger.warning("reconnect attempt \(attempt) to \(configuration.redactedURL) failed: \(error)")
                Thread.sleep(
                    forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
                )
                delay = min(delay * 2, .seconds(5))
            }
        }
        throw lastError!
    }

    /// The libpq library version (e.g. 150004 for 15.4).
    public static var libpqVersion: Int { pqLibraryVersion() }
}

/// Holds the connection; touched only on the connection thread.
final class ConnectionBox: @unchecked Sendable {
    // Only ever read or written from jobs running on the owning ConnectionThread, one at a time.
    var value: PQConnection?
}

/// Rows of a streamed query.
public struct SQLRowSequence: AsyncSequence, Sendable {
    public typealias Element = SQLRow
    let channel: RowChannel

    public func makeAsyncIterator() -> Iterator { Iterator(channel: channel) }

    /// Iterates rows; abandoning it stops the query.
    public final class Iterator: AsyncIteratorProtocol {
        private let channel: RowChannel
        private var buffer: [SQLRow] = []
        private var index = 0

        init(channel: RowChannel) { self.channel = channel }
        deinit { channel.cancel() }

        public func next() async throws -> SQLRow? {
            if index == buffer.count {
                guard let chunk = try await channel.receive() else { return nil }
                buffer = chunk
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}

/// A bounded hand-off from the connection thread (which may block) to an async consumer.
final class RowChannel: Sendable {
    static let chunkSize = 512
    private static let capacity = 4
    private struct State {
        var chunks: [[SQLRow]] = []
        var finished = false
        var error: (any Error)?
        var cancelled = false
        var waiter: CheckedContinuation<[SQLRow]?, any Error>?
    }
    private let state = Mutex(State())
    private let space = DispatchSemaphore(value: RowChannel.capacity)

    /// Blocks the (dedicated) producer thread while the buffer is full. Returns `false` once cancelled.
    func send(_ chunk: [SQLRow]) -> Bool {
        space.wait()
        let waiter: CheckedContinuation<[SQLRow]?, any Error>?? = state.withLock { state in
            if state.cancelled { return .none }
            if let waiter = state.waiter {
                state.waiter = nil
                return .some(waiter)
            }
            state.chunks.append(chunk)
            return .some(nil)
        }
        switch waiter {
        case .none: return false
        case .some(let w?):
            space.signal()
            w.resume(returning: chunk)
        case .some(nil): break
        }
        return true
    }

    func finish(_ error: (any Error)?) {
        let waiter = state.withLock { state in
            state.finished = true
            state.error = error
            defer { state.waiter = nil }
            return state.waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    func receive() async throws -> [SQLRow]? {
        try await withCheckedThrowingContinuation { continuation in
            enum Action {
                case chunk([SQLRow])
                case end((any Error)?)
                case wait
            }
            let action: Action = state.withLock { state in
                if !state.chunks.isEmpty { return .chunk(state.chunks.removeFirst()) }
                if state.finished { return .end(state.error) }
                state.waiter = continuation
                return .wait
            }
            switch action {
            case .chunk(let chunk):
                space.signal()
                continuation.resume(returning: chunk)
            case .end(let error?): continuation.resume(throwing: error)
            case .end(nil): continuation.resume(returning: nil)
            case .wait: break
            }
        }
    }

    func cancel() {
        state.withLock { $0.cancelled = true }
        for _ in 0..<RowChannel.capacity + 1 { space.signal() }
    }
}
