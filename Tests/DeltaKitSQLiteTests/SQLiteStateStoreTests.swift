import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// A fresh directory per test, removed at the end.
final class TemporaryDirectory: Sendable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-sqlite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

@Suite("SQLiteStateStore: the durable embedded table")
struct SQLiteStateStoreTests {
    typealias Store = SQLiteStateStore<DemoUser>

    static func open(_ path: String, source: String = "user-events", readOnly: Bool = false) throws -> Store {
        try Store(configuration: .init(path: path, source: source, readOnly: readOnly))
    }

    @Test("the store conformance suite passes, invalid wire messages included")
    func conformance() async throws {
        let directory = try TemporaryDirectory()
        let passed = try await StateStoreConformance(
            load: { events in
                let store = try Self.open(directory.path("\(UUID().uuidString).sqlite"))
                try await store.apply(contentsOf: events)
                return store
            },
            loadWire: { messages in
                // What the Kafka materializer does: decode each message; skip (and report) the invalid ones.
                let store = try Self.open(directory.path("\(UUID().uuidString).sqlite"))
                try await store.apply(contentsOf: messages.compactMap { try? ChangeEvent<DemoUser>(jsonData: $0) })
                return store
            },
            makeScalarStore: {
                try SQLiteStateStore<ScalarSample>(
                    configuration: .init(path: directory.path("\(UUID().uuidString).sqlite"), source: "samples")
                )
            }
        ).run()
        #expect(passed.count == 10)
    }

    @Test("the change feed conformance suite passes: snapshot seam, from now, resume from a position")
    func changeFeedConformance() async throws {
        let directory = try TemporaryDirectory()
        let passed = try await ChangeFeedConformance(
            makeStore: {
                try Store(
                    configuration: .init(
                        path: directory.path("\(UUID().uuidString).sqlite"),
                        source: "user-events",
                        feedPollInterval: .milliseconds(5)
                    )
                )
            },
            apply: { store, events in try await store.apply(contentsOf: events) },
            everyChange: true
        ).run()
        #expect(passed.count == 5)
    }

    @Test("a feed in one process sees the batches another store instance writes; a stale position is refused")
    func feedAcrossInstancesAndLimits() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let writer = try Store(configuration: .init(path: path, source: "user-events", changeBufferLimit: 3))
        try await writer.apply(contentsOf: [.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1)])
        let reader = try Store(
            configuration: .init(path: path, source: "user-events", feedPollInterval: .milliseconds(5), readOnly: true)
        )
        var feed = try await reader.changes(from: .snapshot).makeAsyncIterator()
        #expect(
            try await feed.next()?.change
                == StateChange(kind: .insert, key: 1, record: DemoUser(id: 1, name: "Alice", age: 25))
        )
        try await writer.apply(contentsOf: [
            .update(DemoUser(id: 1, name: "Alice", age: 26), order: 2), .delete(key: 1, order: 3),
        ])
        let update = try await feed.next()
        let delete = try await feed.next()
        #expect(update?.change == StateChange(kind: .update, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26)))
        #expect(delete?.change == StateChange(kind: .delete, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26)))
        // The file keeps 3 changes: after 5 more, the position of the update is too old to resume from.
        var generator = DemoEventGenerator(seed: 1, users: 50, startOrder: 100)
        try await writer.apply(contentsOf: generator.next(40))
        await #expect {
            _ = try await reader.changes(from: .after(update!.position!))
        } throws: { ($0 as? DeltaKitError)?.code == .changesUnavailable }
        await #expect {
            _ = try await reader.changes(from: .after(ChangeFeedPosition("otherfile:1")))
        } throws: {
            ($0 as? DeltaKitError)?.code == .changesUnavailable && "\($0)".contains("not delivered by a feed of")
        }
        // And the running feed, now behind the kept changes, says so instead of skipping them.
        await #expect {
            _ = try await feed.next()
        } throws: { ($0 as? DeltaKitError)?.code == .changesUnavailable }
    }

    @Test("state, tombstones, history and positions survive reopening the file")
    func survivesRestart() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        var generator = DemoEventGenerator(seed: 7)
        let events = generator.next(500)
        let reference = try InMemoryStateStore<DemoUser>()
        try await reference.apply(contentsOf: events)
        do {
            let store = try Self.open(path)
            try await store.apply(contentsOf: Array(events[..<200]), positions: [0: 200])
            try await store.apply(contentsOf: Array(events[200...]), positions: [0: 500, 3: 9])
            try await store.apply(.delete(key: 9_999, order: 50))
        }
        let reopened = try Self.open(path)
        #expect(try await reopened.snapshot() == reference.snapshot())
        #expect(try await reopened.count() == reference.count())
        #expect(try await reopened.positions() == [0: 500, 3: 9])
        #expect(try await reopened.history(limit: 20).map(\.order) == reference.history(limit: 20).map(\.order))
        // The tombstone of key 9999 (order 50) still refuses an older insert after the restart.
        try await reopened.apply(.insert(DemoUser(id: 9_999, name: "Late", age: 1), order: 49))
        #expect(try await reopened.value(forKey: 9_999) == nil)
        #expect(try await reopened.tombstoneCount() >= 1)
    }

    /// All or nothing, through every batch entry point: an invalid event anywhere in a batch (here the last)
    /// applies none of it, and records none of its positions or fingerprints.
    @Test(
        "a batch with an invalid event changes nothing, positions and fingerprints included",
        arguments: ["apply(contentsOf:)", "apply(contentsOf:positions:)", "apply(contentsOf:positions:fingerprints:)"]
    )
    func batchIsAtomic(through entryPoint: String) async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStateStore<ScalarSample>(
            configuration: .init(path: directory.path("samples.sqlite"), source: "samples")
        )
        let fingerprint = MessageFingerprint(offset: 0, timestamp: 1, digest: 1)
        try await store.apply(
            contentsOf: [.insert(ScalarSample(id: 1), order: 1)],
            positions: [0: 1],
            fingerprints: [0: fingerprint]
        )
        let batch: [ChangeEvent<ScalarSample>] = [
            .update(ScalarSample(id: 1, label: "changed"), order: 3),
            .insert(ScalarSample(id: 3), order: 4),
            .insert(ScalarSample(id: 2, score: .nan), order: 5),
        ]
        await #expect {
            switch entryPoint {
            case "apply(contentsOf:)":
                try await store.apply(contentsOf: batch)
            case "apply(contentsOf:positions:)":
                try await store.apply(contentsOf: batch, positions: [0: 4])
            default:
                try await store.apply(
                    contentsOf: batch,
                    positions: [0: 4],
                    fingerprints: [0: MessageFingerprint(offset: 3, timestamp: 2, digest: 2)]
                )
            }
        } throws: { ($0 as? DeltaKitError)?.code == .serializationFailed && "\($0)".contains("score") }
        #expect(try await store.snapshot().map(\.id) == [1])
        #expect(try await store.snapshot().map(\.label) == ["sample"])
        #expect(try await store.history(limit: 10).map(\.order) == [1])
        #expect(try await store.positions() == [0: 1])
        #expect(try await store.fingerprints() == [0: fingerprint])
    }

    @Test("every supported scalar type round-trips through the file, in a typed column")
    func scalarRoundTrip() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("samples.sqlite")
        let samples = [
            ScalarSample(id: 1),
            ScalarSample(
                id: 2,
                label: "Zoë \"🚀\"\n",
                score: -0.1,
                ratio: nil,
                amount: Decimal(string: "-123456789.0123456789")!,
                at: Date(timeIntervalSince1970: -1.5),
                status: .suspended,
                tier: .free,
                flag: false,
                small: .min,
                big: UInt64(Int64.max),
                link: nil
            ),
        ]
        let events = samples.enumerated().map { ChangeEvent.insert($1, order: Int64($0 + 1)) }
        do {
            let store = try SQLiteStateStore<ScalarSample>(configuration: .init(path: path, source: "samples"))
            try await store.apply(contentsOf: events)
        }
        let store = try SQLiteStateStore<ScalarSample>(configuration: .init(path: path, source: "samples"))
        #expect(try await store.snapshot() == events.map { try $0.canonicalized().record! })
        #expect(try await store.value(forKey: 2)?.amount == Decimal(string: "-123456789.0123456789")!)
        #expect(
            try Self.sqlite3(
                path,
                "SELECT typeof(id), typeof(score), typeof(amount), typeof(flag), flag, small, amount FROM scalar_samples WHERE id = 2;"
            )
                == "integer|real|text|integer|0|-32768|-123456789.0123456789\n"
        )
    }

    @Test("tombstones expire by age or by order, on the file and in memory alike")
    func tombstoneExpiry() async throws {
        let directory = try TemporaryDirectory()
        let file = try Self.open(directory.path("users.sqlite"))
        let memory = try InMemoryStateStore<DemoUser>()
        let day = 86_400.0
        let events: [ChangeEvent<DemoUser>] = [
            .insert(DemoUser(id: 1, name: "A", age: 1), order: 1, timestamp: Date(timeIntervalSince1970: 0)),
            .delete(key: 1, order: 2, timestamp: Date(timeIntervalSince1970: day)),
            .insert(DemoUser(id: 2, name: "B", age: 2), order: 3, timestamp: Date(timeIntervalSince1970: day)),
            .delete(key: 2, order: 4, timestamp: Date(timeIntervalSince1970: 3 * day)),
            .insert(DemoUser(id: 3, name: "C", age: 3), order: 5, timestamp: Date(timeIntervalSince1970: 0)),
        ]
        try await file.apply(contentsOf: events)
        try await memory.apply(contentsOf: events)
        #expect(try await file.removeTombstones(deletedBefore: Date(timeIntervalSince1970: 2 * day)) == 1)
        #expect(memory.removeTombstones(deletedBefore: Date(timeIntervalSince1970: 2 * day)) == 1)
        #expect(try await file.tombstoneCount() == 1 && memory.tombstoneCount == 1)
        // The expired key 1 is forgotten: an old insert now brings it back (the documented risk); key 2 still refuses one.
        let late: [ChangeEvent<DemoUser>] = [
            .insert(DemoUser(id: 1, name: "A", age: 1), order: 1),
            .insert(DemoUser(id: 2, name: "B", age: 2), order: 3),
        ]
        try await file.apply(contentsOf: late)
        try await memory.apply(contentsOf: late)
        #expect(try await file.snapshot().map(\.id) == [1, 3])
        #expect(try await memory.snapshot().map(\.id) == [1, 3])
        #expect(try await file.removeTombstones(olderThan: 5) == 1)
        #expect(try await file.tombstoneCount() == 0)
    }

    @Test("pages through the primary key give the snapshot in order")
    func paging() async throws {
        let directory = try TemporaryDirectory()
        let store = try Self.open(directory.path("users.sqlite"))
        var generator = DemoEventGenerator(seed: 3)
        try await store.apply(contentsOf: generator.next(400))
        var pages: [DemoUser] = []
        var after: Int?
        while true {
            let page = try await store.snapshot(after: after, limit: 7)
            if page.isEmpty { break }
            #expect(page.count <= 7)
            pages += page
            after = page.last?.id
        }
        #expect(pages == (try await store.snapshot()))
        #expect(!pages.isEmpty)
        await #expect(throws: DeltaKitError.self) { _ = try await store.snapshot(after: nil, limit: -1) }
    }

    @Test("the file is readable with the sqlite3 shell: one row per key, tombstones kept")
    func readableWithSQLite3() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let store = try Self.open(path)
        let ts = Date(timeIntervalSince1970: 1_700_000_000)
        try await store.apply(
            contentsOf: [
                .insert(DemoUser(id: 2, name: "Bob", age: 30), order: 1, timestamp: ts),
                .insert(DemoUser(id: 1, name: "Alice", age: 25), order: 2, timestamp: ts),
                .update(DemoUser(id: 1, name: "Alice", age: 26), order: 3, timestamp: ts),
                .delete(key: 2, order: 4, timestamp: ts),
            ],
            positions: [1: 4]
        )
        let output = try Self.sqlite3(
            path,
            "SELECT id, name, age, event_order, op, ts FROM demo_users ORDER BY id; SELECT * FROM deltakit_positions;"
        )
        #expect(
            output == """
                1|Alice|26|3|update|2023-11-14T22:13:20.000000+00:00
                2|||4|delete|2023-11-14T22:13:20.000000+00:00
                1|4

                """
        )
    }

    @Test("another process's reader sees committed batches while the writer holds the file (WAL)")
    func concurrentReader() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let writer = try Self.open(path)
        try await writer.apply(contentsOf: [.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1)])
        let reader = try Self.open(path, readOnly: true)
        #expect(try await reader.count() == 1)
        try await writer.apply(contentsOf: [.insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2)])
        #expect(try await reader.snapshot().map(\.id) == [1, 2])
        #expect(try Self.sqlite3(path, "PRAGMA journal_mode;") == "wal\n")
        await #expect {
            try await reader.apply(.insert(DemoUser(id: 3, name: "C", age: 1), order: 3))
        } throws: { ($0 as? DeltaKitError)?.code == .invalidConfiguration }
    }

    @Test("a file of another topic, record or format is refused naming both; the file is untouched")
    func incompatibleFiles() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        try await Self.open(path).apply(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        let before = try Self.sqlite3(path, ".dump")
        #expect {
            _ = try Self.open(path, source: "other-topic")
        } throws: { error in
            let error = error as? DeltaKitError
            return error?.code == .incompatibleStore && error!.message.contains("'user-events'")
                && error!.message.contains("'other-topic'")
        }
        #expect {
            _ = try SQLiteStateStore<ScalarSample>(
                configuration: .init(path: path, source: "user-events", tableName: "demo_users")
            )
        } throws: { error in
            let error = error as? DeltaKitError
            return error?.code == .incompatibleStore && error!.message.contains("'DemoUser'")
                && error!.message.contains("'ScalarSample'")
        }
        #expect(try Self.sqlite3(path, ".dump") == before)
        // A format_version other than the one of files from before the format's versions.
        _ = try Self.sqlite3(
            path,
            "DROP TABLE grdb_migrations; INSERT INTO deltakit_meta (name, value) VALUES ('format_version', '0');"
        )
        #expect {
            _ = try Self.open(path)
        } throws: { error in
            let error = error as? DeltaKitError
            return error?.code == .incompatibleStore && error!.message.contains("format_version '0'")
        }
    }

    @Test("a corrupt file or a foreign database is reported and never replaced; a missing file starts empty")
    func corruptAndForeignFiles() async throws {
        let directory = try TemporaryDirectory()
        let corrupt = directory.path("corrupt.sqlite")
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        try garbage.write(to: URL(fileURLWithPath: corrupt))
        #expect {
            _ = try Self.open(corrupt)
        } throws: { error in
            let error = error as? DeltaKitError
            return error?.code == .storageFailed && (error?.underlying as? SQLiteFailure)?.code == 26
                && error!.message.contains("left untouched")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: corrupt)) == garbage)

        let foreign = directory.path("foreign.sqlite")
        _ = try Self.sqlite3(foreign, "CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
        #expect {
            _ = try Self.open(foreign)
        } throws: { ($0 as? DeltaKitError)?.code == .incompatibleStore }
        #expect(try Self.sqlite3(foreign, ".tables") == "invoices\n")

        #expect {
            _ = try Self.open(directory.path("missing.sqlite"), readOnly: true)
        } throws: { ($0 as? DeltaKitError)?.message.contains("materialize") == true }
        let fresh = try Self.open(directory.path("new.sqlite"))
        #expect(try await fresh.count() == 0)
        #expect(try await fresh.positions().isEmpty)
    }

    @Test("configuration values are validated, naming the setting")
    func validation() throws {
        for (configuration, name) in [
            (Store.Configuration(path: " ", source: "t"), "path"),
            (Store.Configuration(path: "a", source: ""), "source"),
            (Store.Configuration(path: "a", source: "t", tableName: "Users"), "tableName"),
            (Store.Configuration(path: "a", source: "t", tableName: "deltakit_x"), "tableName"),
            (Store.Configuration(path: "a", source: "t", historyLimit: -1), "historyLimit"),
            (Store.Configuration(path: "a", source: "t", busyTimeout: .seconds(-1)), "busyTimeout"),
        ] {
            #expect {
                try configuration.validate()
            } throws: { "\($0)".contains(name) }
        }
    }

    /// Runs the `sqlite3` shell on `path` and returns its standard output.
    static func sqlite3(_ path: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [path, sql]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
