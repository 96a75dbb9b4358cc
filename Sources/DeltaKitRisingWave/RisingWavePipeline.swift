public import DeltaKit

/// The RisingWave objects that turn a Kafka topic of change events into the latest state per key,
/// generated from the record declaration (`RecordSchema`) — the record is never described twice.
///
/// For the demo's `User` with the default configuration it generates:
/// - `user_events`: a Kafka source with the record's columns plus `op`, `event_order`, `ts` (TIMESTAMPTZ, matching
///   the `+00:00` timestamps the core writes), the partition and offset, `FORMAT PLAIN ENCODE JSON`;
/// - `latest_user_state`: a materialized view in the Top-N form — per key, the row with the highest
///   `event_order` (on a tie a delete wins, then the later Kafka offset), dropped when it is a delete. On the append-only source
///   RisingWave keeps one row per key, unlike the original demo's self-join on `MAX(event_order)`, which keeps
///   every event as state;
/// - `latest_user_state_progress`: a one-row view of the highest `event_order` ingested, for freshness checks;
/// - `latest_user_state_changes`: a subscription on the view, for ``RisingWaveStateStore/changes(from:)``;
/// - optionally a keyed `FORMAT UPSERT` table (``Configuration/upsertTable``).
///
/// ``apply(on:)`` and ``teardown(on:)`` are idempotent (`IF NOT EXISTS`, `DROP … IF EXISTS … CASCADE`).
/// Names are validated and quoted, literals escaped: no SQL injection through a topic or relation name.
public struct RisingWavePipeline<Record: ChangeRecord>: Sendable {
    /// Names and connection settings of the generated objects. Every property but ``topic`` has a documented
    /// default.
    public struct Configuration: Sendable {
        /// The Kafka topic. Required: a library has no default topic.
        public var topic: String
        /// The brokers *as RisingWave reaches them* (inside Docker, e.g. `redpanda:29092`).
        /// Default: `"localhost:9092"`.
        public var bootstrapServers: String
        /// The source's name. Default: `nil`, derived from the record type: `<record>_events` in snake case
        /// (`User` → `user_events`, `OrderLine` → `order_line_events`).
        public var sourceName: String?
        /// The latest-state view's name. Default: `nil`, derived from the record type: `latest_<record>_state`
        /// (`User` → `latest_user_state`).
        public var viewName: String?
        /// `scan.startup.mode`: `earliest` or `latest`. Default: `"earliest"`.
        public var startupMode: String
        /// Extra Kafka properties for RisingWave, without the `properties.` prefix (e.g. `security.protocol`).
        /// Only keys RisingWave accepts are allowed. Default: empty.
        public var kafkaProperties: [String: String]
        /// When set, also create a keyed `FORMAT UPSERT` table with this name (latest message per Kafka key;
        /// delete events stay as rows with `op = 'delete'`). Default: `nil`.
        public var upsertTable: String?
        /// The subscription's retention (how far back a change feed can resume, ``RisingWaveStateStore/changes(from:)``).
        /// Default: `"1D"`.
        public var subscriptionRetention: String
        /// How many of the newest valid events the history view keeps (a streaming Top-N: O(`historySize`)
        /// state, unlike a query on the source, which scans the whole topic each time); 1…100,000.
        /// Default: 1,000.
        public var historySize: Int

        /// Creates a configuration.
        public init(
            topic: String,
            bootstrapServers: String = "localhost:9092",
            sourceName: String? = nil,
            viewName: String? = nil,
            startupMode: String = "earliest",
            kafkaProperties: [String: String] = [:],
            upsertTable: String? = nil,
            subscriptionRetention: String = "1D",
            historySize: Int = 1_000
        ) {
            self.topic = topic
            self.bootstrapServers = bootstrapServers
            self.sourceName = sourceName
            self.viewName = viewName
            self.startupMode = startupMode
            self.kafkaProperties = kafkaProperties
            self.upsertTable = upsertTable
            self.subscriptionRetention = subscriptionRetention
            self.historySize = historySize
        }
    }

    /// The source's name: ``Configuration/sourceName``, or `<record>_events` derived from the record type.
    public let sourceName: String
    /// The latest-state view's name: ``Configuration/viewName``, or `latest_<record>_state`.
    public let viewName: String
    /// The progress view's name: ``viewName`` + `_progress`.
    public var progressViewName: String { viewName + "_progress" }
    /// The subscription's name: ``viewName`` + `_changes`.
    public var subscriptionName: String { viewName + "_changes" }
    /// The history view's name: ``viewName`` + `_history`.
    public var historyViewName: String { viewName + "_history" }

    /// The record type's name in snake case (`OrderLine` → `order_line`), the stem of derived names.
    static var recordStem: String { RecordSchema.snakeCaseName(of: Record.self) }

    /// The configuration.
    public let configuration: Configuration
    /// The record's schema.
    public let schema: RecordSchema

    /// Kafka property keys RisingWave accepts in a source's `WITH` clause (anything else fails its DDL).
    ///
    /// Six of them exist only from RisingWave v3.0.2 on (v2.1–v3.0.1 refuse them): ``propertiesSinceV3_0_2``.
    public static var allowedKafkaProperties: Set<String> {
        [
            "security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "sasl.oauthbearer.config",
            "sasl.kerberos.service.name", "sasl.kerberos.keytab", "sasl.kerberos.principal", "sasl.kerberos.kinit.cmd",
            "sasl.kerberos.min.time.before.relogin", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
            "ssl.ca.pem", "ssl.certificate.pem", "ssl.key.pem", "ssl.key.password",
            "ssl.endpoint.identification.algorithm",
            "enable.ssl.certificate.verification", "client.id", "sync.call.timeout", "message.max.bytes",
            "receive.message.max.bytes", "fetch.max.bytes", "fetch.min.bytes", "fetch.wait.max.ms",
            "fetch.queue.backoff.ms", "fetch.message.max.bytes", "queued.min.messages", "queued.max.messages.kbytes",
            "reconnect.backoff.ms", "reconnect.backoff.max.ms", "retry.backoff.ms", "retry.backoff.max.ms",
            "socket.connection.setup.timeout.ms", "socket.keepalive.enable", "statistics.interval.ms",
            "enable.auto.commit", "auto.commit.interval.ms",
        ]
    }

    /// The keys of ``allowedKafkaProperties`` that RisingWave accepts only from v3.0.2 on (its rdkafka retry
    /// settings); an older RisingWave refuses the DDL with "Unknown fields in the WITH clause".
    public static var propertiesSinceV3_0_2: Set<String> {
        [
            "auto.commit.interval.ms", "reconnect.backoff.ms", "reconnect.backoff.max.ms", "retry.backoff.ms",
            "retry.backoff.max.ms", "socket.connection.setup.timeout.ms",
        ]
    }

    /// Validates the configuration against the record's schema.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the bad
    ///   name, property or field — also a topic name Kafka refuses (1–249 letters, digits, `.`, `_`, `-`; not `.`
    ///   or `..`).
    public init(configuration: Configuration) throws {
        let schema = try Record.schema
        let sourceName = configuration.sourceName ?? Self.recordStem + "_events"
        let viewName = configuration.viewName ?? "latest_" + Self.recordStem + "_state"
        try SQLText.validateRelationName(sourceName, what: "source")
        try SQLText.validateRelationName(viewName, what: "materialized view")
        self.sourceName = sourceName
        self.viewName = viewName
        if let table = configuration.upsertTable { try SQLText.validateRelationName(table, what: "table") }
        guard configuration.startupMode == "earliest" || configuration.startupMode == "latest" else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "scan.startup.mode must be 'earliest' or 'latest', not '\(configuration.startupMode)'"
            )
        }
        for key in configuration.kafkaProperties.keys where !Self.allowedKafkaProperties.contains(key) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "RisingWave does not accept the Kafka property '\(key)' (its DDL would fail with \"Unknown fields in the WITH clause\")"
            )
        }
        let reserved: Set = [
            ChangeEventField.operation, ChangeEventField.order, ChangeEventField.timestamp, "kafka_partition",
            "kafka_offset", "kafka_key", "rn", "rw_timestamp",
        ]
        for field in schema.fields where reserved.contains(field.name) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "the record field '\(field.name)' collides with a column DeltaKit adds; rename it"
            )
        }
        try DeltaKitError.check(configuration.historySize, in: 1...100_000, "historySize")
        // A topic Kafka refuses would only fail later, inside RisingWave's CREATE SOURCE (or never, with --dry-run).
        try KafkaTopicName.validate(configuration.topic)
        _ = try SQLText.literal(configuration.topic)
        _ = try SQLText.literal(configuration.bootstrapServers)
        self.configuration = configuration
        self.schema = schema
    }

    // MARK: Column model

    /// The SQL type of a record field.
    public static func sqlType(_ type: RecordSchema.FieldType) -> String {
        switch type {
        case .bool: "BOOLEAN"
        case .int32: "INT"
        case .int64: "BIGINT"
        case .float: "REAL"
        case .double: "DOUBLE PRECISION"
        case .decimal: "DECIMAL"
        case .string, .uuid: "VARCHAR"
        case .timestamp: "TIMESTAMPTZ"
        }
    }

    /// `(name, SQL type)` of every column of an event: the record's fields, then `op`, `event_order`, `ts`.
    public var eventColumns: [(name: String, type: String)] {
        schema.fields.map { ($0.name, Self.sqlType($0.type)) } + [
            (ChangeEventField.operation, "VARCHAR"), (ChangeEventField.order, "BIGINT"),
            (ChangeEventField.timestamp, "TIMESTAMPTZ"),
        ]
    }

    /// The columns of the latest-state view: the record's fields, `event_order` and `ts`.
    public var stateColumns: [String] {
        schema.fields.map(\.name) + [ChangeEventField.order, ChangeEventField.timestamp]
    }

    private func q(_ name: String) -> String { try! SQLText.identifier(name) }
    private func lit(_ text: String) -> String { try! SQLText.literal(text) }

    private var columnList: String {
        eventColumns.map { "  \(q($0.name)) \($0.type)" }.joined(separator: ",\n")
    }

    private var withClause: String {
        var options = [
            "connector = 'kafka'", "topic = \(lit(configuration.topic))",
            "properties.bootstrap.server = \(lit(configuration.bootstrapServers))",
            "scan.startup.mode = \(lit(configuration.startupMode))",
        ]
        for (key, value) in configuration.kafkaProperties.sorted(by: { $0.key < $1.key }) {
            options.append("properties.\(key) = \(lit(value))")
        }
        return "WITH (\n" + options.map { "  " + $0 }.joined(separator: ",\n") + "\n)"
    }

    // MARK: Statements

    /// The Kafka source (`FORMAT PLAIN ENCODE JSON`).
    public var createSourceSQL: String {
        """
        CREATE SOURCE IF NOT EXISTS \(q(sourceName)) (
        \(columnList)
        )
        INCLUDE partition AS kafka_partition
        INCLUDE offset AS kafka_offset
        \(withClause) FORMAT PLAIN ENCODE JSON
        """
    }

    /// The latest-state view's query (also run on plain PostgreSQL by DeltaKit's tests).
    ///
    /// It applies the core's rules exactly: only valid events take part (``validityCondition``), and the
    /// window's ORDER BY is `LatestStateMerge`'s tie rule — highest `event_order`, then a delete, then the later
    /// `ts`, then each value field in declaration order (greater wins, NULL last), then `update` over `insert` —
    /// ending with the Kafka offset so that the order is unique (RisingWave's Top-N needs that).
    public var latestStateQuery: String {
        let columns = stateColumns.map(q).joined(separator: ", ")
        let order =
            [
                "\(q(ChangeEventField.order)) DESC", "(\(q(ChangeEventField.operation)) = 'delete') DESC",
                "\(q(ChangeEventField.timestamp)) DESC",
            ] + schema.valueFields.map { "\(q($0.name)) DESC NULLS LAST" } + [
                "\(q(ChangeEventField.operation)) DESC", "kafka_offset::BIGINT DESC",
            ]
        return """
            SELECT \(columns)
            FROM (
              SELECT *, ROW_NUMBER() OVER (
                PARTITION BY \(q(schema.keyField))
                ORDER BY \(order.joined(separator: ", "))
              ) AS rn
              FROM \(q(sourceName))
              WHERE \(validityCondition)
            ) AS ranked
            WHERE rn = 1 AND \(q(ChangeEventField.operation)) <> 'delete'
            """
    }

    /// The core's validity rule in SQL (see `Documentation/semantics.md`): a known `op`; a key, `event_order` and
    /// `ts`; a delete carries no values; an insert or update has every non-optional field. RisingWave turns a value
    /// it cannot convert into NULL, so a wrongly typed field fails the same test. An invalid event never wins.
    ///
    /// Two rules it cannot apply (a known difference, `Documentation/semantics.md`): a name repeated in the JSON
    /// object — RisingWave's parser keeps both members and reads the first, where DeltaKit's consumers refuse the
    /// message — and a Kafka key that is not the record's, which the source does not read.
    public var validityCondition: String {
        let op = q(ChangeEventField.operation)
        let required = [schema.keyField, ChangeEventField.order, ChangeEventField.timestamp].map {
            "\(q($0)) IS NOT NULL"
        }
        let deleteValues = schema.valueFields.map { "\(q($0.name)) IS NULL" }
        let upsertValues = schema.valueFields.filter { !$0.isOptional }.map { "\(q($0.name)) IS NOT NULL" }
        let delete = (["\(op) = 'delete'"] + deleteValues).joined(separator: " AND ")
        let upsert = (["\(op) IN ('insert', 'update')"] + upsertValues).joined(separator: " AND ")
        return (required + ["((\(delete)) OR (\(upsert)))"]).joined(separator: " AND ")
    }

    /// The latest-state materialized view (Top-N form).
    public var createViewSQL: String {
        "CREATE MATERIALIZED VIEW IF NOT EXISTS \(q(viewName)) AS\n\(latestStateQuery)"
    }

    /// The progress view's query: per Kafka partition, the highest offset and order ingested. Partitions are
    /// ingested independently, so freshness is decided per partition
    /// (``RisingWaveStateStore/waitUntilVisible(_:timeout:pollInterval:)``).
    public var progressQuery: String {
        "SELECT kafka_partition, max(kafka_offset::BIGINT) AS max_offset, max(\(q(ChangeEventField.order))) AS max_order FROM \(q(sourceName)) GROUP BY kafka_partition"
    }

    /// The history view's query: the newest ``Configuration/historySize`` valid events (a streaming Top-N),
    /// consistent with the latest-state view (same validity rule, same snapshot).
    public var historyQuery: String {
        let columns = (eventColumns.map(\.name).map(q) + ["kafka_partition", "kafka_offset"]).joined(separator: ", ")
        return """
            SELECT \(columns)
            FROM \(q(sourceName))
            WHERE \(validityCondition)
            ORDER BY \(historyOrder)
            LIMIT \(configuration.historySize)
            """
    }

    /// Newest first; among equal orders the later Kafka offset first (`::BIGINT`: offsets are text).
    private var historyOrder: String {
        "\(q(ChangeEventField.order)) DESC, kafka_offset::BIGINT DESC, kafka_partition DESC"
    }

    /// The history materialized view.
    public var createHistoryViewSQL: String {
        "CREATE MATERIALIZED VIEW IF NOT EXISTS \(q(historyViewName)) AS\n\(historyQuery)"
    }

    // MARK: Reads (run by RisingWaveStateStore, which holds no SQL of its own)

    /// Every live row ordered by key (the demo's `SELECT * FROM latest_user_state ORDER BY id`).
    public var snapshotQuery: String {
        "SELECT \(stateColumns.map(q).joined(separator: ", ")) FROM \(q(viewName)) ORDER BY \(q(schema.keyField))"
    }

    /// One page of the snapshot in key order: the live rows whose key is above `$1` (the key as text) when
    /// `after`, else from the first. The limit is inlined: RisingWave rejects `LIMIT $1`.
    func snapshotPageQuery(after: Bool, limit: Int) -> String {
        let key = q(schema.keyField)
        let filter = after ? " WHERE \(key) > $1" : ""
        return
            "SELECT \(stateColumns.map(q).joined(separator: ", ")) FROM \(q(viewName))\(filter) ORDER BY \(key) LIMIT \(max(0, limit))"
    }

    /// One key's row; `$1` is the key as text.
    var valueQuery: String {
        "SELECT \(stateColumns.map(q).joined(separator: ", ")) FROM \(q(viewName)) WHERE \(q(schema.keyField)) = $1"
    }

    /// The newest `limit` events of the history view. The limit is inlined: RisingWave rejects `LIMIT $1`.
    func historyReadQuery(limit: Int) -> String {
        let columns = eventColumns.map(\.name).map(q).joined(separator: ", ")
        return "SELECT \(columns) FROM \(q(historyViewName)) ORDER BY \(historyOrder) LIMIT \(max(0, limit))"
    }

    /// The number of live rows.
    var countQuery: String { "SELECT count(*) AS n FROM \(q(viewName))" }

    /// Per-partition progress (`kafka_partition`, `max_offset`, `max_order`).
    var progressReadQuery: String {
        "SELECT kafka_partition, max_offset, max_order FROM \(q(progressViewName))"
    }

    // MARK: Subscription cursors

    /// Where a cursor starts.
    enum CursorStart: Equatable {
        /// `FULL`: a snapshot at the committed epoch, then its changes (snapshot rows have NULL `rw_timestamp`).
        case full
        /// `SINCE t`: the changes from epoch `t` on, `t` included.
        case since(Int64)
    }

    /// `DECLARE … SUBSCRIPTION CURSOR …`. Never without `FULL` or `SINCE`: a cursor declared bare starts at
    /// `Epoch::now()` and skips the changes of the open epoch (risingwave.md §4).
    func declareCursor(_ cursor: String, start: CursorStart) -> String {
        let from = "DECLARE \(q(cursor)) SUBSCRIPTION CURSOR FOR \(q(subscriptionName))"
        switch start {
        case .full: return from + " FULL"
        case .since(let t): return from + " SINCE \(t)"
        }
    }

    /// `FETCH n … WITH (timeout = 'Ns')`; RisingWave truncates the timeout to whole seconds, so at least 1 s.
    func fetchCursor(_ cursor: String, count: Int, timeout: Duration) -> String {
        "FETCH \(max(1, count)) FROM \(q(cursor)) WITH (timeout = '\(timeout.wholeSecondsRoundedUp(minimum: 1))s')"
    }

    /// `CLOSE cursor`.
    func closeCursor(_ cursor: String) -> String { "CLOSE \(q(cursor))" }

    /// The progress materialized view.
    public var createProgressViewSQL: String {
        "CREATE MATERIALIZED VIEW IF NOT EXISTS \(q(progressViewName)) AS\n\(progressQuery)"
    }

    /// The subscription on the latest-state view.
    public var createSubscriptionSQL: String {
        "CREATE SUBSCRIPTION IF NOT EXISTS \(q(subscriptionName)) FROM \(q(viewName)) WITH (retention = \(lit(configuration.subscriptionRetention)))"
    }

    /// The keyed `FORMAT UPSERT` table, when configured.
    public var createUpsertTableSQL: String? {
        guard let table = configuration.upsertTable else { return nil }
        return """
            CREATE TABLE IF NOT EXISTS \(q(table)) (
            \(columnList),
              PRIMARY KEY (kafka_key)
            )
            INCLUDE KEY AS kafka_key
            \(withClause) FORMAT UPSERT ENCODE JSON
            """
    }

    /// Every statement of ``apply(on:)``, in order.
    public var applyStatements: [String] {
        [createSourceSQL, createViewSQL, createHistoryViewSQL, createProgressViewSQL, createSubscriptionSQL]
            + [createUpsertTableSQL].compactMap { $0 }
    }

    /// Every statement of ``teardown(on:)``, in order.
    public var teardownStatements: [String] {
        var statements = [
            "DROP SUBSCRIPTION IF EXISTS \(q(subscriptionName))",
            "DROP MATERIALIZED VIEW IF EXISTS \(q(progressViewName)) CASCADE",
            "DROP MATERIALIZED VIEW IF EXISTS \(q(historyViewName)) CASCADE",
            "DROP MATERIALIZED VIEW IF EXISTS \(q(viewName)) CASCADE",
        ]
        if let table = configuration.upsertTable { statements.append("DROP TABLE IF EXISTS \(q(table)) CASCADE") }
        statements.append("DROP SOURCE IF EXISTS \(q(sourceName)) CASCADE")
        return statements
    }

    /// The whole provisioning script, `;`-terminated (what `UserEvents provision --dry-run` prints).
    public var script: String { applyStatements.map { $0 + ";" }.joined(separator: "\n\n") + "\n" }

    /// Creates every object; idempotent. Each statement runs on its own (DDL is not transactional on RisingWave).
    ///
    /// The topic must exist first: RisingWave refuses `CREATE SOURCE` on a missing topic and never creates one
    /// (create it with `KafkaTopicAdmin.ensureTopic`, as `UserEvents provision` does).
    ///
    /// - Throws: `DeltaKitError` (`rejected`) naming the topic when RisingWave refuses the source, with its
    ///   ``RisingWaveError``; `queryFailed` for any other statement.
    public func apply(on connection: RisingWaveConnection) async throws {
        for statement in applyStatements {
            do {
                try await connection.execute(statement)
            } catch let error as DeltaKitError where statement == createSourceSQL && error.code == .queryFailed {
                throw DeltaKitError(
                    code: .rejected,
                    message:
                        "RisingWave refused to create source '\(sourceName)' for topic '\(configuration.topic)' at \(configuration.bootstrapServers) (as RisingWave reaches it): \((error.underlying as? RisingWaveError)?.message ?? error.message); the topic must exist before the source is created",
                    underlying: error.underlying
                )
            }
        }
    }

    /// Drops every object; idempotent.
    public func teardown(on connection: RisingWaveConnection) async throws {
        for statement in teardownStatements { try await connection.execute(statement) }
    }
}
