import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// One writer per file, the topic a file records, fingerprints kept with the positions, rebuilds and replaced files.
@Suite("SQLiteStateStore: one writer, the file's topic, rebuilds")
struct SQLiteIdentityTests {
    typealias Store = SQLiteStateStore<DemoUser>

    @Test("a second writer is refused while the first exists, in this process or another; readers are not")
    func oneWriter() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        do {
            let writer = try SQLiteStateStoreTests.open(path)
            try await writer.apply(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
            let second = #expect(throws: DeltaKitError.self) { _ = try SQLiteStateStoreTests.open(path) }
            #expect(second?.code == .storageFailed)
            #expect(
                second?.message.contains("this process already writes \(path)") == true,
                "\(String(describing: second))"
            )
            let reader = try SQLiteStateStoreTests.open(path, readOnly: true)
            #expect(try await reader.count() == 1, "readers are unaffected")
        }
        // Released with the store: the next writer may open it.
        try await SQLiteStateStoreTests.open(path).apply(.insert(DemoUser(id: 2, name: "Bob", age: 30), order: 2))

        // Another process holding the writer lock (util-linux flock), killed with SIGKILL: the lock dies with it.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["--exclusive", "--no-fork", path + "-writer.lock", "/bin/sleep", "60"]
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        var refused: DeltaKitError?
        for _ in 0..<500 where refused == nil {
            do {
                _ = try SQLiteStateStoreTests.open(path)
                try await Task.sleep(for: .milliseconds(10))  // flock has not taken the lock yet: observe again
            } catch let error as DeltaKitError {
                refused = error
            }
        }
        #expect(refused?.message.contains("another process") == true, "\(String(describing: refused))")
        #expect(refused?.message.contains("is writing \(path)") == true)
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let after = try SQLiteStateStoreTests.open(path)
        #expect(try await after.count() == 2)
    }

    @Test("fingerprints are written with the positions, in the same transaction, and survive reopening")
    func fingerprints() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let fingerprints: [Int32: MessageFingerprint] = [
            0: MessageFingerprint(offset: 89, timestamp: 1_765_000_000_000, digest: .max),
            3: MessageFingerprint(offset: 4, timestamp: -1, digest: 42),
        ]
        do {
            let store = try SQLiteStateStoreTests.open(path)
            try await store.apply(
                contentsOf: [.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1)],
                positions: [0: 90, 3: 5],
                fingerprints: fingerprints
            )
        }
        let reopened = try SQLiteStateStoreTests.open(path, readOnly: true)
        #expect(try await reopened.fingerprints() == fingerprints)
        #expect(try await reopened.positions() == [0: 90, 3: 5])
    }

    /// A write of any one part of a batch fails (a trigger, installed from outside, aborts it): the state, the
    /// history, the positions and the fingerprints must all stay as they were — they commit together or not.
    @Test(
        "a batch, its positions and fingerprints commit together: a failure in any one table leaves all unchanged",
        arguments: ["demo_users", "deltakit_history", "deltakit_positions", "deltakit_fingerprints"]
    )
    func oneTransaction(failing table: String) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let store = try SQLiteStateStoreTests.open(path)
        var generator = DemoEventGenerator(seed: 8, users: 10)
        try await store.apply(
            contentsOf: generator.next(40),
            positions: [0: 40],
            fingerprints: [0: MessageFingerprint(offset: 39, timestamp: 1, digest: 1)]
        )
        let before = try SQLiteStateStoreTests.sqlite3(path, ".dump")
        _ = try SQLiteStateStoreTests.sqlite3(
            path,
            "CREATE TRIGGER fail_insert BEFORE INSERT ON \(table) BEGIN SELECT RAISE(ABORT, 'injected'); END;"
                + "CREATE TRIGGER fail_update BEFORE UPDATE ON \(table) BEGIN SELECT RAISE(ABORT, 'injected'); END;"
        )
        let failed = await #expect(throws: DeltaKitError.self) {
            try await store.apply(
                contentsOf: generator.next(40),
                positions: [0: 80],
                fingerprints: [0: MessageFingerprint(offset: 79, timestamp: 2, digest: 2)]
            )
        }
        #expect(failed?.code == .storageFailed, "\(String(describing: failed))")
        _ = try SQLiteStateStoreTests.sqlite3(path, "DROP TRIGGER fail_insert; DROP TRIGGER fail_update;")
        #expect(try SQLiteStateStoreTests.sqlite3(path, ".dump") == before)
        #expect(try await store.positions() == [0: 40])
    }

    @Test("removeAll empties the file; its change feeds, here and in another store, end instead of going silent")
    func rebuildEndsFeeds() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let store = try SQLiteStateStoreTests.open(path)
        var generator = DemoEventGenerator(seed: 5, users: 10)
        try await store.apply(
            contentsOf: generator.next(50),
            positions: [0: 50],
            fingerprints: [0: MessageFingerprint(offset: 49, timestamp: 1, digest: 2)]
        )
        let reader = try Store(
            configuration: .init(path: path, source: nil, feedPollInterval: .milliseconds(5), readOnly: true)
        )
        let feeds = [try await store.changes(from: .now), try await reader.changes(from: .now)]
        try await store.removeAll()
        #expect(try await store.count() == 0)
        #expect(try await store.history(limit: 10).isEmpty)
        #expect(try await store.positions().isEmpty)
        #expect(try await store.fingerprints().isEmpty)
        // The rebuilt file takes events again (before the old feeds read: a feed that missed the rebuild would
        // deliver this change instead of waiting for one, so the test fails at once rather than hanging).
        try await store.apply(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 100))
        #expect(try await reader.count() == 1)
        for feed in feeds {
            var iterator = feed.makeAsyncIterator()
            let ended = await #expect(throws: DeltaKitError.self) { _ = try await iterator.next() }
            #expect(ended?.code == .changesUnavailable)
            #expect(ended?.message.contains("was rebuilt") == true, "\(String(describing: ended))")
        }
    }

    @Test("a feed of a file that is deleted and created anew at its path ends, naming the file")
    func replacedFileEndsFeed() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        do { try await SQLiteStateStoreTests.open(path).apply(.insert(DemoUser(id: 1, name: "A", age: 1), order: 1)) }
        let reader = try Store(
            configuration: .init(path: path, source: nil, feedPollInterval: .milliseconds(5), readOnly: true)
        )
        var iterator = try await reader.changes(from: .now).makeAsyncIterator()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        try await SQLiteStateStoreTests.open(path).apply(.insert(DemoUser(id: 2, name: "B", age: 2), order: 2))
        let ended = await #expect(throws: DeltaKitError.self) { _ = try await iterator.next() }
        #expect(ended?.code == .changesUnavailable)
        #expect(ended?.message.contains("\(path) was deleted or replaced") == true, "\(String(describing: ended))")
    }

    @Test("a reader takes the topic from the file; a given topic is checked; a new file needs one")
    func topicFromFile() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        do { _ = try SQLiteStateStoreTests.open(path, source: "orders") }
        let reader = try Store(configuration: .init(path: path, source: nil, readOnly: true))
        #expect(reader.source == "orders")
        let writer = try Store(configuration: .init(path: path, source: nil))
        #expect(writer.source == "orders")
        let wrong = #expect(throws: DeltaKitError.self) {
            _ = try SQLiteStateStoreTests.open(path, source: "user-events", readOnly: true)
        }
        #expect(wrong?.code == .incompatibleStore)
        let missing = #expect(throws: DeltaKitError.self) {
            _ = try Store(configuration: .init(path: directory.path("new.sqlite"), source: nil))
        }
        #expect(missing?.message.contains("no state file") == true)
    }
}
