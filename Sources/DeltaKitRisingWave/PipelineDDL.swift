import DeltaKit

/// The statements that create and drop a pipeline's objects, generated once from the validated configuration
/// and the record's columns. Every name is quoted and every literal escaped here (``SQLText``), so nothing from
/// configuration reaches SQL unchecked; a name or value that cannot be quoted fails the pipeline's initializer.
struct PipelineDDL: Sendable {
    /// The Kafka source (`FORMAT PLAIN ENCODE JSON`).
    let createSource: String
    /// The latest-state view's query (also run on plain PostgreSQL by DeltaKit's tests).
    ///
    /// It applies the core's rules exactly: only valid events take part (``validityCondition``), and the
    /// window's ORDER BY is `LatestStateMerge`'s tie rule — highest `event_order`, then a delete, then the later
    /// `ts`, then each value field in declaration order (greater wins, NULL last), then `update` over `insert` —
    /// ending with the Kafka offset so that the order is unique (RisingWave's Top-N needs that).
    let latestStateQuery: String
    /// The latest-state materialized view (Top-N form).
    let createView: String
    /// The history view's query: the newest `historySize` valid events (a streaming Top-N), consistent with the
    /// latest-state view (same validity rule, same snapshot).
    let historyQuery: String
    /// The history materialized view.
    let createHistoryView: String
    /// The progress view's query: per Kafka partition, the highest offset and order ingested. Partitions are
    /// ingested independently, so freshness is decided per partition (`RisingWaveStateStore.waitUntilVisible`).
    let progressQuery: String
    /// The progress materialized view.
    let createProgressView: String
    /// The subscription on the latest-state view.
    let createSubscription: String
    /// The keyed `FORMAT UPSERT` table, when configured.
    let createUpsertTable: String?
    /// Every statement of `RisingWavePipeline.teardown(on:)`, in order: dependents first.
    let teardown: [String]

    /// Every statement of `RisingWavePipeline.apply(on:replace:)`, in order: each object after those it reads.
    var apply: [String] {
        [createSource, createView, createHistoryView, createProgressView, createSubscription]
            + [createUpsertTable].compactMap { $0 }
    }

    /// The whole provisioning script, `;`-terminated.
    var script: String { apply.map { $0 + ";" }.joined(separator: "\n\n") + "\n" }

    /// - Throws: `DeltaKitError` (`invalidConfiguration`) when a name or a literal cannot be quoted.
    init<Record>(
        names: ObjectNames,
        columns: ColumnModel,
        configuration: RisingWavePipeline<Record>.Configuration
    ) throws {
        let source = try SQLText.identifier(names.source)
        let view = try SQLText.identifier(names.view)
        let historyView = try SQLText.identifier(names.historyView)
        let progressView = try SQLText.identifier(names.progressView)
        let subscription = try SQLText.identifier(names.subscription)
        let columnDefinitions = try columns.eventColumns.map { column in
            "  \(try SQLText.identifier(column.name)) \(column.type)"
        }.joined(separator: ",\n")
        let withClause = try Self.withClause(configuration)
        let validity = try Self.validityCondition(columns.schema)

        createSource = """
            CREATE SOURCE IF NOT EXISTS \(source) (
            \(columnDefinitions)
            )
            INCLUDE partition AS kafka_partition
            INCLUDE offset AS kafka_offset
            INCLUDE payload AS kafka_payload
            \(withClause) FORMAT PLAIN ENCODE JSON
            """
        latestStateQuery = Self.marked(try Self.latestStateQuery(columns, source: source, validity: validity))
        createView = "CREATE MATERIALIZED VIEW IF NOT EXISTS \(view) AS\n\(latestStateQuery)"
        historyQuery = Self.marked(
            """
            SELECT \(try SQLText.identifiers(columns.eventColumns.map(\.name))), kafka_partition, kafka_offset
            FROM \(source)
            WHERE \(validity) AND \(Self.markerPlaceholder)
            ORDER BY \(try ColumnModel.historyOrder())
            LIMIT \(configuration.historySize)
            """
        )
        createHistoryView = "CREATE MATERIALIZED VIEW IF NOT EXISTS \(historyView) AS\n\(historyQuery)"
        progressQuery =
            "SELECT kafka_partition, max(kafka_offset::BIGINT) AS max_offset, max(\(try SQLText.identifier(ChangeEventField.order))) AS max_order FROM \(source) GROUP BY kafka_partition"
        createProgressView = "CREATE MATERIALIZED VIEW IF NOT EXISTS \(progressView) AS\n\(progressQuery)"
        createSubscription =
            "CREATE SUBSCRIPTION IF NOT EXISTS \(subscription) FROM \(view) WITH (retention = \(try SQLText.literal(configuration.retentionInterval)))"
        var teardown = [
            "DROP SUBSCRIPTION IF EXISTS \(subscription)",
            "DROP MATERIALIZED VIEW IF EXISTS \(progressView) CASCADE",
            "DROP MATERIALIZED VIEW IF EXISTS \(historyView) CASCADE",
            "DROP MATERIALIZED VIEW IF EXISTS \(view) CASCADE",
        ]
        if let upsertTable = names.upsertTable {
            let table = try SQLText.identifier(upsertTable)
            createUpsertTable = """
                CREATE TABLE IF NOT EXISTS \(table) (
                \(columnDefinitions),
                  PRIMARY KEY (kafka_key)
                )
                INCLUDE KEY AS kafka_key
                \(withClause) FORMAT UPSERT ENCODE JSON
                """
            teardown.append("DROP TABLE IF EXISTS \(table) CASCADE")
        } else {
            createUpsertTable = nil
        }
        teardown.append("DROP SOURCE IF EXISTS \(source) CASCADE")
        self.teardown = teardown
    }

    /// The Kafka connector's `WITH` clause, shared by the source and the upsert table.
    private static func withClause<Record>(_ configuration: RisingWavePipeline<Record>.Configuration) throws -> String {
        var options = [
            "connector = 'kafka'", "topic = \(try SQLText.literal(configuration.topic))",
            "properties.bootstrap.server = \(try SQLText.literal(configuration.bootstrapServers))",
            "scan.startup.mode = \(try SQLText.literal(configuration.startupMode.rawValue))",
        ]
        for (key, value) in configuration.sortedKafkaProperties {
            options.append(
                "properties.\(key) = \(try SQLText.literal(value, secretValueOf: "the Kafka property '\(key)'"))"
            )
        }
        return "WITH (\n" + options.map { "  " + $0 }.joined(separator: ",\n") + "\n)"
    }

    private static func latestStateQuery(_ columns: ColumnModel, source: String, validity: String) throws -> String {
        let order = try SQLText.identifier(ChangeEventField.order)
        let operation = try SQLText.identifier(ChangeEventField.operation)
        let timestamp = try SQLText.identifier(ChangeEventField.timestamp)
        let valueOrder = try columns.schema.valueFields.map { "\(try SQLText.identifier($0.name)) DESC NULLS LAST" }
        let windowOrder =
            ["\(order) DESC", "(\(operation) = 'delete') DESC", "\(timestamp) DESC"] + valueOrder
            + ["\(operation) DESC", "kafka_offset::BIGINT DESC"]
        // The inner query names its columns: the Top-N keeps what it outputs per key, and the payload (read only
        // by the validity condition) must not be part of that state.
        let stateColumns = try SQLText.identifiers(columns.stateColumns)
        return """
            SELECT \(stateColumns)
            FROM (
              SELECT \(stateColumns), \(operation), ROW_NUMBER() OVER (
                PARTITION BY \(try SQLText.identifier(columns.schema.keyField))
                ORDER BY \(windowOrder.joined(separator: ", "))
              ) AS rn
              FROM \(source)
              WHERE \(validity) AND \(markerPlaceholder)
            ) AS ranked
            WHERE rn = 1 AND \(operation) <> 'delete'
            """
    }

    // MARK: Definition marker

    /// Where ``marked(_:)`` puts a view's definition marker.
    private static let markerPlaceholder = "'deltakit-definition:?' IS NOT NULL"

    /// `query` with its definition marker: a string literal naming a hash of the query, in a condition that is
    /// always true. RisingWave's catalog keeps a view's definition as its parser re-prints the statement
    /// (`definition` in `rw_catalog.rw_materialized_views`, from `normalize_sql` in
    /// `src/frontend/src/handler/mod.rs`), so the generated text cannot be compared with it, but a string literal
    /// survives re-printing verbatim: provisioning compares the marker (``PipelineDrift``) to find a view built by
    /// another record declaration, configuration or DeltaKit version.
    static func marked(_ query: String) -> String {
        query.replacing(markerPlaceholder, with: "'\(markerPrefix)\(fingerprint(query))' IS NOT NULL")
    }

    /// The text before a definition marker's hash.
    static let markerPrefix = "deltakit-definition:"

    /// The definition marker in a view's definition text (RisingWave's catalog or PostgreSQL's), if any.
    static func marker(in definition: String) -> String? {
        guard let start = definition.firstRange(of: markerPrefix) else { return nil }
        let hash = definition[start.upperBound...].prefix { $0.isHexDigit }
        return hash.count == 16 ? String(hash) : nil
    }

    /// The marker's hash of `text`: 64-bit FNV-1a, as 16 hex digits (stable across platforms and runs).
    static func fingerprint(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The core's validity rule in SQL (see `Documentation/semantics.md`): a known `op`; a key, `event_order` and
    /// `ts`; a delete carries no values; an insert or update has every non-optional field; and every field, read
    /// from the message itself (``jsonShape(_:_:)``), is absent or `null` or of its JSON type. An invalid event
    /// never wins.
    ///
    /// Two rules it cannot apply (a known difference, `Documentation/semantics.md`): a name repeated in the JSON
    /// object — RisingWave's parser keeps both members and reads the first, where DeltaKit's consumers refuse the
    /// message — and a Kafka key that is not the record's, which the source does not read.
    static func validityCondition(_ schema: RecordSchema) throws -> String {
        let op = try SQLText.identifier(ChangeEventField.operation)
        let required = try [schema.keyField, ChangeEventField.order, ChangeEventField.timestamp].map {
            "\(try SQLText.identifier($0)) IS NOT NULL"
        }
        let deleteValues = try schema.valueFields.map { "\(try SQLText.identifier($0.name)) IS NULL" }
        let upsertValues = try schema.valueFields.filter { !$0.isOptional }.map {
            "\(try SQLText.identifier($0.name)) IS NOT NULL"
        }
        let delete = (["\(op) = 'delete'"] + deleteValues).joined(separator: " AND ")
        let upsert = (["\(op) IN ('insert', 'update')"] + upsertValues).joined(separator: " AND ")
        let shapes =
            try schema.fields.map { try jsonShape($0.name, $0.type) } + [
                try jsonShape(ChangeEventField.operation, .string), try jsonShape(ChangeEventField.order, .int64),
                try jsonShape(ChangeEventField.timestamp, .timestamp),
            ]
        return (required + ["((\(delete)) OR (\(upsert)))"] + shapes).joined(separator: " AND ")
    }

    /// The condition that field `name`'s value in the message (`INCLUDE payload`, JSONB) is what the core reads
    /// as a value of `type`, and that the column holds it: absent or `null` and the column NULL, or of the
    /// field's JSON type and the column not NULL.
    ///
    /// RisingWave's JSON parser is more lenient than the core (`src/connector/src/parser/unified/json.rs`, default
    /// options): it reads a numeric string into a number column, writes a number or boolean into a VARCHAR
    /// column as text, reads an integer `ts` as epoch time, matches names case-insensitively and NULLs a value
    /// it cannot convert. The payload's `->` matches the exact name, and `jsonb_typeof` (RisingWave and
    /// PostgreSQL alike) gives the JSON type, so each of these events fails here as it fails in the core.
    static func jsonShape(_ name: String, _ type: RecordSchema.FieldType) throws -> String {
        let column = try SQLText.identifier(name)
        let key = try SQLText.literal(name)
        let present = "\(column) IS NOT NULL"
        let whenType: String
        switch type {
        case .bool: whenType = "WHEN 'boolean' THEN \(present)"
        case .int32, .int64, .float, .double: whenType = "WHEN 'number' THEN \(present)"
        case .string, .timestamp: whenType = "WHEN 'string' THEN \(present)"
        case .decimal:
            // Both forms the core reads; a string only when it is exactly a JSON number (RisingWave would also
            // read 'NaN', 'inf' or scientific text with other spellings).
            whenType =
                "WHEN 'number' THEN \(present) WHEN 'string' THEN \(present) AND kafka_payload ->> \(key) ~ '\(jsonNumberPattern)'"
        case .uuid:
            whenType =
                "WHEN 'string' THEN \(present) AND kafka_payload ->> \(key) ~ '\(uuidPattern)'"
        }
        return
            "CASE COALESCE(jsonb_typeof(kafka_payload -> \(key)), 'null') WHEN 'null' THEN \(column) IS NULL \(whenType) ELSE FALSE END"
    }

    /// JSON's number grammar (`ScalarType.isJSONNumber` in the core), without backslashes (string literals here
    /// never hold one): the text a decimal's JSON string may have.
    static let jsonNumberPattern = "^-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][+-]?[0-9]+)?$"

    /// A UUID's text as `UUID(uuidString:)` reads it: 8-4-4-4-12 hexadecimal digits, either case.
    static let uuidPattern =
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
}
