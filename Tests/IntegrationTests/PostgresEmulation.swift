import DeltaKit
import DeltaKitTesting
import Foundation

@testable import DeltaKitRisingWave

/// RisingWave cannot run here, so the generated view's exact SELECT runs on real PostgreSQL: a table shaped
/// like the Kafka source (same columns, `kafka_partition`/`kafka_offset` as VARCHAR) and plain views built
/// from the pipeline's latest-state, progress and history queries (`PipelineDDL`).
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
        let columns =
            pipeline.columns.eventColumns.map { "\"\($0.name)\" \($0.type)" } + [
                "kafka_partition VARCHAR", "kafka_offset VARCHAR",
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
        return PostgresEmulation(connection: connection, pipeline: pipeline)
    }

    var store: RisingWaveStateStore<DemoUser> { RisingWaveStateStore(connection: connection, pipeline: pipeline) }

    /// Inserts raw messages as RisingWave's `FORMAT PLAIN ENCODE JSON` parser would: a message that is not a JSON
    /// object is skipped, a value that does not convert to its column becomes NULL (the reference, §pitfalls 2).
    mutating func loadWire(_ messages: [[UInt8]]) async throws {
        for message in messages {
            guard let object = try? JSONSerialization.jsonObject(with: Data(message)) as? [String: Any] else {
                continue
            }
            func integer(_ name: String) -> Int? {
                // A JSON `true` or `false` is an NSNumber of type "c"; `is Bool` holds for the numbers 0 and 1 too
                // (swift-corelibs-foundation), which made this emulation turn an `id` or `age` of 1 into NULL.
                guard let number = object[name] as? NSNumber, String(cString: number.objCType) != "c" else {
                    return nil
                }
                return Int(exactly: number.doubleValue)
            }
            let ts = (object["ts"] as? String).flatMap(EventTimestamp.parse)
            let parameters: [(any SQLEncodable)?] = [
                integer("id"), object["name"] as? String, integer("age"), object["op"] as? String,
                integer("event_order"),
                ts, "0", String(nextOffset),
            ]
            nextOffset += 1
            _ = try await connection.query(
                "INSERT INTO \"\(pipeline.sourceName)\" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
                tuples.append("(" + (1...8).map { "$\(base + $0)" }.joined(separator: ", ") + ")")
                let partition = Int32(abs(event.key) % 4)
                let offset = nextOffsets[partition] ?? 0
                nextOffsets[partition] = offset + 1
                receipt.record(partition: partition, offset: offset)
                parameters +=
                    [
                        event.key, event.record?.name, event.record?.age, event.operation.rawValue, event.order,
                        event.timestamp, String(partition), String(offset),
                    ] as [(any SQLEncodable)?]
            }
            sql += tuples.joined(separator: ", ")
            _ = try await connection.query(sql, parameters)
        }
        if checkpoints { try await checkpoint() }
        return receipt
    }
}
