import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

/// The demo user as a later declaration has it: `age` an `Int32`, an optional `email` added.
private struct ChangedUser: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String
    var age: Int32
    var email: String?
    var key: Int { id }
}

@Suite("RisingWave definitions, decimals and other producers' JSON on real PostgreSQL", .requiresPostgres)
struct RisingWaveOnPostgresDefinitionTests {
    @Test("a 30-significant-digit decimal reaches the view exactly (NUMERIC from a JSON string) and reads back")
    func wideDecimal() async throws {
        var emulation = try await PayloadEmulation<ScalarSample>.make(try TestEnvironment.requirePostgres())
        let wide = Decimal(string: "123456789012345.678901234567891")!
        let events: [ChangeEvent<ScalarSample>] = [
            .insert(ScalarSample(id: 1, amount: wide), order: 1),
            .insert(ScalarSample(id: 2, amount: -wide), order: 2),
        ]
        try await emulation.load(events)
        let rows = try await emulation.connection.query(
            "SELECT amount::text AS amount FROM \"\(emulation.pipeline.viewName)\" ORDER BY id"
        )
        #expect(rows.map { $0["amount"] } == ["123456789012345.678901234567891", "-123456789012345.678901234567891"])
        #expect(try await emulation.store.value(forKey: 1)?.amount == wide)
        #expect(try await emulation.store.snapshot() == events.map { try $0.canonicalized().record! })
        #expect(try await emulation.store.history(limit: 5).map(\.record?.amount) == [-wide, wide])
    }

    @Test("a decimal string that is not a JSON number never reaches the view; a JSON number does")
    func decimalForms() async throws {
        var emulation = try await PayloadEmulation<ScalarSample>.make(try TestEnvironment.requirePostgres())
        try await emulation.load([.insert(ScalarSample(id: 1), order: 1), .insert(ScalarSample(id: 2), order: 2)])
        let table = emulation.pipeline.sourceName
        let sample = String(
            decoding: try ChangeEvent.insert(ScalarSample(id: 1), order: 5).jsonData(),
            as: UTF8.self
        )
        // ' 1.5' and '1.5e3' both convert to NUMERIC on PostgreSQL (and RisingWave reads 'NaN' or 'inf'), so only
        // the view's grammar check keeps the first out; a JSON number is a valid form (the core reads it too).
        for (key, amount) in [(1, #"" 1.5""#), (2, "7.25")] {
            let message = sample.replacingOccurrences(of: #""amount":"12.34""#, with: #""amount":\#(amount)"#)
                .replacingOccurrences(of: #"{"id":1,"#, with: #"{"id":\#(key),"#)
            let columns = emulation.pipeline.columns.eventColumns.map { "(p ->> '\($0.name)')::\($0.type)" }
            _ = try await emulation.connection.query(
                "INSERT INTO \"\(table)\" SELECT \(columns.joined(separator: ", ")), '0', '9', p FROM (SELECT $1::jsonb AS p) AS m",
                [message]
            )
        }
        #expect(try await emulation.store.value(forKey: 1)?.amount == Decimal(string: "12.34")!)
        #expect(try await emulation.store.value(forKey: 2)?.amount == Decimal(string: "7.25")!)
    }

    @Test(
        "other producers' JSON that RisingWave's lenient parser reads into the columns never reaches the view",
        arguments: [
            #"{"id":1,"name":"Mallory","age":"41","op":"update","event_order":9,"ts":"2024-01-01T00:00:00Z"}"#,
            #"{"id":1,"name":42,"age":1,"op":"update","event_order":9,"ts":"2024-01-01T00:00:00Z"}"#,
            #"{"id":1,"name":false,"age":1,"op":"update","event_order":9,"ts":"2024-01-01T00:00:00Z"}"#,
            #"{"id":1,"name":"Mallory","age":1,"op":"update","event_order":9,"ts":1704067200000}"#,
            #"{"id":1,"name":"Mallory","age":1,"op":"update","event_order":"9","ts":"2024-01-01T00:00:00Z"}"#,
            #"{"ID":1,"name":"Mallory","age":1,"op":"update","event_order":9,"ts":"2024-01-01T00:00:00Z"}"#,
            #"{"id":1,"Name":"Mallory","age":1,"op":"update","event_order":9,"ts":"2024-01-01T00:00:00Z"}"#,
            #"{"id":"1","name":"Mallory","age":1,"op":"update","event_order":9,"ts":"2024-01-01T00:00:00Z"}"#,
            #"{"id":1,"name":"Mallory","age":1,"Op":"update","event_order":9,"ts":"2024-01-01T00:00:00Z"}"#,
        ]
    )
    func laxJSON(message: String) async throws {
        #expect(throws: ChangeEventDecodingError.self) { try ChangeEvent<DemoUser>(jsonData: Data(message.utf8)) }
        var emulation = try await PostgresEmulation.make(try TestEnvironment.requirePostgres())
        let alice = ChangeEvent.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1)
        try await emulation.load([alice])
        try await emulation.loadWire([Array(message.utf8)])
        // The lenient reading filled every column (so the columns alone would have let it win) …
        let raw = try await emulation.connection.query(
            "SELECT count(*) AS n FROM \"\(emulation.pipeline.sourceName)\" WHERE event_order = 9 AND id = 1 AND name IS NOT NULL AND age IS NOT NULL AND ts IS NOT NULL AND op = 'update'"
        )
        #expect(try raw[0].decode("n", as: Int.self) == 1)
        // … and the view's check of the message keeps it out, as the core does.
        #expect(try await emulation.store.value(forKey: 1) == alice.record)
        #expect(try await emulation.store.history(limit: 5) == [alice])
    }

    @Test("provisioning reads the catalog: the same pipeline finds no difference, a changed one each difference")
    func drift() async throws {
        let url = try await PostgresEmulation.freshDatabase(try TestEnvironment.requirePostgres())
        let configuration = RisingWavePipeline<DemoUser>.Configuration(
            topic: "user-events",
            sourceName: "user_events",
            viewName: "latest_user_state"
        )
        let emulation = try await PostgresEmulation.make(url, configuration: configuration)
        // PostgreSQL re-prints the views' definitions (as RisingWave does); the markers survive, the types match.
        let same = emulation.pipeline.drift
        #expect(same.differences(in: try await same.read(on: emulation.connection)) == [])

        let changed = try RisingWavePipeline<ChangedUser>(
            configuration: .init(
                topic: "user-events-v2",
                sourceName: "user_events",
                viewName: "latest_user_state",
                historySize: 10
            )
        )
        let lines = changed.drift.differences(in: try await changed.drift.read(on: emulation.connection))
        let source = try #require(lines.first { $0.hasPrefix(#"source "user_events""#) }, "\(lines)")
        #expect(source.contains(#"column "age" is bigint, generated integer"#), "\(source)")
        #expect(source.contains(#"column "email" (character varying) is missing"#), "\(source)")
        #expect(source.contains("reads topic 'user-events', the configuration's is 'user-events-v2'"), "\(source)")
        let history = try #require(lines.first { $0.hasPrefix(#"materialized view "latest_user_state_history""#) })
        #expect(history.contains("keeps 1000 events (LIMIT 1000), historySize is 10"), "\(history)")
        #expect(lines.contains { $0.hasPrefix(#"materialized view "latest_user_state": "#) })

        // apply refuses before it creates anything (on PostgreSQL CREATE SOURCE would be refused otherwise).
        let error = await #expect(throws: DeltaKitError.self) { try await changed.apply(on: emulation.connection) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("provision --replace") == true)
        #expect(error?.message.contains(source) == true)
    }
}
