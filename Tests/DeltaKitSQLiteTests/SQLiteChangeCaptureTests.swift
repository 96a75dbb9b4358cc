import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

/// Changes are recorded only while a change feed of the file is open, in this process or another; a position whose
/// later changes went unrecorded is refused, never resumed with changes missing.
@Suite("SQLiteStateStore: changes recorded while a feed is open")
struct SQLiteChangeCaptureTests {
    typealias Store = SQLiteStateStore<DemoUser>

    static func recordedChanges(_ path: String) throws -> String {
        try SQLiteStateStoreTests.sqlite3(path, "SELECT count(*) FROM deltakit_changes WHERE kind <> 'gap';")
    }

    @Test("without a feed nothing is recorded; a feed in this process or another turns recording on until it ends")
    func recordsOnlyWhileAFeedIsOpen() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let store = try SQLiteStateStoreTests.open(path)
        var generator = DemoEventGenerator(seed: 3, users: 20)
        try await store.apply(contentsOf: generator.next(50))
        #expect(try Self.recordedChanges(path) == "0\n")

        // A feed of a read-only store of the same file, in this process.
        do {
            let reader = try SQLiteStateStoreTests.open(path, readOnly: true)
            var feed = try await reader.changes(from: .now).makeAsyncIterator()
            try await store.apply(.insert(DemoUser(id: 100, name: "Zoe", age: 40), order: 1_000))
            // Read the feed only once the change is in the file: a feed waits for changes that never come.
            try #require(try Self.recordedChanges(path) == "1\n", "the open feed did not make the writer record")
            #expect(
                try await feed.next()?.change
                    == StateChange(kind: .insert, key: 100, record: DemoUser(id: 100, name: "Zoe", age: 40))
            )
        }
        try await store.apply(.update(DemoUser(id: 100, name: "Zoe", age: 41), order: 1_001))
        #expect(try Self.recordedChanges(path) == "1\n", "the feed ended: recording stopped")

        // A feed in another process: util-linux flock holds the feeds' shared lock, as a feed does.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [
            "--shared", "--no-fork", path + "-feeds.lock", "/bin/sh", "-c", "echo locked; exec sleep 60",
        ]
        let output = Pipe()
        holder.standardOutput = output
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        // It prints once it holds the lock.
        #expect(String(decoding: output.fileHandleForReading.availableDataOrLine(), as: UTF8.self) == "locked\n")
        try await store.apply(.update(DemoUser(id: 100, name: "Zoe", age: 42), order: 1_002))
        #expect(try Self.recordedChanges(path) == "2\n")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        try await store.apply(.update(DemoUser(id: 100, name: "Zoe", age: 43), order: 1_003))
        #expect(try Self.recordedChanges(path) == "2\n", "the process that held the feed is gone")
    }

    /// The writer's transaction without recording, played by util-linux flock in another process holding the feeds'
    /// exclusive lock: a feed starting then marks itself starting (the writer would record) and waits for the end.
    @Test("a feed that starts during a transaction recording nothing marks itself starting and waits for its end")
    func feedStartsDuringUnrecordedTransaction() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let store = try SQLiteStateStoreTests.open(path)
        try await store.apply(.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1))
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [
            "--exclusive", "--no-fork", path + "-feeds.lock", "/bin/sh", "-c", "echo locked; exec sleep 60",
        ]
        let output = Pipe()
        holder.standardOutput = output
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        #expect(String(decoding: output.fileHandleForReading.availableDataOrLine(), as: UTF8.self) == "locked\n")

        let feed = Task { try await store.changes(from: .now) }
        // Observed (bounded): the feed holds the starting lock, so a writer's transaction would record.
        let starting = open(path + "-feeds-starting.lock", O_RDONLY)
        defer { close(starting) }
        var marked = false
        for _ in 0..<1_000 where !marked {
            if flock(starting, LOCK_EX | LOCK_NB) == 0 {
                flock(starting, LOCK_UN)
                try await Task.sleep(for: .milliseconds(10))
            } else {
                marked = true
            }
        }
        #expect(marked, "the starting feed never took the starting lock")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        var changes = try await feed.value.makeAsyncIterator()
        // Started: it holds the feeds' lock and has let the starting one go.
        #expect(flock(starting, LOCK_EX | LOCK_NB) == 0)
        try await store.apply(.update(DemoUser(id: 1, name: "Alice", age: 26), order: 2))
        try #require(try Self.recordedChanges(path) == "1\n")
        #expect(
            try await changes.next()?.change
                == StateChange(kind: .update, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26))
        )
    }

    @Test("a position is refused once events were applied with no feed open; with a feed open it resumes")
    func positionAfterUnrecordedChanges() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("users.sqlite")
        let store = try SQLiteStateStoreTests.open(path)
        let alice = DemoUser(id: 1, name: "Alice", age: 25)
        var position: ChangeFeedPosition?
        do {
            var feed = try await store.changes(from: .now).makeAsyncIterator()
            try await store.apply(.insert(alice, order: 1))
            position = try await feed.next()?.position
        }
        let first = try #require(position)

        // A feed keeps recording on: the position stays resumable.
        do {
            let keeper = try await store.changes(from: .now)
            try await store.apply(.update(DemoUser(id: 1, name: "Alice", age: 26), order: 2))
            var resumed = try await store.changes(from: .after(first)).makeAsyncIterator()
            #expect(
                try await resumed.next()?.change
                    == StateChange(kind: .update, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26))
            )
            withExtendedLifetime(keeper) {}
        }

        // No feed open while an event is applied: the position's later changes are not in the file.
        try await store.apply(.update(DemoUser(id: 1, name: "Alice", age: 27), order: 3))
        let refused = await #expect(throws: DeltaKitError.self) {
            _ = try await store.changes(from: .after(first))
        }
        #expect(refused?.code == .changesUnavailable)
        #expect(refused?.message.contains("were not recorded") == true, "\(String(describing: refused))")
        // A new feed starts after the gap and sees what follows.
        var feed = try await store.changes(from: .now).makeAsyncIterator()
        try await store.apply(.delete(key: 1, order: 4))
        #expect(
            try await feed.next()?.change
                == StateChange(kind: .delete, key: 1, record: DemoUser(id: 1, name: "Alice", age: 27))
        )
    }
}

extension FileHandle {
    /// The first line (or what is there when the writer closes): waits for the other process to print it.
    fileprivate func availableDataOrLine() -> Data {
        var data = Data()
        while !data.contains(UInt8(ascii: "\n")) {
            let chunk = availableData
            if chunk.isEmpty { break }
            data.append(chunk)
        }
        return data
    }
}
