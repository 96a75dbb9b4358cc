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

            CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_user_state_history" AS
            SELECT "id", "name", "age", "op", "event_order", "ts", kafka_partition, kafka_offset
            FROM "user_events"
            WHERE "id" IS NOT NULL AND "event_order" IS NOT NULL AND "ts" IS NOT NULL AND (("op" = 'delete' AND "name" IS NULL AND "age" IS NULL) OR ("op" IN ('insert', 'update') AND "name" IS NOT NULL AND "age" IS NOT NULL))
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
        let upsert = try #require(pipeline.createUpsertTableSQL)
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
        #expect(pipeline.createSourceSQL.contains("topic = 'a.b'"))
        #expect(pipeline.createSourceSQL.contains("'h:1''); DROP SOURCE x; --'"))
        // Kafka's topic rule leaves no quote to escape (the literal stays escaped all the same).
        #expect(throws: DeltaKitError.self) { try RisingWavePipeline<DemoUser>(configuration: .init(topic: "a'b")) }
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
    @Test("everything between the scheme and the last @ is redacted, the user name too")
    func userInformationIsRedactedWhole() {
        // The user name goes too: a mistyped URL can put the password where the user name goes
        // (`postgres:` + `//S3cr3t@host`), which Fuzz/Redaction once had to leave out of its oracle.
        for url in ["postgres://alice@h:4566/dev", "postgresql://alice@h/dev", "POSTGRES://alice@h/dev"] {
            #expect(!RisingWaveConnection.Configuration(url: url).redactedURL.contains("alice"), "\(url)")
        }
        #expect(ConnectionSecrets.redact("postgres://alice:pw@h/dev") == "postgres://***@h/dev")
        #expect(
            ConnectionSecrets.redactURL("postgres://root@localhost:4566/dev") == "postgres://***@localhost:4566/dev"
        )
        #expect(
            ConnectionSecrets.redactURL("postgres://localhost:4566/dev?sslmode=require")
                == "postgres://localhost:4566/dev?sslmode=require"
        )
    }

    @Test("the six URL shapes that printed passwords: space, no host, ?passwd=, ?password=, several @")
    func issue17Shapes() {
        let shapes: [(url: String, redacted: String)] = [
            ("postgres://root:S3cr3t Pw@host/dev", "postgres://***@host/dev"),
            ("postgres://root:S3cr3tPw", "postgres://***"),
            ("postgres://root@host/dev?passwd=S3cr3tPw", "postgres://***@host/dev?passwd=***"),
            ("postgres://root@host/dev?password=S3cr3tPw", "postgres://***@host/dev?password=***"),
            ("postgres://root:S3cr3t@Pw@host", "postgres://***@host"),
            ("root:S3cr3t@Pw@host", "root:***"),
        ]
        for (url, redacted) in shapes {
            #expect(ConnectionSecrets.redactURL(url) == redacted, "\(url)")
            // libpq's messages for these: the fragments it quotes are scrubbed.
            let secrets = ConnectionSecrets.secrets(in: url)
            for message in [
                #"invalid integer value "S3cr3tPw" for connection option "port""#,
                #"could not translate host name "Pw@host" to address"#,
                #"password authentication failed for user "root""#,
            ] {
                let shown = ConnectionSecrets.scrub(message, secrets: secrets)
                #expect(!shown.contains("S3cr3t") && !shown.contains("Pw@"), "\(url): \(shown)")
            }
        }
    }

    @Test("a libpq error carried or logged by the connection (reconnect warnings too) is scrubbed of the password")
    func libpqErrorsAreScrubbed() {
        let configuration = RisingWaveConnection.Configuration(url: "postgres://root:S3cr3t@Pw9q@127.0.0.1:1/dev")
        let raw = RisingWaveError(
            sqlState: nil,
            message: #"could not translate host name "Pw9q@127.0.0.1" to address"#,
            detail: "port S3cr3t",
            hint: #"user "root:S3cr3t""#,
            isConnectionError: true
        )
        let scrubbed = RisingWaveConnection.scrubbed(raw, configuration)
        for text in ["\(scrubbed)", scrubbed.message, scrubbed.detail ?? "", scrubbed.hint ?? ""] {
            #expect(!text.contains("S3cr3t") && !text.contains("Pw9q"), "\(text)")
        }
        let error = RisingWaveConnection.connectionError(configuration, raw)
        #expect(!"\(error)".contains("S3cr3t") && !"\(error)".contains("Pw9q"), "\(error)")
        #expect("\(error)".contains("127.0.0.1"), "the host stays visible: \(error)")
    }

    /// Secret texts every mistyped shape of ``mistypedURLsNeverLeak(url:)`` hides somewhere.
    static let secretMarkers = ["S3cr3t", "Pw9q"]

    @Test(
        "no mistyped URL shape prints its password: the configuration, libpq's parse error or libpq's connect error",
        arguments: [
            // Spaces, tabs and quotes in the password.
            "postgres://root:S3cr3t Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t  Pw9q more@127.0.0.1:1/dev",
            "postgres://root:S3cr3t\tPw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t\"Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t'Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t Pw9q@127.0.0.1:1/dev?sslmode=disable",
            // No host, or no @.
            "postgres://root:S3cr3tPw9q", "postgres://root:S3cr3t Pw9q", "postgres://root:S3cr3tPw9q/dev",
            "postgres://root:S3cr3tPw9q@/dev?host=/nonexistent-deltakit", "postgres://root:S3cr3tPw9q@:Pw9q/dev",
            // Several @, and other URL punctuation in the password.
            "postgres://root:S3cr3t@Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t@Pw9q@127.0.0.1:1",
            "postgres://root:S3cr3tPw9q@@127.0.0.1:1/dev", "postgres://root:S3cr3t/Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t?Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t#Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t:Pw9q@127.0.0.1:1/dev", "postgres://root:[S3cr3tPw9q]@127.0.0.1:1/dev",
            "postgres://root:S3cr3t,Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3tPw9q@127.0.0.1:1/dev@",
            // Percent-encoding, valid and not.
            "postgres://root:S3cr3t%zzPw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t%20Pw9q@127.0.0.1:1/dev",
            "postgresql://root%3AS3cr3tPw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t%Pw9q@127.0.0.1:1/dev",
            // The password where the user name goes.
            "postgres://S3cr3tPw9q@127.0.0.1:1/dev", "postgres://:S3cr3tPw9q@127.0.0.1:1/dev",
            "postgres://S3cr3tPw9q:@127.0.0.1:1/dev",
            // Password parameters in the query.
            "postgres://root@127.0.0.1:1/dev?passwd=S3cr3tPw9q", "postgres://root@127.0.0.1:1/dev?password=S3cr3tPw9q",
            "postgres://root@127.0.0.1:1/dev?PASSWORD=S3cr3tPw9q", "postgres://root@127.0.0.1:1/dev?pwd=S3cr3tPw9q",
            "postgres://root@127.0.0.1:1/dev?pass=S3cr3tPw9q", "postgres://root@127.0.0.1:1/dev?sslpassword=S3cr3tPw9q",
            "postgres://root@127.0.0.1:1/dev?application_name=x&password=S3cr3t Pw9q",
            "postgres://root@127.0.0.1:1/dev?password=S3cr3t&Pw9q",
            "postgres:///dev?user=root&password=S3cr3tPw9q&host=127.0.0.1&port=1",
            // Mistyped schemes (refused before libpq) and extra words after the URL.
            "postgres//root:S3cr3tPw9q@127.0.0.1:1/dev", "postgres:/root:S3cr3tPw9q@127.0.0.1:1/dev",
            "postgresql+psycopg://root:S3cr3tPw9q@127.0.0.1:1/dev", "root:S3cr3tPw9q@127.0.0.1:1/dev",
            "POSTGRES://root:S3cr3tPw9q@127.0.0.1:1/dev", " postgres://root:S3cr3tPw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3tPw9q@127.0.0.1:1/dev sslmode=disable",
            "postgres://root:S3cr3tPw9q@127.0.0.1,127.0.0.1:1/dev", "postgres://root:S3cr3tPw9q@[::1]:1/dev",
            // libpq's key=value form.
            "host=127.0.0.1 port=1 password=S3cr3tPw9q user=x", "host=127.0.0.1 port=1 password='S3cr3t Pw9q' user=x",
            "host=127.0.0.1 port=1 password=S3cr3t Pw9q user=x", "host=127.0.0.1 port=1 password='S3cr3t Pw9q",
            "host=127.0.0.1 port=1 password = S3cr3tPw9q", "host=127.0.0.1 port=1 PASSWORD=S3cr3tPw9q",
            "host=127.0.0.1 port=1 passwd=S3cr3tPw9q", "host=127.0.0.1 port=1 password S3cr3tPw9q",
            "host=127.0.0.1 port=1 sslpassword=S3cr3tPw9q", "host=127.0.0.1 port=1 password=S3cr3t\\'Pw9q",
        ]
    )
    func mistypedURLsNeverLeak(url: String) async throws {
        let configuration = RisingWaveConnection.Configuration(url: url, connectTimeout: .seconds(1))
        var shown = [configuration.redactedURL, configuration.description]
        do {
            _ = try await RisingWaveConnection(configuration: configuration)
            Issue.record("connecting to \(configuration.redactedURL) must fail (port 1 is closed)")
        } catch let error as DeltaKitError {
            shown += ["\(error)", error.message, String(reflecting: error)]
            if let underlying = error.underlying { shown += ["\(underlying)", String(reflecting: underlying)] }
        }
        for text in shown {
            for secret in Self.secretMarkers {
                #expect(!text.contains(secret), "\(url) → \(text)")
            }
        }
    }

    @Test(
        "a password never appears in a message, whatever the URL's shape",
        arguments: [
            "postgres//user:SECRET@host/db", "postgresql+psycopg://user:SECRET@host/db", "mysql://user:SECRET@host/db",
            "postgres:/user:SECRET@host/db", "user:SECRET@host", "postgres://user:SEC@RET@host/db",
            "host=h password=SECRET user=u", "host=h password='SECRET' user=u", "postgres://:SECRET@h/db",
            // Fuzz/Redaction's findings:
            "postgres://u:SEC//RET@h/db", "qh:/SECRET@", "postgresql+x:/SECRET@h",
            "po8\u{0}\u{0}t:pwSECRET://@ralhost:4566/dev",
            "u:\u{34E}SECRET@h", "host= password='\u{365}SECRET' user=u", "host=h password='ab'SECRET user=u",
        ]
    )
    func passwordsNeverLeak(url: String) async throws {
        let configuration = RisingWaveConnection.Configuration(url: url, connectTimeout: .seconds(1))
        #expect(!configuration.redactedURL.contains("SECRET") && !configuration.redactedURL.contains("SEC@RET"))
        #expect(!configuration.description.contains("SECRET"))
        var message = ""
        do {
            _ = try await RisingWaveConnection(configuration: configuration)
        } catch {
            message = "\(error)"
        }
        #expect(!message.isEmpty, "connecting must fail")
        #expect(!message.contains("SECRET") && !message.contains("RET@"), "\(message)")
        if url.contains("//"), !url.lowercased().hasPrefix("postgres://") {
            #expect(message.contains("must start with postgres:// or postgresql://"), "\(message)")
        }
    }

    @Test("an empty URL is refused instead of silently using the local socket")
    func emptyURL() async {
        await #expect {
            _ = try await RisingWaveConnection(configuration: .init(url: "  "))
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration && "\(error)".contains("url is empty")
        }
    }

    @Test("a bad row that still reaches a read names its key and its column")
    func badRowNamesKey() {
        let row = SQLRow(columns: ["id", "name", "age", "event_order", "ts"], values: ["7", "Al", "old", "3", nil])
        #expect {
            _ = try RisingWaveStateStore<DemoUser>.record(from: row)
        } throws: { error in
            guard let error = error as? RisingWaveDecodingError else { return false }
            return error.key == "7" && error.column == "age" && "\(error)".hasPrefix("row with key 7: column 'age'")
        }
    }

    @Test(
        "key text goes through the scalar table both ways: a Date-keyed delete row decodes, an escaped key is sent raw"
    )
    func keyText() throws {
        // Before: a delete row's key was re-wrapped as a JSON fragment for JSONDecoder, which reads a Date as a
        // number, so every Date-keyed delete failed; and a string-enum key was sent with its JSON escapes.
        let row = SQLRow(
            columns: ["at", "value", "event_order", "ts", "op"],
            values: ["2024-05-01 12:30:45.123456+00", nil, "3", "2024-05-01 12:30:46+00", "delete"]
        )
        let event = try RisingWaveStateStore<Reading>.event(from: row)
        #expect(event.key == Date(timeIntervalSince1970: 1_714_566_645.123456))
        #expect(event.operation == .delete && event.order == 3)
        #expect(try RisingWaveStateStore<Regional>.keyText(.quoted) == "q\"u\\o\nte")
        #expect(try RisingWaveStateStore<Regional>.keyText(.plain) == "plain")
        #expect(try RisingWaveStateStore<DemoUser>.keyText(-7) == "-7")
        let deleteRow = SQLRow(
            columns: ["region", "event_order", "ts", "op"],
            values: ["q\"u\\o\nte", "1", "2024-05-01 12:30:46+00", "delete"]
        )
        #expect(try RisingWaveStateStore<Regional>.event(from: deleteRow).key == .quoted)
    }

    @Test("credentials are redacted")
    func redaction() {
        typealias C = RisingWaveConnection.Configuration
        #expect(C(url: "postgres://root:s3cret@db:4566/dev").redactedURL == "postgres://***@db:4566/dev")
        #expect(C(url: "postgres://db:4566/dev").redactedURL == "postgres://db:4566/dev")
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

    func cursorRow(_ op: String, epoch: Int64?, id: Int = 1, age: Int = 25) -> SQLRow {
        SQLRow(
            columns: ["id", "name", "age", "event_order", "ts", "op", "rw_timestamp"],
            values: ["\(id)", "Alice", "\(age)", "3", "2024-01-01 00:00:00+00", op, epoch.map(String.init)]
        )
    }

    @Test("subscription rows map to state changes; the first half of an update is dropped but counted")
    func cursorRows() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .snapshot)
        #expect(cursor.declare() == .full)
        let elements = try cursor.receive([
            cursorRow("Insert", epoch: nil, id: 7),
            cursorRow("Insert", epoch: 100),
            cursorRow("UpdateDelete", epoch: 100),
            cursorRow("UpdateInsert", epoch: 100, age: 26),
            cursorRow("Delete", epoch: 200, age: 26),
        ])
        #expect(elements.map(\.change.kind) == [.insert, .insert, .update, .delete])
        #expect(elements.map(\.isSnapshot) == [true, false, false, false])
        #expect(elements.map(\.position?.description) == [nil, "100:1", "100:3", "200:1"])
        #expect(
            elements[3].change == StateChange(kind: .delete, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26))
        )
    }

    @Test("a start from now skips the FULL snapshot; a bare DECLARE is never sent")
    func cursorFromNow() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .now)
        #expect(cursor.declare() == .full)
        let elements = try cursor.receive([cursorRow("Insert", epoch: nil, id: 7), cursorRow("Insert", epoch: 5)])
        #expect(elements.map(\.change.key) == [1])
        let pipeline = try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", viewName: "v"))
        #expect(pipeline.declareCursor("c", start: .full) == #"DECLARE "c" SUBSCRIPTION CURSOR FOR "v_changes" FULL"#)
        // SINCE is inclusive: resuming at t re-reads epoch t (the skip count removes what was delivered), never t+1.
        #expect(
            pipeline.declareCursor("c", start: .since(1_715_669_376_304))
                == #"DECLARE "c" SUBSCRIPTION CURSOR FOR "v_changes" SINCE 1715669376304"#
        )
        #expect(pipeline.fetchCursor("c", count: 100, timeout: .milliseconds(500)).hasSuffix("WITH (timeout = '1s')"))
    }

    @Test("resuming after a position re-reads its epoch and skips exactly what was delivered")
    func cursorResume() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .after(ChangeFeedPosition("100:2")))
        try cursor.checkStart()
        #expect(cursor.declare() == .since(100))
        let elements = try cursor.receive([
            cursorRow("Insert", epoch: 100, id: 1),
            cursorRow("Insert", epoch: 100, id: 2),
            cursorRow("Insert", epoch: 100, id: 3),
            cursorRow("Insert", epoch: 101, id: 4),
        ])
        #expect(elements.map(\.change.key) == [3, 4])
        #expect(elements.map(\.position?.description) == ["100:3", "101:1"])
        #expect(throws: DeltaKitError.self) {
            try SubscriptionCursor<DemoUser>(start: .after(ChangeFeedPosition("inmemory:3"))).checkStart()
        }
    }

    @Test("a lost session resumes from the last row received; during a snapshot it cannot")
    func cursorSessionLost() throws {
        let lost = DeltaKitError(code: .connectionFailed, message: "gone")
        var cursor = SubscriptionCursor<DemoUser>(start: .snapshot)
        _ = cursor.declare()
        _ = try cursor.receive([cursorRow("Insert", epoch: nil, id: 7)])
        #expect {
            try cursor.sessionLost(lost)
        } throws: { error in
            (error as? DeltaKitError)?.code == .changesUnavailable
        }
        _ = try cursor.receive([cursorRow("Insert", epoch: 300, id: 1), cursorRow("Insert", epoch: 300, id: 2)])
        try cursor.sessionLost(lost)
        #expect(cursor.declare() == .since(300))
        let again = try cursor.receive([
            cursorRow("Insert", epoch: 300, id: 1), cursorRow("Insert", epoch: 300, id: 2),
            cursorRow("Delete", epoch: 301, id: 2),
        ])
        #expect(again.map(\.change.kind) == [.delete])
        // A fresh "now" feed that lost its session before any change declares FULL again.
        var fresh = SubscriptionCursor<DemoUser>(start: .now)
        _ = fresh.declare()
        try fresh.sessionLost(lost)
        #expect(fresh.declare() == .full)
    }
}

/// A record keyed by a timestamp.
struct Reading: ChangeRecord {
    static let keyField = "at"
    var at: Date
    var value: Double?
    var key: Date { at }
}

/// A record keyed by a string enum whose raw value needs JSON escapes.
struct Regional: ChangeRecord {
    enum Region: String, Codable, CaseIterable, Comparable, Sendable {
        case plain, quoted = "q\"u\\o\nte"
        static func < (lhs: Region, rhs: Region) -> Bool { lhs.rawValue < rhs.rawValue }
    }
    static let keyField = "region"
    var region: Region
    var key: Region { region }
}
