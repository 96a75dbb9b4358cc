import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

/// The demo user as an older declaration had it: `age` an `Int32`, no `email`.
private struct OldUser: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String
    var age: Int32
    var key: Int { id }
}

/// The demo user with an optional `email` added.
private struct NewUser: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String
    var age: Int
    var email: String?
    var key: Int { id }
}

@Suite("RisingWave pipeline definition drift")
struct PipelineDriftTests {
    static func configuration<R>(_: R.Type, historySize: Int = 1_000, topic: String = "user-events")
        -> RisingWavePipeline<R>.Configuration
    {
        .init(topic: topic, sourceName: "user_events", viewName: "latest_user_state", historySize: historySize)
    }

    /// The catalog RisingWave holds after `pipeline.apply`: its columns, definitions, topic and retention (a view's
    /// definition as RisingWave re-prints it keeps the marker's literal; here it is the generated text).
    static func catalog<R>(of pipeline: RisingWavePipeline<R>) -> PipelineDrift.Catalog {
        var catalog = PipelineDrift.Catalog()
        for object in pipeline.drift.expected {
            if object.kind == "subscription" {
                catalog.retentions[object.name] = object.retentionSeconds
                continue
            }
            catalog.columns[object.name] = Dictionary(uniqueKeysWithValues: object.columns.map { ($0.name, $0.type) })
            catalog.topics[object.name] = object.topic
        }
        catalog.definitions[pipeline.viewName] = pipeline.ddl.createView
        catalog.definitions[pipeline.historyViewName] = pipeline.ddl.createHistoryView
        catalog.definitions[pipeline.progressViewName] = pipeline.ddl.createProgressView
        return catalog
    }

    @Test("the objects a pipeline creates match its own definitions; objects not there yet are no difference")
    func matches() throws {
        let pipeline = try RisingWavePipeline<DemoUser>(configuration: Self.configuration(DemoUser.self))
        #expect(pipeline.drift.differences(in: Self.catalog(of: pipeline)).isEmpty)
        #expect(pipeline.drift.differences(in: PipelineDrift.Catalog()).isEmpty)
        // RisingWave's own columns, were they listed, are not a difference.
        var catalog = Self.catalog(of: pipeline)
        catalog.columns["user_events"]?["_row_id"] = "serial"
        catalog.columns["user_events"]?["_rw_kafka_timestamp"] = "timestamp with time zone"
        #expect(pipeline.drift.differences(in: catalog).isEmpty)
    }

    @Test("a changed record: each object names the column that differs, and the views' queries differ")
    func changedRecord() throws {
        let old = try RisingWavePipeline<OldUser>(configuration: Self.configuration(OldUser.self))
        let new = try RisingWavePipeline<NewUser>(configuration: Self.configuration(NewUser.self))
        let lines = new.drift.differences(in: Self.catalog(of: old))
        let source = try #require(lines.first { $0.hasPrefix(#"source "user_events": "#) })
        #expect(source.contains(#"column "age" is integer, generated bigint"#), "\(source)")
        #expect(source.contains(#"column "email" (character varying) is missing"#), "\(source)")
        let view = try #require(lines.first { $0.hasPrefix(#"materialized view "latest_user_state": "#) })
        #expect(view.contains("its query is not the generated one"))
        #expect(lines.contains { $0.hasPrefix(#"materialized view "latest_user_state_history": "#) })
        // The progress view and the subscription do not depend on the record.
        #expect(!lines.contains { $0.contains("latest_user_state_progress") || $0.contains("_changes") })
        let error = PipelineDrift.error(lines)
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.contains("provision --replace") && error.message.contains(source))
    }

    @Test("a changed optionality changes the views' queries though not their columns")
    func changedOptionality() throws {
        struct LooseDemo: ChangeRecord {
            static let keyField = "id"
            var id: Int
            var name: String?
            var age: Int
            var key: Int { id }
        }
        let old = try RisingWavePipeline<DemoUser>(configuration: Self.configuration(DemoUser.self))
        let new = try RisingWavePipeline<LooseDemo>(configuration: Self.configuration(LooseDemo.self))
        let lines = new.drift.differences(in: Self.catalog(of: old))
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.allSatisfy { $0.contains("its query is not the generated one") && !$0.contains("column \"") })
    }

    @Test("a changed historySize, topic or retention is named with both values")
    func changedSettings() throws {
        let old = try RisingWavePipeline<DemoUser>(configuration: Self.configuration(DemoUser.self))
        var configuration = Self.configuration(DemoUser.self, historySize: 50, topic: "users-v2")
        configuration.subscriptionRetention = .seconds(3_600)
        let new = try RisingWavePipeline<DemoUser>(configuration: configuration)
        let lines = new.drift.differences(in: Self.catalog(of: old))
        #expect(lines.contains { $0.contains("reads topic 'user-events', the configuration's is 'users-v2'") })
        #expect(lines.contains { $0.contains("keeps 1000 events (LIMIT 1000), historySize is 50") })
        #expect(lines.contains { $0.contains(#"subscription "latest_user_state_changes": retention is 86400 s"#) })
    }

    @Test("the marker is found as RisingWave and PostgreSQL print it back; a view without one differs")
    func markers() throws {
        let pipeline = try RisingWavePipeline<DemoUser>(configuration: Self.configuration(DemoUser.self))
        let hash = try #require(PipelineDDL.marker(in: pipeline.ddl.latestStateQuery))
        #expect(hash.count == 16)
        #expect(PipelineDDL.marker(in: "WHERE ('deltakit-definition:\(hash)'::text IS NOT NULL)") == hash)
        #expect(PipelineDDL.marker(in: "SELECT 1") == nil)
        // The marker hashes the query without itself: another historySize is another marker.
        let other = try RisingWavePipeline<DemoUser>(configuration: Self.configuration(DemoUser.self, historySize: 5))
        #expect(PipelineDDL.marker(in: other.ddl.historyQuery) != PipelineDDL.marker(in: pipeline.ddl.historyQuery))
        #expect(PipelineDDL.fingerprint("") == "cbf29ce484222325")
        // A view created before views carried a marker.
        var catalog = Self.catalog(of: pipeline)
        catalog.definitions[pipeline.viewName] = "CREATE MATERIALIZED VIEW latest_user_state AS SELECT 1"
        #expect(pipeline.drift.differences(in: catalog).count == 1)
        #expect(PipelineDrift.limit(in: "SELECT … ORDER BY x LIMIT 25") == 25)
    }
}
