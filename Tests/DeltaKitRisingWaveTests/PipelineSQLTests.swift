import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

@Suite("RisingWave pipeline SQL")
struct PipelineSQLTests {
    @Test("the demo's provisioning script is pinned")
    func golden() throws {
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(
                topic: "user-events",
                bootstrapServers: "redpanda:29092",
                sourceName: "user_events",
                viewName: "latest_user_state"
            )
        )
        let expected = """
            CREATE SOURCE IF NOT EXISTS "user_events" (
              "id" BIGINT,
              "name" VARCHAR,
              "age" BIGINT,
              "op" VARCHAR,
              "event_order" BIGINT,
              "ts" TIMESTAMPTZ
            )
            INCLUDE partition AS kafka_partition
            INCLUDE offset AS kafka_offset
            INCLUDE payload AS kafka_payload
            WITH (
              connector = 'kafka',
              topic = 'user-events',
              properties.bootstrap.server = 'redpanda:29092',
              scan.startup.mode = 'earliest'
            ) FORMAT PLAIN ENCODE JSON;

            CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_user_state" AS
            SELECT "id", "name", "age", "event_order", "ts"
            FROM (
              SELECT "id", "name", "age", "event_order", "ts", "op", ROW_NUMBER() OVER (
                PARTITION BY "id"
                ORDER BY "event_order" DESC, ("op" = 'delete') DESC, "ts" DESC, "name" DESC NULLS LAST, "age" DESC NULLS LAST, "op" DESC, kafka_offset::BIGINT DESC
              ) AS rn
              FROM "user_events"
              WHERE "id" IS NOT NULL AND "event_order" IS NOT NULL AND "ts" IS NOT NULL AND (("op" = 'delete' AND "name" IS NULL AND "age" IS NULL) OR ("op" IN ('insert', 'update') AND "name" IS NOT NULL AND "age" IS NOT NULL)) AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'id'), 'null') WHEN 'null' THEN "id" IS NULL WHEN 'number' THEN "id" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'name'), 'null') WHEN 'null' THEN "name" IS NULL WHEN 'string' THEN "name" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'age'), 'null') WHEN 'null' THEN "age" IS NULL WHEN 'number' THEN "age" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'op'), 'null') WHEN 'null' THEN "op" IS NULL WHEN 'string' THEN "op" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'event_order'), 'null') WHEN 'null' THEN "event_order" IS NULL WHEN 'number' THEN "event_order" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'ts'), 'null') WHEN 'null' THEN "ts" IS NULL WHEN 'string' THEN "ts" IS NOT NULL ELSE FALSE END AND 'deltakit-definition:c5042654afbcc42a' IS NOT NULL
            ) AS ranked
            WHERE rn = 1 AND "op" <> 'delete';

            CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_user_state_history" AS
            SELECT "id", "name", "age", "op", "event_order", "ts", kafka_partition, kafka_offset
            FROM "user_events"
            WHERE "id" IS NOT NULL AND "event_order" IS NOT NULL AND "ts" IS NOT NULL AND (("op" = 'delete' AND "name" IS NULL AND "age" IS NULL) OR ("op" IN ('insert', 'update') AND "name" IS NOT NULL AND "age" IS NOT NULL)) AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'id'), 'null') WHEN 'null' THEN "id" IS NULL WHEN 'number' THEN "id" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'name'), 'null') WHEN 'null' THEN "name" IS NULL WHEN 'string' THEN "name" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'age'), 'null') WHEN 'null' THEN "age" IS NULL WHEN 'number' THEN "age" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'op'), 'null') WHEN 'null' THEN "op" IS NULL WHEN 'string' THEN "op" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'event_order'), 'null') WHEN 'null' THEN "event_order" IS NULL WHEN 'number' THEN "event_order" IS NOT NULL ELSE FALSE END AND CASE COALESCE(jsonb_typeof(kafka_payload -> 'ts'), 'null') WHEN 'null' THEN "ts" IS NULL WHEN 'string' THEN "ts" IS NOT NULL ELSE FALSE END AND 'deltakit-definition:626bf71c875ce221' IS NOT NULL
            ORDER BY "event_order" DESC, kafka_offset::BIGINT DESC, kafka_partition DESC
            LIMIT 1000;

            CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_user_state_progress" AS
            SELECT kafka_partition, max(kafka_offset::BIGINT) AS max_offset, max("event_order") AS max_order FROM "user_events" GROUP BY kafka_partition;

            CREATE SUBSCRIPTION IF NOT EXISTS "latest_user_state_changes" FROM "latest_user_state" WITH (retention = '1D');

            """
        #expect(pipeline.script == expected)
    }

    @Test("teardown is idempotent and cascades")
    func teardown() throws {
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(
                topic: "user-events",
                sourceName: "user_events",
                viewName: "latest_user_state",
                upsertTable: "user_state_upsert"
            )
        )
        #expect(
            pipeline.teardownStatements == [
                #"DROP SUBSCRIPTION IF EXISTS "latest_user_state_changes""#,
                #"DROP MATERIALIZED VIEW IF EXISTS "latest_user_state_progress" CASCADE"#,
                #"DROP MATERIALIZED VIEW IF EXISTS "latest_user_state_history" CASCADE"#,
                #"DROP MATERIALIZED VIEW IF EXISTS "latest_user_state" CASCADE"#,
                #"DROP TABLE IF EXISTS "user_state_upsert" CASCADE"#,
                #"DROP SOURCE IF EXISTS "user_events" CASCADE"#,
            ]
        )
        let upsert = try #require(pipeline.ddl.createUpsertTable)
        #expect(upsert.contains("PRIMARY KEY (kafka_key)"))
        #expect(upsert.contains("INCLUDE KEY AS kafka_key"))
        #expect(upsert.hasSuffix("FORMAT UPSERT ENCODE JSON"))
    }

    @Test(
        "a topic Kafka refuses is refused when the pipeline is configured, naming the rule",
        arguments: ["", ".", "..", "a b", "a/b", "a'b", "tópico", "a:b", String(repeating: "t", count: 250)]
    )
    func topicNamesKafkaRefuses(topic: String) {
        #expect {
            try RisingWavePipeline<DemoUser>(configuration: .init(topic: topic))
        } throws: { error in
            guard let error = error as? DeltaKitError, error.code == .invalidConfiguration else { return false }
            return error.message.contains("invalid Kafka topic name")
                && error.message.contains("1–249 letters, digits, '.', '_' or '-'")
        }
    }

    @Test("every topic Kafka accepts is accepted")
    func topicNamesKafkaAccepts() throws {
        for topic in ["a.b", "a-b", "a_b", "A_B", "...", "t", String(repeating: "t", count: 249)] {
            _ = try RisingWavePipeline<DemoUser>(configuration: .init(topic: topic))
        }
    }

    @Test(
        "names are validated: no injection through a source, view or table name",
        arguments: [
            "user_events; DROP TABLE x", "Users", "1abc", "", "a\"b", String(repeating: "a", count: 64),
        ]
    )
    func badNames(name: String) {
        #expect(throws: DeltaKitError.self) {
            try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", sourceName: name))
        }
        #expect(throws: DeltaKitError.self) {
            try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", viewName: name))
        }
        #expect(throws: DeltaKitError.self) {
            try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", upsertTable: name))
        }
    }

    @Test("literals are escaped: a quote in a server cannot end the string; a topic with a quote is refused")
    func literals() throws {
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(topic: "a.b", bootstrapServers: "h:1'); DROP SOURCE x; --")
        )
        #expect(pipeline.ddl.createSource.contains("topic = 'a.b'"))
        #expect(pipeline.ddl.createSource.contains("'h:1''); DROP SOURCE x; --'"))
        // Kafka's topic rule leaves no quote to escape (the literal stays escaped all the same).
        #expect(throws: DeltaKitError.self) { try RisingWavePipeline<DemoUser>(configuration: .init(topic: "a'b")) }
        #expect(throws: DeltaKitError.self) { try RisingWavePipeline<DemoUser>(configuration: .init(topic: "a\\'b")) }
    }

    @Test("only Kafka properties RisingWave accepts are allowed")
    func properties() throws {
        let ok = try RisingWavePipeline<DemoUser>(
            configuration: .init(topic: "t", kafkaProperties: ["security.protocol": "SASL_SSL"])
        )
        #expect(ok.ddl.createSource.contains("properties.security.protocol = 'SASL_SSL'"))
        let error = #expect(throws: DeltaKitError.self) {
            try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", kafkaProperties: ["linger.ms": "5"]))
        }
        #expect(error?.message.contains("linger.ms") == true)
    }

    @Test("column types follow the record declaration")
    func columnTypes() throws {
        struct Reading: ChangeRecord {
            static let keyField = "sensor"
            var sensor: String
            var value: Double
            var ok: Bool
            var at: Date
            var note: String?
            var key: String { sensor }
        }
        let pipeline = try RisingWavePipeline<Reading>(configuration: .init(topic: "readings"))
        // Names follow the record type when not given: no library default is the demo's.
        #expect(pipeline.sourceName == "reading_events")
        #expect(pipeline.viewName == "latest_reading_state")
        struct OrderLine: ChangeRecord {
            static let keyField = "id"
            var id: Int
            var key: Int { id }
        }
        let lines = try RisingWavePipeline<OrderLine>(configuration: .init(topic: "lines"))
        #expect(lines.sourceName == "order_line_events")
        #expect(lines.subscriptionName == "latest_order_line_state_changes")
        #expect(
            pipeline.columns.eventColumns.map { "\($0.name) \($0.type)" } == [
                "sensor VARCHAR", "value DOUBLE PRECISION", "ok BOOLEAN", "at TIMESTAMPTZ", "note VARCHAR",
                "op VARCHAR",
                "event_order BIGINT", "ts TIMESTAMPTZ",
            ]
        )
        struct Clash: ChangeRecord {
            static let keyField = "id"
            var id: Int
            var op: String
            var key: Int { id }
        }
        #expect(throws: DeltaKitError.self) { try RisingWavePipeline<Clash>(configuration: .init(topic: "c")) }
    }

    @Test("a Kafka property value that cannot be a SQL literal is refused, naming the property but not the value")
    func unquotablePropertyValue() {
        // A backslash or NUL would need an escape string; the DDL never reaches RisingWave with one. The value may
        // be a password, so the error does not show it.
        for value in [#"S3cr3t\Pw"#, "S3cr3t\u{0}Pw"] {
            #expect {
                try RisingWavePipeline<DemoUser>(
                    configuration: .init(topic: "t", kafkaProperties: ["sasl.password": value])
                )
            } throws: { error in
                guard let error = error as? DeltaKitError else { return false }
                return error.code == .invalidConfiguration && error.message.contains("'sasl.password'")
                    && !"\(error)".contains("S3cr3t")
            }
        }
    }

    @Test("the startup mode is written as scan.startup.mode")
    func startupMode() throws {
        for mode in RisingWavePipeline<DemoUser>.StartupMode.allCases {
            let pipeline = try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", startupMode: mode))
            #expect(pipeline.ddl.createSource.contains("scan.startup.mode = '\(mode.rawValue)'"))
            #expect(pipeline.ddl.createUpsertTable == nil)
        }
    }

    @Test(
        "the subscription retention is written as RisingWave's interval text: whole days as D, else whole seconds",
        arguments: [
            (Duration.seconds(86_400), "1D"), (.seconds(3 * 86_400), "3D"), (.seconds(3_600), "3600s"),
            (.seconds(1), "1s"), (.milliseconds(1_500), "2s"), (.seconds(86_401), "86401s"),
        ]
    )
    func retention(retention: Duration, text: String) throws {
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(topic: "t", viewName: "v", subscriptionRetention: retention)
        )
        #expect(
            pipeline.ddl.createSubscription
                == #"CREATE SUBSCRIPTION IF NOT EXISTS "v_changes" FROM "v" WITH (retention = '\#(text)')"#
        )
    }

    @Test("a subscription retention under a second is refused, naming the setting")
    func retentionBounds() {
        for retention in [Duration.zero, .milliseconds(-1), .seconds(-86_400)] {
            #expect {
                try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", subscriptionRetention: retention))
            } throws: { error in
                guard let error = error as? DeltaKitError else { return false }
                return error.code == .invalidConfiguration && error.message.contains("subscriptionRetention")
            }
        }
    }
}
