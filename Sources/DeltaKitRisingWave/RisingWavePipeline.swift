public import DeltaKit

/// The RisingWave objects that turn a Kafka topic of change events into the latest state per key,
/// generated from the record declaration (`RecordSchema`) — the record is never described twice.
///
/// For the demo's `User` with the default configuration it generates:
/// - `user_events`: a Kafka source with the record's columns plus `op`, `event_order`, `ts` (TIMESTAMPTZ, matching
///   the `+00:00` timestamps the core writes), the partition and offset, `FORMAT PLAIN ENCODE JSON`;
/// - `latest_user_state`: a materialized view in the Top-N form — per key, the row with the highest
///   `event_order` (on a tie a delete wins, then the later Kafka offset), dropped when it is a delete. On the
///   append-only source RisingWave keeps one row per key this way, where a self-join on `MAX(event_order)` would
///   keep every event as state;
/// - `latest_user_state_history`: the newest valid events (``Configuration/historySize``), for
///   ``RisingWaveStateStore/history(limit:)``;
/// - `latest_user_state_progress`: a row per Kafka partition with the highest offset and `event_order` ingested,
///   for ``RisingWaveStateStore/waitUntilVisible(_:timeout:pollInterval:)``;
/// - `latest_user_state_changes`: a subscription on the view, for ``RisingWaveStateStore/changes(from:)``;
/// - optionally a keyed `FORMAT UPSERT` table (``Configuration/upsertTable``).
///
/// ``apply(on:replace:)`` and ``teardown(on:)`` are idempotent (`IF NOT EXISTS`, `DROP … IF EXISTS … CASCADE`);
/// `apply` refuses objects that exist with another definition (another record declaration or configuration)
/// unless told to replace them.
/// Names are validated and quoted, literals escaped: no SQL injection through a topic or relation name.
public struct RisingWavePipeline<Record: ChangeRecord>: Sendable {
    /// The configuration.
    public let configuration: Configuration
    /// The objects' names.
    let names: ObjectNames
    /// The objects' columns.
    let columns: ColumnModel
    /// The statements that create and drop the objects.
    let ddl: PipelineDDL
    /// The statements the store and its change feeds run on the objects.
    let queries: PipelineQueries
    /// What RisingWave's catalog must hold for objects that already exist.
    let drift: PipelineDrift

    /// The source's name: ``Configuration/sourceName``, or `<record>_events` derived from the record type.
    public var sourceName: String { names.source }
    /// The latest-state view's name: ``Configuration/viewName``, or `latest_<record>_state`.
    public var viewName: String { names.view }
    /// The progress view's name: ``viewName`` + `_progress`.
    public var progressViewName: String { names.progressView }
    /// The subscription's name: ``viewName`` + `_changes`.
    public var subscriptionName: String { names.subscription }
    /// The history view's name: ``viewName`` + `_history`.
    public var historyViewName: String { names.historyView }

    /// The record type's name in snake case (`OrderLine` → `order_line`), the stem of derived names.
    static var recordStem: String { RecordSchema.snakeCaseName(of: Record.self) }

    /// Validates the configuration against the record's schema.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the bad
    ///   name, property or field — also a topic name Kafka refuses (1–249 letters, digits, `.`, `_`, `-`; not `.`
    ///   or `..`).
    public init(configuration: Configuration) throws {
        let names = ObjectNames(
            source: configuration.sourceName ?? Self.recordStem + "_events",
            view: configuration.viewName ?? "latest_" + Self.recordStem + "_state",
            upsertTable: configuration.upsertTable
        )
        try SQLText.validateRelationName(names.source, what: "source")
        try SQLText.validateRelationName(names.view, what: "materialized view")
        try configuration.validate()
        let columns = try ColumnModel(schema: Record.schema)
        self.configuration = configuration
        self.names = names
        self.columns = columns
        self.ddl = try PipelineDDL(names: names, columns: columns, configuration: configuration)
        self.queries = try PipelineQueries(names: names, columns: columns)
        self.drift = PipelineDrift(names: names, columns: columns, ddl: ddl, configuration: configuration)
    }

    /// The whole provisioning script, `;`-terminated: what ``apply(on:replace:)`` runs, for review or for running it
    /// with other tools (`UserEvents provision --dry-run` prints it).
    public var script: String { ddl.script }

    /// Every statement of ``teardown(on:)``, in order (`UserEvents provision --teardown --dry-run` prints them).
    package var teardownStatements: [String] { ddl.teardown }

    /// Creates every object; idempotent. Each statement runs on its own (DDL is not transactional on RisingWave).
    ///
    /// Objects that already exist are first compared with the generated definitions — their columns and types,
    /// the views' queries, the history's size, the source's topic and the subscription's retention — because
    /// `CREATE … IF NOT EXISTS` would keep an object whatever its definition, and reads would then fail or apply
    /// old rules. With `replace`, every object is dropped first (``teardown(on:)``, dependents first) and created
    /// again: the views are rebuilt from the events the topic still retains.
    ///
    /// The topic must exist first: RisingWave refuses `CREATE SOURCE` on a missing topic and never creates one
    /// (create it with `KafkaTopicAdmin.ensureTopic`, as `UserEvents provision` does).
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming each existing object that differs and what
    ///   differs, when `replace` is `false`; (`rejected`) naming the topic when RisingWave refuses the source, with
    ///   its ``RisingWaveError``; `queryFailed` for any other statement.
    public func apply(on connection: RisingWaveConnection, replace: Bool = false) async throws {
        if replace {
            try await teardown(on: connection)
        } else {
            let differences = drift.differences(in: try await drift.read(on: connection))
            guard differences.isEmpty else { throw PipelineDrift.error(differences) }
        }
        for statement in ddl.apply {
            do {
                try await connection.execute(statement)
            } catch let error as DeltaKitError where statement == ddl.createSource && error.code == .queryFailed {
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
        for statement in ddl.teardown { try await connection.execute(statement) }
    }
}

/// The names of a pipeline's objects: the source's and the view's, and those derived from the view's.
struct ObjectNames: Sendable {
    /// The Kafka source.
    let source: String
    /// The latest-state materialized view.
    let view: String
    /// The keyed `FORMAT UPSERT` table, when configured.
    let upsertTable: String?
    /// The progress view.
    var progressView: String { view + "_progress" }
    /// The subscription on the latest-state view.
    var subscription: String { view + "_changes" }
    /// The history view.
    var historyView: String { view + "_history" }
}
