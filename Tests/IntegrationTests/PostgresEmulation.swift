import DeltaKit
import DeltaKitRisingWave
import DeltaKitTesting
import Foundation

/// RisingWave cannot run here, so the generated view's exact SELECT runs on real PostgreSQL: a table shaped
/// like the Kafka source (same columns, `kafka_partition`/`kafka_offset` as VARCHAR) and plain views built
/// from ``RisingWavePipeline/latestStateQuery`` and ``RisingWavePipeline/progressQuery``.
struct PostgresEmulation {
    let connection: RisingWaveConnection
    let pipeline: RisingWavePipeline<DemoUser>
    private(set) var nextOffset = 0

    /// An emulation with fresh, unique object names.
    static func make(_ url: String) async throws -> PostgresEmulation {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        return try await make(url, configuration: .init(sourceName: "ev_\(suffix)", viewName: "st_\(suffix)"))
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
        let columns =
            pipeline.eventColumns.map { "\"\($0.name)\" \($0.type)" } + [
                "kafka_partition VARCHAR", "kafka_offset VARCHAR",
            ]
        try await connection.execute(
            "CREATE TABLE \"\(pipeline.configuration.sourceName)\" (\(columns.joined(separator: ", ")))"
        )
        try await connection.execute(
            "CREATE VIEW \"\(pipeline.configuration.viewName)\" AS \(pipeline.latestStateQuery)"
        )
        try await connection.execute(
            "CREATE VIEW \"\(pipeline.configuration.progressViewName)\" AS \(pipeline.progressQuery)"
        )
        return PostgresEmulation(connection: connection, pipeline: pipeline)
    }

    var store: RisingWaveStateStore<DemoUser> { RisingWaveStateStore(connection: connection, pipeline: pipeline) }

    /// Inserts events as the Kafka source would see them, offsets counting up in arrival order.
    mutating func load(_ events: [ChangeEvent<DemoUser>]) async throws {
        let table = pipeline.configuration.sourceName
        for chunk in stride(from: 0, to: events.count, by: 500) {
            var sql = "INSERT INTO \"\(table)\" VALUES "
            var parameters: [(any SQLEncodable)?] = []
            var tuples: [String] = []
            for event in events[chunk..<min(chunk + 500, events.count)] {
                let base = parameters.count
                tuples.append("(" + (1...8).map { "$\(base + $0)" }.joined(separator: ", ") + ")")
                parameters +=
                    [
                        event.key, event.record?.name, event.record?.age, event.operation.rawValue, event.order,
                        event.timestamp, "0", String(nextOffset),
                    ] as [(any SQLEncodable)?]
                nextOffset += 1
            }
            sql += tuples.joined(separator: ", ")
            _ = try await connection.query(sql, parameters)
        }
    }
}
