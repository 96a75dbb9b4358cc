import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

/// Every SQL string DeltaKit can send, checked against RisingWave's restrictions. PostgreSQL accepts all of
/// them, so this is what stands between a stand-in test and a statement RisingWave refuses.
@Suite("RisingWave SQL restrictions")
struct SQLRulesTests {
    static func everyStatement() throws -> [(String, extended: Bool)] {
        var statements: [(String, extended: Bool)] = []
        for configuration: RisingWavePipeline<ScalarSample>.Configuration in [
            .init(topic: "t"), .init(topic: "t", upsertTable: "upserted", historySize: 5),
        ] {
            let pipeline = try RisingWavePipeline<ScalarSample>(configuration: configuration)
            let queries = pipeline.queries
            statements += pipeline.ddl.apply.map { ($0, false) }
            statements += pipeline.teardownStatements.map { ($0, false) }
            statements.append((pipeline.script, false))
            statements += [
                (queries.snapshot, true), (queries.value, true), (queries.history(limit: 20), true),
                (queries.snapshotPage(after: true, limit: 100), true),
                (queries.snapshotPage(after: false, limit: 100), true),
                (queries.history(limit: 0), true), (queries.count, true), (queries.progress, true),
                (try queries.declareCursor("c", start: .full), false),
                (try queries.declareCursor("c", start: .since(1)), false),
                (try queries.fetchCursor("c", count: 500, timeout: .milliseconds(300)), true),
                (queries.committedEpoch, true),
            ]
            let catalog = try pipeline.drift.queries()
            statements += [catalog.columns, catalog.definitions, catalog.topics, catalog.retentions].map { ($0, true) }
        }
        return statements
    }

    @Test("no statement DeltaKit sends breaks a RisingWave restriction")
    func everyStatementPasses() throws {
        let statements = try Self.everyStatement()
        #expect(statements.count > 30)
        for (sql, extended) in statements {
            let problems = RisingWaveSQLRules.violations(sql, extended: extended)
            #expect(problems.isEmpty, "\(problems) in:\n\(sql)")
        }
    }

    @Test(
        "the rules catch each restriction",
        arguments: [
            ("SELECT * FROM e ORDER BY event_order DESC LIMIT $1", "LIMIT takes a parameter"),
            ("SELECT * FROM e LIMIT 5 OFFSET $2", "OFFSET takes a parameter"),
            (#"DECLARE "c" SUBSCRIPTION CURSOR FOR "s""#, "without FULL or SINCE"),
            ("FETCH 10 FROM c WITH (timeout = '500ms')", "whole seconds"),
            (
                "CREATE SOURCE IF NOT EXISTS s (ts TIMESTAMP) WITH (connector = 'kafka') FORMAT PLAIN ENCODE JSON",
                "TIMESTAMPTZ"
            ),
            ("SELECT 1; SELECT 2", "2 statements"),
            ("BEGIN", "plain BEGIN"),
            ("CREATE MATERIALIZED VIEW v AS SELECT 1", "IF NOT EXISTS"),
            ("DROP SOURCE s", "IF EXISTS"),
            (
                "CREATE MATERIALIZED VIEW IF NOT EXISTS v AS SELECT id, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY o DESC) AS rn FROM e) t WHERE rn = 1",
                "must not output rn"
            ),
        ]
    )
    func catches(sql: String, expected: String) {
        let problems = RisingWaveSQLRules.violations(sql, extended: true)
        #expect(problems.contains { $0.contains(expected) }, "\(problems)")
    }

    @Test("the generated source and views read every column as the core does: decimals as strings, types checked")
    func jsonSourceRules() throws {
        for configuration: RisingWavePipeline<ScalarSample>.Configuration in [
            .init(topic: "t"), .init(topic: "t", upsertTable: "upserted", historySize: 5),
        ] {
            let pipeline = try RisingWavePipeline<ScalarSample>(configuration: configuration)
            let sample = try ChangeEvent.insert(ScalarSample(id: 1), order: 1).jsonData()
            let problems = RisingWaveSQLRules.jsonSourceViolations(
                createSource: pipeline.ddl.createSource,
                views: [pipeline.ddl.createView, pipeline.ddl.createHistoryView],
                sample: Array(sample)
            )
            #expect(problems.isEmpty, "\(problems)")
            #expect(RisingWaveSQLRules.declaredColumns(pipeline.ddl.createSource).count == 16)
        }
    }

    @Test("the JSON source rules catch a decimal read from a JSON number and a view that trusts the columns")
    func jsonSourceRulesCatch() throws {
        let pipeline = try RisingWavePipeline<ScalarSample>(configuration: .init(topic: "t"))
        // What the core wrote before: the decimal as a JSON number.
        let sample = String(
            decoding: try ChangeEvent.insert(ScalarSample(id: 1), order: 1).jsonData(),
            as: UTF8.self
        )
        .replacingOccurrences(of: #""amount":"12.34""#, with: #""amount":12.34"#)
        let number = RisingWaveSQLRules.jsonSourceViolations(
            createSource: pipeline.ddl.createSource,
            views: [],
            sample: Array(sample.utf8)
        )
        #expect(number.contains { $0.contains(#"DECIMAL column "amount" is read from a JSON number"#) }, "\(number)")
        // A view with only the column checks (the view before payload checks), over a source without the payload.
        let lax = RisingWaveSQLRules.jsonSourceViolations(
            createSource: pipeline.ddl.createSource.replacingOccurrences(
                of: "INCLUDE payload AS kafka_payload\n",
                with: ""
            ),
            views: [#"CREATE MATERIALIZED VIEW IF NOT EXISTS v AS SELECT * FROM s WHERE "age" IS NOT NULL"#],
            sample: Array(try ChangeEvent.insert(ScalarSample(id: 1), order: 1).jsonData())
        )
        #expect(lax.contains { $0.contains("INCLUDE payload") })
        #expect(lax.contains { $0.contains(#"reads "label" without checking its JSON type"#) })
        #expect(lax.contains { $0.contains(#"DECIMAL "amount" from a string without checking"#) })
    }

    @Test("text inside literals and quoted names does not count")
    func quoting() {
        #expect(RisingWaveSQLRules.violations(#"SELECT 'a; b LIMIT $1' AS "x;y""#, extended: true).isEmpty)
    }

    // Fuzz/SQLQuoting's input shapes (Documentation/reliability.md), kept as unit tests.
    @Test(
        "fuzz finding: a quote followed by a combining mark is still doubled (scalars, not Characters)",
        arguments: ["a\"\u{598}\"1s", "x'\u{301}y", "\"\u{5A0}", "'\u{300}'"]
    )
    func combiningMarks(text: String) throws {
        let identifier = try SQLText.identifier(text)
        let quotes = identifier.unicodeScalars.filter { $0 == "\"" }.count
        #expect(quotes == 2 + 2 * text.unicodeScalars.filter { $0 == "\"" }.count, "\(identifier.debugDescription)")
        let literal = try SQLText.literal(text)
        #expect(
            literal.unicodeScalars.filter { $0 == "'" }.count == 2 + 2 * text.unicodeScalars.filter { $0 == "'" }.count
        )
        // A NUL hidden behind a combining mark is still refused.
        #expect(throws: DeltaKitError.self) { try SQLText.identifier("a\u{0}\u{301}") }
    }
}
