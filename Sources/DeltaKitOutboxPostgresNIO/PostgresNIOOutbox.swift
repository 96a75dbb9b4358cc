public import DeltaKit
public import DeltaKitOutbox
public import Logging
public import PostgresNIO

extension PostgresOutbox {
    /// Enqueues `event` for `topic` on a postgres-nio connection, inside the transaction the application opened on
    /// it (with `PostgresClient.withTransaction` or `PostgresConnection.withTransaction`), after the application's
    /// own write: the event is published when that transaction commits and never when it rolls back.
    ///
    /// ```swift
    /// try await client.withTransaction(logger: logger) { connection in
    ///     try await connection.query("UPDATE users SET name = \(user.name) WHERE id = \(user.id)", logger: logger)
    ///     try await outbox.enqueue(.update(user), topic: "user-events", on: connection, logger: logger)
    /// }
    /// ```
    ///
    /// It runs `enqueueStatement(_:topic:traceparent:)` with its parameters bound as text.
    ///
    /// - Parameters:
    ///   - event: The change event, as the application's write left the row.
    ///   - topic: The topic the relay of this topic publishes it to.
    ///   - traceparent: The W3C `traceparent` of the span the write belongs to, stored with the event. `nil`: the
    ///     current trace context's, when a span is active (see `enqueueStatement(_:topic:traceparent:)`).
    ///   - connection: The connection the application's transaction is open on.
    ///   - logger: The logger postgres-nio logs the query to.
    /// - Returns: The outbox row's id and the `event_order` the event is published with (per key, it follows the
    ///   order in which PostgreSQL commits the writes).
    /// - Throws: `DeltaKitError` with code `serializationFailed` when the event cannot be encoded, or
    ///   `queryFailed` when the insert returned no row; postgres-nio's `PSQLError` when the query fails (the
    ///   transaction is then aborted, as for any failed statement in it).
    @discardableResult
    public func enqueue<Record>(
        _ event: ChangeEvent<Record>,
        topic: String,
        traceparent: String? = nil,
        on connection: PostgresConnection,
        logger: Logger = Logger(label: "deltakit.outbox")
    ) async throws -> (id: Int64, order: Int64) {
        let statement = try enqueueStatement(event, topic: topic, traceparent: traceparent)
        let rows = try await connection.query(PostgresQuery(statement), logger: logger)
        // Reads the result to its end, so the connection is ready for the application's next statement.
        var inserted: (id: Int64, order: Int64)?
        for try await (id, order) in rows.decode((Int64, Int64).self) { inserted = (id, order) }
        guard let inserted else {
            throw DeltaKitError(code: .queryFailed, message: "the outbox insert into \(table) returned no row")
        }
        return inserted
    }
}

extension PostgresOutbox {
    /// Creates the outbox (`schemaSQL`) through a postgres-nio connection, in one transaction;
    /// safe to run concurrently and repeatedly. Run it outside any transaction of the application (it commits).
    ///
    /// - Throws: postgres-nio's `PSQLError` when PostgreSQL refuses it.
    public func provision(on connection: PostgresConnection, logger: Logger = Logger(label: "deltakit.outbox"))
        async throws
    {
        // postgres-nio speaks only the extended protocol, which runs one statement per query: a DO block runs
        // the whole schema as one statement (one implicit transaction). The advisory lock (the same key
        // `provision(connection:)` takes) serializes concurrent provisioning, whose CREATE … IF NOT EXISTS could
        // otherwise collide on the catalog's unique index.
        let sql = """
            DO $deltakit_provision$ BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended('deltakit_outbox_provision', 0));
            EXECUTE $deltakit_schema$\(schemaSQL)$deltakit_schema$;
            END $deltakit_provision$
            """
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }
}

extension PostgresQuery {
    /// The query that runs `statement`, its parameters bound as `text` (`nil` as NULL), for running an
    /// `OutboxStatement` with postgres-nio directly.
    public init(_ statement: OutboxStatement) {
        var binds = PostgresBindings(capacity: statement.bindings.count)
        for value in statement.bindings { binds.append(value) }
        self.init(unsafeSQL: statement.sql, binds: binds)
    }
}

/// A `PostgresOutbox` bound to a postgres-nio client and a topic: the `TransactionalOutbox` that application
/// code written against that protocol uses in production (and DeltaKitTesting's `InMemoryOutbox` in unit tests).
///
/// ```swift
/// let outbox = PostgresNIOOutbox<User>(outbox: try PostgresOutbox(), topic: "user-events", client: client)
/// try await outbox.withTransaction { transaction in
///     try await transaction.connection.query("UPDATE users SET name = \(name) WHERE id = \(id)", logger: logger)
///     try await transaction.enqueue(.update(user, order: 0))
/// }
/// ```
public struct PostgresNIOOutbox<Record: ChangeRecord>: TransactionalOutbox {
    /// The outbox's tables.
    public let outbox: PostgresOutbox
    /// The topic every event is enqueued for.
    public let topic: String
    /// The client whose connections the transactions run on.
    public let client: PostgresClient
    /// The logger postgres-nio logs the transactions' queries to.
    public let logger: Logger

    /// The `outbox` for `topic`, with transactions on `client`'s connections.
    public init(
        outbox: PostgresOutbox,
        topic: String,
        client: PostgresClient,
        logger: Logger = Logger(label: "deltakit.outbox")
    ) {
        self.outbox = outbox
        self.topic = topic
        self.client = client
        self.logger = logger
    }

    /// A transaction on one of the client's connections.
    public struct Transaction: OutboxTransaction {
        /// The outbox the events go to.
        public let outbox: PostgresNIOOutbox<Record>
        /// The connection the transaction is open on: run the application's own writes on it.
        public let connection: PostgresConnection

        /// Enqueues `event` in this transaction
        /// (`PostgresOutbox.enqueue(_:topic:traceparent:on:logger:)`).
        ///
        /// - Throws: `DeltaKitError` with code `serializationFailed` when the event cannot be encoded;
        ///   postgres-nio's `PSQLError` when the insert fails.
        public func enqueue(_ event: ChangeEvent<Record>) async throws {
            try await outbox.outbox.enqueue(event, topic: outbox.topic, on: connection, logger: outbox.logger)
        }
    }

    /// Runs `body` in a transaction on one of the client's connections (`PostgresClient.withTransaction`): commits
    /// when it returns, rolls back when it throws.
    ///
    /// - Throws: What `body` throws (unwrapped from postgres-nio's `PostgresTransactionError`), or
    ///   `PostgresTransactionError` when the transaction cannot begin, commit or roll back.
    public func withTransaction<Result: Sendable>(
        _ body: (Transaction) async throws -> Result
    ) async throws -> Result {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await body(Transaction(outbox: self, connection: connection))
            }
        } catch let error as PostgresTransactionError
            where error.closureError != nil && error.rollbackError == nil
        {
            throw error.closureError!
        }
    }
}
