import DeltaKit
import DeltaKitTesting
import Foundation

@testable import DeltaKitRisingWave

/// RisingWave cannot run here, so the generated view's exact SELECT runs on real PostgreSQL: a table shaped
/// like the Kafka source (same columns, `kafka_partition`/`kafka_offset` as VARCHAR, the message as JSONB in
/// `kafka_payload`) and plain views built from the pipeline's latest-state, progress and history queries
/// (`PipelineDDL`). The parts of RisingWave's catalog that provisioning reads (`rw_catalog`) are emulated too.
struct PostgresEmulation {
    let connection: RisingWaveConnection
    let pipeline: RisingWavePipeline<DemoUser>
    /// Whether the view has an emulated subscription (``subscribed(_:retention:cancellableFetch:)``): then every load
    /// ends with a checkpoint, as the next barrier would commit what was ingested.
    var checkpoints = false
    /// The next offset per partition (the key modulo 4, as a stand-in for Kafka's partitioner).
    private(set) var nextOffsets: [Int32: Int64] = [:]
    /// For raw messages, which carry no key this emulation trusts: partition 0.
    private var nextOffset: Int64 {
        get { nextOffsets[0] ?? 0 }
        set { nextOffsets[0] = newValue }
    }

    /// An emulation with fresh, unique object names.
    static func make(_ url: String) async throws -> PostgresEmulation {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        return try await make(
            url,
            configuration: .init(topic: "user-events", sourceName: "ev_\(suffix)", viewName: "st_\(suffix)")
        )
    }

    /// A database of its own (so the default names `user_events` / `latest_user_state` can be used); returns its URL.
    static func freshDatabase(_ url: String) async throws -> String {
        let name = "db_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await RisingWaveConnection(configuration: .init(url: url))
        try await admin.execute("CREATE DATABASE \(name)")
        let base = url[..<url.lastIndex(of: "/")!]
        return "\(base)/\(name)"
    }

    static func make(_ url: String, configuration: RisingWavePipeline<DemoUser>.Configuration) async throws
        -> PostgresEmulation
    {
        let pipeline = try RisingWavePipeline<DemoUser>(configuration: configuration)
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        try await Self.createObjects(of: pipeline, on: connection)
        return PostgresEmulation(connection: connection, pipeline: pipeline)
    }

    /// The stand-ins for `pipeline`'s source and views, and their rows in the emulated catalog.
    static func createObjects<Record>(of pipeline: RisingWavePipeline<Record>, on connection: RisingWaveConnection)
        async throws
    {
        let columns =
            pipeline.columns.eventColumns.map { "\"\($0.name)\" \($0.type)" } + [
                "kafka_partition VARCHAR", "kafka_offset VARCHAR", "kafka_payload JSONB",
            ]
        try await connection.execute(
            "CREATE TABLE \"\(pipeline.sourceName)\" (\(columns.joined(separator: ", ")))"
        )
        try await connection.execute(
            "CREATE VIEW \"\(pipeline.viewName)\" AS \(pipeline.ddl.latestStateQuery)"
        )
        try await connection.execute(
            "CREATE VIEW \"\(pipeline.progressViewName)\" AS \(pipeline.ddl.progressQuery)"
        )
        try await connection.execute(
            "CREATE VIEW \"\(pipeline.historyViewName)\" AS \(pipeline.ddl.historyQuery)"
        )
        try await emulateCatalog(on: connection)
        _ = try await connection.query(
            "INSERT INTO rw_catalog.rw_sources VALUES ($1, jsonb_build_object('topic', jsonb_build_object('type', 'plaintext', 'value', $2::text)))",
            [pipeline.sourceName, pipeline.configuration.topic]
        )
        _ = try await connection.query(
            "INSERT INTO rw_catalog.rw_subscriptions VALUES ($1, $2)",
            [pipeline.subscriptionName, pipeline.configuration.subscriptionRetention.components.seconds]
        )
    }

    /// The catalog relations provisioning reads (`PipelineDrift`), with the columns it reads: materialized views
    /// are PostgreSQL's views (whose definition PostgreSQL re-prints, as RisingWave does), sources and
    /// subscriptions rows that ``createObjects(of:on:)`` adds. Created once per database; concurrent tests wait
    /// for each other on an advisory lock.
    static func emulateCatalog(on connection: RisingWaveConnection) async throws {
        try await connection.execute(
            """
            DO $$ BEGIN
              PERFORM pg_advisory_xact_lock(2020);
              CREATE SCHEMA IF NOT EXISTS rw_catalog;
              CREATE TABLE IF NOT EXISTS rw_catalog.rw_sources (name VARCHAR, connector_props JSONB);
              CREATE TABLE IF NOT EXISTS rw_catalog.rw_subscriptions (name VARCHAR, retention_seconds BIGINT);
              CREATE OR REPLACE VIEW rw_catalog.rw_materialized_views AS
                SELECT viewname::VARCHAR AS name, definition::VARCHAR AS definition FROM pg_views
                WHERE schemaname = current_schema();
            END $$
            """
        )
    }

    var store: RisingWaveStateStore<DemoUser> { RisingWaveStateStore(connection: connection, pipeline: pipeline) }

    /// Inserts raw messages as RisingWave's `FORMAT PLAIN ENCODE JSON` parser would, with its default, lenient
    /// JSON access (`src/connector/src/parser/unified/json.rs`): a message that is not a JSON object is skipped;
    /// a name is matched exactly, else case-insensitively; a BIGINT column takes an integer or a numeric string;
    /// a VARCHAR column takes a string, or a number's or boolean's text; a TIMESTAMPTZ takes an RFC 3339 string
    /// or an integer (epoch ms or µs); a value that does not convert becomes NULL. The message itself goes into
    /// `kafka_payload`, where the view checks each field's JSON type.
    mutating func loadWire(_ messages: [[UInt8]]) async throws {
        for message in messages {
            guard let object = try? JSONSerialization.jsonObject(with: Data(message)) as? [String: Any] else {
                continue
            }
            func field(_ name: String) -> Any? {
                object[name] ?? object.first { $0.key.lowercased() == name.lowercased() }?.value
            }
            // A JSON `true` or `false` is an NSNumber of type "c"; a fraction or exponent one of type "d".
            // (`is Bool` holds for the numbers 0 and 1 too in swift-corelibs-foundation.)
            func kind(_ number: NSNumber) -> Character { Character(String(cString: number.objCType)) }
            func integer(_ name: String) -> Int? {
                switch field(name) {
                case let number as NSNumber where kind(number) != "c" && kind(number) != "d": number.intValue
                case let text as String: Int(text)
                default: nil
                }
            }
            func text(_ name: String) -> String? {
                switch field(name) {
                case let text as String: text
                case let number as NSNumber where kind(number) == "c": number.boolValue ? "true" : "false"
                case let number as NSNumber: "\(number)"
                default: nil
                }
            }
            let ts: Date? =
                switch field("ts") {
                case let text as String: EventTimestamp.parse(text)
                case let number as NSNumber where kind(number) != "c" && kind(number) != "d":
                    // RisingWave guesses the unit from the size; either way a date.
                    Date(timeIntervalSince1970: number.doubleValue / (number.doubleValue > 1e14 ? 1e6 : 1e3))
                default: nil
                }
            let parameters: [(any SQLEncodable)?] = [
                integer("id"), text("name"), integer("age"), text("op"), integer("event_order"),
                ts, "0", String(nextOffset), String(decoding: message, as: UTF8.self),
            ]
            nextOffset += 1
            _ = try await connection.query(
                "INSERT INTO \"\(pipeline.sourceName)\" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
                parameters
            )
        }
    }

    /// Inserts events as the Kafka source would see them: partition = key modulo 4, offsets counting up per
    /// partition in arrival order. Returns the receipt a sink would have returned.
    @discardableResult
    mutating func load(_ events: [ChangeEvent<DemoUser>]) async throws -> EventReceipt {
        var receipt = EventReceipt()
        let table = pipeline.sourceName
        for chunk in stride(from: 0, to: events.count, by: 500) {
            var sql = "INSERT INTO \"\(table)\" VALUES "
            var parameters: [(any SQLEncodable)?] = []
            var tuples: [String] = []
            for event in events[chunk..<min(chunk + 500, events.count)] {
                let base = parameters.count
                tuples.append("(" + (1...8).map { "$\(base + $0)" }.joined(separator: ", ") + ", $\(base + 9)::jsonb)")
                let partition = Int32(abs(event.key) % 4)
                let offset = nextOffsets[partition] ?? 0
                nextOffsets[partition] = offset + 1
                receipt.record(partition: partition, offset: offset)
                parameters +=
                    [
                        event.key, event.record?.name, event.record?.age, event.operation.rawValue, event.order,
                        event.timestamp, String(partition), String(offset),
                        String(decoding: try event.jsonData(), as: UTF8.self),
                    ] as [(any SQLEncodable)?]
            }
            sql += tuples.joined(separator: ", ")
            _ = try await connection.query(sql, parameters)
        }
        if checkpoints { try await checkpoint() }
        return receipt
    }
}

/// Any record's pipeline on PostgreSQL, fed from the wire: each column is read from the message as
/// `(kafka_payload ->> 'field')::TYPE`. A decimal arrives as a JSON string, so its NUMERIC is exact, as
/// RisingWave's DECIMAL is from a string (up to its 28 significant digits).
struct PayloadEmulation<Record: ChangeRecord> {
    let connection: RisingWaveConnection
    let pipeline: RisingWavePipeline<Record>
    private var nextOffset: Int64 = 0

    static func make(_ url: String) async throws -> PayloadEmulation {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let pipeline = try RisingWavePipeline<Record>(
            configuration: .init(topic: "t", sourceName: "ev_\(suffix)", viewName: "st_\(suffix)")
        )
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        try await PostgresEmulation.createObjects(of: pipeline, on: connection)
        return PayloadEmulation(connection: connection, pipeline: pipeline)
    }

    private init(connection: RisingWaveConnection, pipeline: RisingWavePipeline<Record>) {
        self.connection = connection
        self.pipeline = pipeline
    }

    var store: RisingWaveStateStore<Record> { RisingWaveStateStore(connection: connection, pipeline: pipeline) }

    /// Inserts each event's wire JSON, in order, on partition 0.
    mutating func load(_ events: [ChangeEvent<Record>]) async throws {
        let columns = pipeline.columns.eventColumns.map { "(p ->> '\($0.name)')::\($0.type)" }
        for event in events {
            _ = try await connection.query(
                "INSERT INTO \"\(pipeline.sourceName)\" SELECT \(columns.joined(separator: ", ")), '0', $2, p FROM (SELECT $1::jsonb AS p) AS message",
                [String(decoding: try event.jsonData(), as: UTF8.self), String(nextOffset)]
            )
            nextOffset += 1
        }
    }
}
