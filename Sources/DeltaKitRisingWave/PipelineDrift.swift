import DeltaKit

/// Compares the objects RisingWave already holds under a pipeline's names with the generated definitions.
///
/// `CREATE … IF NOT EXISTS` keeps an existing object whatever its definition, so without this a changed record or
/// configuration would keep the old objects, and reads would later fail ("not in the result") or apply old rules.
/// RisingWave stores a definition as its parser re-prints the statement, so the text is not compared; what is
/// compared is robust to re-printing:
/// - each relation's columns and their types (`information_schema.columns`: RisingWave lists sources and
///   materialized views there, without hidden columns, with PostgreSQL's type names);
/// - a view's definition marker (`PipelineDDL.marked(_:)`), a hash of the generated query kept in a string literal;
/// - the history view's `LIMIT` (`historySize`), the source's topic (`rw_sources.connector_props`) and the
///   subscription's retention (`rw_subscriptions.retention_seconds`).
struct PipelineDrift: Sendable {
    /// One object as the catalog should describe it.
    struct Expected: Sendable {
        /// What the object is, as messages name it.
        let kind: String
        let name: String
        /// `(column, information_schema type)`; empty for a subscription.
        let columns: [(name: String, type: String)]
        /// The definition marker's hash, for views.
        var marker: String?
        /// The view's `LIMIT`, for the history view.
        var limit: Int?
        /// The topic, for the source.
        var topic: String?
        /// The retention in seconds, for the subscription.
        var retentionSeconds: Int64?
    }

    /// What the catalog holds under the pipeline's names.
    struct Catalog: Sendable {
        /// Relation → column → type.
        var columns: [String: [String: String]] = [:]
        /// Materialized view → definition text.
        var definitions: [String: String] = [:]
        /// Source → topic.
        var topics: [String: String] = [:]
        /// Subscription → retention in seconds.
        var retentions: [String: Int64] = [:]
    }

    let expected: [Expected]

    init<Record>(
        names: ObjectNames,
        columns: ColumnModel,
        ddl: PipelineDDL,
        configuration: RisingWavePipeline<Record>.Configuration
    ) {
        func typed(_ list: [(name: String, type: String)]) -> [(name: String, type: String)] {
            list.map { ($0.name, ColumnModel.catalogType($0.type)) }
        }
        let event = typed(columns.eventColumns)
        let state = typed(columns.eventColumns.filter { columns.stateColumns.contains($0.name) })
        let included = [("kafka_partition", "character varying"), ("kafka_offset", "character varying")]
        var list = [
            Expected(
                kind: "source",
                name: names.source,
                columns: event + included + [("kafka_payload", "jsonb")],
                topic: configuration.topic
            ),
            Expected(
                kind: "materialized view",
                name: names.view,
                columns: state,
                marker: PipelineDDL.marker(in: ddl.latestStateQuery)
            ),
            Expected(
                kind: "materialized view",
                name: names.historyView,
                columns: event + included,
                marker: PipelineDDL.marker(in: ddl.historyQuery),
                limit: configuration.historySize
            ),
            Expected(
                kind: "materialized view",
                name: names.progressView,
                columns: [("kafka_partition", "character varying"), ("max_offset", "bigint"), ("max_order", "bigint")]
            ),
            Expected(
                kind: "subscription",
                name: names.subscription,
                columns: [],
                retentionSeconds: configuration.subscriptionRetention.wholeSecondsRoundedUp(minimum: 1)
            ),
        ]
        if let table = names.upsertTable {
            list.append(Expected(kind: "table", name: table, columns: event + [("kafka_key", "bytea")]))
        }
        expected = list
    }

    // MARK: Reading the catalog

    /// The catalog queries, each one statement without parameters (names are validated and quoted as literals).
    func queries() throws -> (columns: String, definitions: String, topics: String, retentions: String) {
        func names(_ kinds: Set<String>) throws -> String {
            try expected.filter { kinds.contains($0.kind) }.map { try SQLText.literal($0.name) }
                .joined(separator: ", ")
        }
        let relations = try names(["source", "materialized view", "table"])
        return (
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name IN (\(relations))",
            "SELECT name, definition FROM rw_catalog.rw_materialized_views WHERE name IN (\(try names(["materialized view"])))",
            "SELECT name, connector_props -> 'topic' ->> 'value' AS topic FROM rw_catalog.rw_sources WHERE name IN (\(try names(["source"])))",
            "SELECT name, retention_seconds FROM rw_catalog.rw_subscriptions WHERE name IN (\(try names(["subscription"])))"
        )
    }

    /// What `connection`'s catalog holds under the pipeline's names.
    func read(on connection: RisingWaveConnection) async throws -> Catalog {
        let sql = try queries()
        var catalog = Catalog()
        for row in try await connection.query(sql.columns) {
            guard let table = row["table_name"], let column = row["column_name"], let type = row["data_type"] else {
                continue
            }
            catalog.columns[table, default: [:]][column] = type
        }
        for row in try await connection.query(sql.definitions) {
            if let name = row["name"], let definition = row["definition"] { catalog.definitions[name] = definition }
        }
        for row in try await connection.query(sql.topics) {
            if let name = row["name"], let topic = row["topic"] { catalog.topics[name] = topic }
        }
        for row in try await connection.query(sql.retentions) {
            if let name = row["name"], let seconds = row["retention_seconds"].flatMap({ Int64($0) }) {
                catalog.retentions[name] = seconds
            }
        }
        return catalog
    }

    // MARK: Comparing

    /// One line per existing object that differs from its generated definition, naming the object and each
    /// difference; empty when every existing object matches (objects that do not exist yet are not differences).
    func differences(in catalog: Catalog) -> [String] {
        var lines: [String] = []
        for object in expected {
            var found: [String] = []
            if object.kind == "subscription" {
                if let seconds = catalog.retentions[object.name], let wanted = object.retentionSeconds,
                    seconds != wanted
                {
                    found.append("retention is \(seconds) s, the configuration's is \(wanted) s")
                }
            } else if let existing = catalog.columns[object.name] {
                found += Self.columnDifferences(existing: existing, expected: object.columns)
                if let wanted = object.topic, let topic = catalog.topics[object.name], topic != wanted {
                    found.append("reads topic '\(topic)', the configuration's is '\(wanted)'")
                }
                let definition = catalog.definitions[object.name]
                if let wanted = object.limit, let limit = definition.flatMap(Self.limit(in:)), limit != wanted {
                    found.append("keeps \(limit) events (LIMIT \(limit)), historySize is \(wanted)")
                }
                if let wanted = object.marker, let definition,
                    PipelineDDL.marker(in: definition) != wanted
                {
                    found.append(
                        "its query is not the generated one (another record declaration, configuration or DeltaKit version: validity rule, tie order or columns)"
                    )
                }
            }
            if !found.isEmpty { lines.append("\(object.kind) \"\(object.name)\": " + found.joined(separator: "; ")) }
        }
        return lines
    }

    /// The error for `differences`.
    static func error(_ differences: [String]) -> DeltaKitError {
        DeltaKitError(
            code: .invalidConfiguration,
            message:
                "RisingWave holds objects under this pipeline's names that differ from the generated definitions (CREATE … IF NOT EXISTS would keep them):\n"
                + differences.map { "  - " + $0 }.joined(separator: "\n")
                + "\nRun `provision --replace` (RisingWavePipeline.apply(on:replace: true)) to drop and recreate them: the views are rebuilt from the events the topic still retains."
        )
    }

    private static func columnDifferences(existing: [String: String], expected: [(name: String, type: String)])
        -> [String]
    {
        var found: [String] = []
        for (name, type) in expected {
            switch existing[name] {
            case nil: found.append("column \"\(name)\" (\(type)) is missing")
            case let actual? where actual != type: found.append("column \"\(name)\" is \(actual), generated \(type)")
            default: break
            }
        }
        let wanted = Set(expected.map(\.name))
        // RisingWave's own columns (`_row_id`, `_rw_kafka_timestamp`) are hidden and not listed; skip them anyway.
        for name in existing.keys.sorted() where !wanted.contains(name) && !name.hasPrefix("_rw") && name != "_row_id" {
            found.append("column \"\(name)\" is not generated")
        }
        return found
    }

    /// The last `LIMIT n` of a definition (RisingWave prints ` LIMIT n`; PostgreSQL too).
    static func limit(in definition: String) -> Int? {
        guard let range = definition.ranges(of: "LIMIT ").last else { return nil }
        return Int(definition[range.upperBound...].prefix { $0.isNumber && $0.isASCII })
    }
}
