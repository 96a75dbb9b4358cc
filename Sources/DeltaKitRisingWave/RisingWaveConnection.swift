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

        static func redact(_ text: String) -> String {
            // URL form: scheme://user:password@host
            if let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@") {
                let userInfo = text[scheme.upperBound..<at]
                if let colon = userInfo.firstIndex(of: ":") {
                    return String(text[..<colon]) + ":***" + String(text[at...])
                }
                return text
            }
            // key=value form
            return text.split(separator: " ").map { part in
                part.lowercased().hasPrefix("password=") ? "password=***" : String(part)
            }.joined(separator: " ")
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

    private let configuration: Configuration
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
        if let problem = pqValidateConninfo(configuration.conninfo) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "invalid connection URL \(configuration.redactedURL): \(problem)"
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
            message: "cannot connect to \(configuration.redactedURL): \(oneLine); \(fix)",
            underlying: error
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
                    throw RisingWaveError(sqlState: nil, message: "the connection is closed", isConnectionError: true)
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
