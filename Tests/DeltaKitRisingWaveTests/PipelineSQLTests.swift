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
            WITH (
              connector = 'kafka',
              topic = 'user-events',
              properties.bootstrap.server = 'redpanda:29092',
              scan.startup.mode = 'earliest'
            ) FORMAT PLAIN ENCODE JSON;

            CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_user_state" AS
            SELECT "id", "name", "age", "event_order", "ts"
            FROM (
              SELECT *, ROW_NUMBER() OVER (
                PARTITION BY "id"
                ORDER BY "event_order" DESC, ("op" = 'delete') DESC, "ts" DESC, "name" DESC NULLS LAST, "age" DESC NULLS LAST, "op" DESC, kafka_offset::BIGINT DESC
              ) AS rn
              FROM "user_events"
              WHERE "id" IS NOT NULL AND "event_order" IS NOT NULL AND "ts" IS NOT NULL AND (("op" = 'delete' AND "name" IS NULL AND "age" IS NULL) OR ("op" IN ('insert', 'update') AND "name" IS NOT NULL AND "age" IS NOT NULL))
            ) AS ranked
            WHERE rn = 1 AND "op" <> 'delete';

            CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_user_state_progress" AS
            SELECT max("event_order") AS max_order FROM "user_events";

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
                #"DROP MATERIALIZED VIEW IF EXISTS "latest_user_state" CASCADE"#,
                #"DROP TABLE IF EXISTS "user_state_upsert" CASCADE"#,
                #"DROP SOURCE IF EXISTS "user_events" CASCADE"#,
            ]
        )
        let upsert = try #require(pipeline.createUpsertTableSQL)
        #expect(upsert.contains("PRIMARY KEY (kafka_key)"))
        #expect(upsert.contains("INCLUDE KEY AS kafka_key"))
        #expect(upsert.hasSuffix("FORMAT UPSERT ENCODE JSON"))
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

    @Test("literals are escaped: a quote in a topic or server cannot end the string")
    func literals() throws {
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(topic: "a'b", bootstrapServers: "h:1'); DROP SOURCE x; --")
        )
        #expect(pipeline.createSourceSQL.contains("topic = 'a''b'"))
        #expect(pipeline.createSourceSQL.contains("'h:1''); DROP SOURCE x; --'"))
        #expect(throws: DeltaKitError.self) { try RisingWavePipeline<DemoUser>(configuration: .init(topic: "a\\'b")) }
    }

    @Test("only Kafka properties RisingWave accepts are allowed")
    func properties() throws {
        let ok = try RisingWavePipeline<DemoUser>(
            configuration: .init(topic: "t", kafkaProperties: ["security.protocol": "SASL_SSL"])
        )
        #expect(ok.createSourceSQL.contains("properties.security.protocol = 'SASL_SSL'"))
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
            pipeline.eventColumns.map { "\($0.name) \($0.type)" } == [
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
}

@Suite("RisingWave connection and decoding (no server)")
struct ConnectionUnitTests {
    @Test("credentials are redacted")
    func redaction() {
        typealias C = RisingWaveConnection.Configuration
        #expect(C(url: "postgres://root:s3cret@db:4566/dev").redactedURL == "postgres://root:***@db:4566/dev")
        #expect(C(url: "postgres://root@db:4566/dev").redactedURL == "postgres://root@db:4566/dev")
        #expect(C(url: "host=db password=s3cret user=x").redactedURL == "host=db password=*** user=x")
        #expect(!"\(C(url: "postgres://u:s3cret@h/d"))".contains("s3cret"))
    }

    @Test("text values decode into Swift types; a mismatch names the column and value")
    func decoding() throws {
        let row = SQLRow(
            columns: ["id", "name", "age", "ts", "flag", "score"],
            values: ["7", "Zoë 🚀", nil, "2024-05-01 12:30:45.123456+00", "t", "2.5"]
        )
        #expect(try row.decode("id", as: Int.self) == 7)
        #expect(try row.decode("name", as: String.self) == "Zoë 🚀")
        #expect(try row.decodeIfPresent("age", as: Int.self) == nil)
        #expect(try row.decode("ts", as: Date.self) == Date(timeIntervalSince1970: 1_714_566_645.123456))
        #expect(try row.decode("flag", as: Bool.self))
        #expect(try row.decode("score", as: Double.self) == 2.5)
        let error = #expect(throws: RisingWaveDecodingError.self) { try row.decode("name", as: Int.self) }
        #expect(error?.description == "column 'name' value 'Zoë 🚀' cannot be parsed; expected Int")
        #expect(throws: RisingWaveDecodingError.self) { try row.decode("age", as: Int.self) }
        let record = SQLRow(columns: ["id", "name", "age"], values: ["1", "Alice", "x"])
        let recordError = #expect(throws: RisingWaveDecodingError.self) {
            try DemoUser(from: SQLRowDecoder(row: record))
        }
        #expect(recordError?.column == "age" && recordError?.value == "x")
    }

    @Test("subscription rows map to state changes; the first half of an update is dropped")
    func cursorRows() throws {
        typealias It = RisingWaveChangeSequence<DemoUser>.Iterator
        func row(_ op: String) -> SQLRow {
            SQLRow(
                columns: ["id", "name", "age", "event_order", "ts", "op", "rw_timestamp"],
                values: ["1", "Alice", "25", "3", "2024-01-01 00:00:00+00", op, "1715669376304"]
            )
        }
        #expect(try It.change(from: row("Insert"))?.change.kind == .insert)
        #expect(try It.change(from: row("UpdateInsert"))?.change.kind == .update)
        #expect(
            try It.change(from: row("Delete"))?.change
                == StateChange(kind: .delete, key: 1, record: DemoUser(id: 1, name: "Alice", age: 25))
        )
        #expect(try It.change(from: row("UpdateDelete")) == nil)
        #expect(try It.change(from: row("Insert"))?.timestamp == 1_715_669_376_304)
        #expect(
            try It.declareSQL(cursor: "c", subscription: "s", since: 1_715_669_376_304)
                == #"DECLARE "c" SUBSCRIPTION CURSOR FOR "s" SINCE 1715669376305"#
        )
    }
}
