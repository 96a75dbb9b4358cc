import DeltaKit
import Foundation
public import Hummingbird
public import Logging

/// The HTTP API over one or more ``ServedTable``s: read-only routes for the snapshot, one row and the change
/// stream, an OpenAPI document at `/openapi.json` and a dashboard page at `/`.
///
/// ```swift
/// let server = try StateServer(tables: [ServedTable("users", store: store)])
/// let app = server.application(host: "127.0.0.1", port: 8080)
/// try await app.runService()
/// ```
///
/// Every error is an `application/problem+json` body; a bad query parameter or header answers 400 and names it
/// in the body's `parameter` member. See `Documentation/http.md` for each route's guarantees.
public struct StateServer: Sendable {
    /// Limits and timings of the server.
    public struct Configuration: Sendable {
        /// The page size when a request gives no `limit`. Default: 100.
        public var defaultPageSize: Int
        /// The largest `limit` a request may ask for. Default: 1,000.
        public var maximumPageSize: Int
        /// How long a change stream may be idle before a heartbeat comment is sent. Default: 15 s.
        public var heartbeatInterval: Duration
        /// How many events may wait for one change-stream client before it is cut off. Default: 1,024.
        public var clientBufferLimit: Int
        /// How long a `visibleAfter` read waits before it answers 503. Default: 10 s.
        public var visibilityTimeout: Duration

        /// Creates a configuration.
        public init(
            defaultPageSize: Int = 100,
            maximumPageSize: Int = 1_000,
            heartbeatInterval: Duration = .seconds(15),
            clientBufferLimit: Int = 1_024,
            visibilityTimeout: Duration = .seconds(10)
        ) {
            self.defaultPageSize = defaultPageSize
            self.maximumPageSize = maximumPageSize
            self.heartbeatInterval = heartbeatInterval
            self.clientBufferLimit = clientBufferLimit
            self.visibilityTimeout = visibilityTimeout
        }
    }

    /// The served tables, by name.
    let tables: [String: ServedTable]
    /// The tables in the order they were given (the order `/v1/tables` lists them).
    let order: [String]
    /// The limits and timings.
    public let configuration: Configuration

    /// Creates a server for `tables`.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) for a table name that is empty,
    ///   not made of letters, digits, `_` and `-`, or given twice, or a configuration value out of range.
    public init(tables: [ServedTable], configuration: Configuration = Configuration()) throws {
        var byName: [String: ServedTable] = [:]
        for table in tables {
            let allowed = table.name.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
                    || $0 == "-"
            }
            guard !table.name.isEmpty, allowed else {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message: "table name '\(table.name)': use letters, digits, '_' and '-'"
                )
            }
            guard byName.updateValue(table, forKey: table.name) == nil else {
                throw DeltaKitError(code: .invalidConfiguration, message: "table '\(table.name)' is served twice")
            }
        }
        try DeltaKitError.check(configuration.maximumPageSize, in: 1...100_000, "maximumPageSize")
        try DeltaKitError.check(
            configuration.defaultPageSize,
            in: 1...configuration.maximumPageSize,
            "defaultPageSize"
        )
        try DeltaKitError.check(configuration.clientBufferLimit, in: 1...1_000_000, "clientBufferLimit")
        guard configuration.heartbeatInterval > .zero, configuration.visibilityTimeout > .zero else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "heartbeatInterval and visibilityTimeout must be positive"
            )
        }
        self.tables = byName
        self.order = tables.map(\.name)
        self.configuration = configuration
    }

    /// A Hummingbird application that serves the API on `host`:`port` (loopback by default).
    ///
    /// Run it with `runService()` or in a `ServiceGroup`: a graceful shutdown stops accepting connections, ends
    /// every change stream and lets the requests in flight finish.
    ///
    /// - Parameters:
    ///   - host: The address to listen on. Default: loopback only.
    ///   - port: The port; 0 picks a free one (see `onListening`).
    ///   - logger: The server's logger.
    ///   - onListening: Called once the server listens, with the port it listens on.
    public func application(
        host: String = "127.0.0.1",
        port: Int = 8080,
        logger: Logger = Logger(label: "DeltaKitHTTP"),
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "DeltaKit"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }

    /// The routes, to mount in an application of your own or to test in process (HummingbirdTesting).
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let handlers = Handlers(server: self)
        router.add(middleware: ProblemMiddleware())
        router.get("/") { _, _ in Resources.dashboard }
        let document = Resources.openAPI(
            tables: order,
            keyPattern: Set(tables.values.map(\.keyPattern)).count == 1 ? tables.values.first?.keyPattern : nil
        )
        router.get("/openapi.json") { _, _ in document }
        router.get("/v1/tables") { request, context in
            await handlers.respond { try await handlers.tables(request, context) }
        }
        router.get("/v1/tables/:table/rows") { request, context in
            await handlers.respond { try await handlers.rows(request, context) }
        }
        router.get("/v1/tables/:table/rows/:key") { request, context in
            await handlers.respond { try await handlers.row(request, context) }
        }
        router.get("/v1/tables/:table/changes") { request, context in
            await handlers.respond { try await handlers.changes(request, context) }
        }
        return router
    }
}
