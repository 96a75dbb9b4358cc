import DeltaKit
import DeltaKitKafka
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Synchronization
import Testing

@testable import DeltaKitRisingWave

/// Runs the built `UserEvents` executable.
enum CLI {
    static var executable: URL {
        // The test bundle sits in the build folder next to the executable.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("UserEvents")
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the executable to its end and returns its status and output.
    static func run(_ arguments: [String]) async throws -> Result { try await Running(arguments).wait() }

    /// A running `UserEvents` process whose output is collected as it arrives.
    final class Running: Sendable {
        final class Buffer: Sendable {
            let data = Mutex(Data())
            var text: String { data.withLock { String(decoding: $0, as: UTF8.self) } }
        }
        let process: Process
        private let stdout = Buffer()
        private let stderr = Buffer()
        private let done = Mutex(0)

        convenience init(_ arguments: [String]) throws {
            try self.init(executable: CLI.executable, arguments: arguments)
        }

        /// Starts `executable` (the CLI, or a shell that runs it) with `arguments`.
        init(executable: URL, arguments: [String]) throws {
            process = Process()
            process.executableURL = executable
            process.arguments = arguments
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            for (pipe, buffer) in [(out, stdout), (err, stderr)] {
                let thread = Thread { [self] in
                    while true {
                        let chunk = pipe.fileHandleForReading.availableData
                        if chunk.isEmpty { break }
                        buffer.data.withLock { $0.append(chunk) }
                    }
                    done.withLock { $0 += 1 }
                }
                thread.start()
            }
        }

        var output: String { stdout.text }
        var errors: String { stderr.text }

        /// Waits (observing the output, bounded) until stderr contains `text`.
        func waitForStderr(containing text: String, timeout: Duration) async throws {
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while !errors.contains(text) {
                guard clock.now < deadline, process.isRunning else {
                    Issue.record("stderr never contained '\(text)'; it was: \(errors)")
                    throw CancellationError()
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        /// Waits (observing the output, bounded) until stdout contains `text`.
        func waitForStdout(containing text: String, timeout: Duration) async throws {
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while !output.contains(text) {
                guard clock.now < deadline, process.isRunning else {
                    throw CancellationError()
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        func signal(_ number: Int32) { kill(process.processIdentifier, number) }

        func wait() async throws -> Result {
            while process.isRunning || done.withLock({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(20)) }
            return Result(
                status: process.terminationStatus,
                stdout: output,
                stderr: stderr.text
            )
        }
    }

    static func referenceCSV(seed: UInt64, count: Int) -> String {
        var generator = DemoEventGenerator(seed: seed)
        var state = LatestState<DemoUser>()
        for e in generator.next(count) { state.apply(e) }
        return state.snapshot().map { "\($0.id),\($0.name),\($0.age)\n" }.joined()
    }
}

@Suite("UserEvents CLI", .timeLimit(.minutes(5)))
struct UserEventsCLITests {
    @Test(
        "watch --brokers warns while the broker is down and when it is back, and stops (exit 1) on a recreated topic",
        .requiresKafka
    )
    func watchBrokerOutage() async throws {
        _ = try TestEnvironment.requireKafka()
        let tansu = try #require(ProcessInfo.processInfo.environment["DELTAKIT_TANSU_BIN"])
        let broker = try PrivateTansu(binary: tansu)
        try await broker.start()
        let topic = "watched"
        func send(_ events: [ChangeEvent<DemoUser>]) async throws {
            let sink = try await KafkaEventSink<DemoUser>(
                configuration: .init(
                    kafka: .init(bootstrapServers: [broker.address], connectTimeout: .seconds(15)),
                    topic: topic,
                    createTopic: .init(partitions: 1)
                )
            )
            try await sink.send(contentsOf: events)
            try await sink.close()
        }
        var generator = DemoEventGenerator(seed: 3, users: 5)
        try await send(generator.next(30))
        let watch = try CLI.Running(["watch", "--brokers", broker.address, "--topic", topic, "--format", "csv"])
        try await watch.waitForStdout(containing: "insert,", timeout: .seconds(30))
        #expect(!watch.errors.contains("warning"))

        await broker.stop()
        try await watch.waitForStderr(containing: "warning: cannot reach Kafka", timeout: .seconds(60))
        // Tansu keeps topics in memory: it comes back empty, so the watched partition restarts at offset 0.
        try await broker.start()
        try await send(generator.next(2))
        try await watch.waitForStderr(containing: "Kafka is reachable again", timeout: .seconds(60))
        try await watch.waitForStderr(
            containing: "partition 0 of 'watched' went back in time: the next offset was 30",
            timeout: .seconds(60)
        )
        // The state printed so far came from the old log: watch stops instead of mixing the new one in.
        let result = try await watch.wait()
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("not the log this source was reading"), "\(result.stderr)")
        #expect(result.stderr.contains("the topic's partition ends at offset"), "\(result.stderr)")
        #expect(result.stderr.contains("hint: rebuild the state from the topic's beginning"), "\(result.stderr)")
        await broker.stop()
    }

    @Test("the default command runs the demo in memory and prints what the demo printed")
    func demo() async throws {
        let result = try await CLI.run(["--count", "30", "--seed", "4"])
        #expect(result.status == 0, "\(result.stderr)")
        let sent = result.stdout.split(separator: "\n").filter { $0.hasPrefix("Sent: {") }
        #expect(sent.count == 30)
        #expect(result.stdout.contains("Event history (newest 20):"))
        #expect(result.stdout.contains("Latest state"))
        let csv = try await CLI.run(["--count", "30", "--seed", "4", "--format", "csv"])
        #expect(csv.stdout == CLI.referenceCSV(seed: 4, count: 30))
    }

    @Test(
        "the demo sends DemoEventGenerator's events for the same seed (operations, keys and records, in order)",
        arguments: [UInt64(0), 4, 12_345, .max]
    )
    func demoEventsAreTheGenerators(seed: UInt64) async throws {
        let result = try await CLI.run(["--count", "500", "--seed", "\(seed)"])
        #expect(result.status == 0, "\(result.stderr)")
        let sent = try result.stdout.split(separator: "\n").filter { $0.hasPrefix("Sent: ") }.map { line in
            try ChangeEvent<DemoUser>(jsonData: Data(line.dropFirst("Sent: ".count).utf8))
        }
        var generator = DemoEventGenerator(seed: seed)
        let expected = generator.next(500)
        #expect(sent.map(\.operation) == expected.map(\.operation))
        #expect(sent.map(\.key) == expected.map(\.key))
        #expect(sent.map(\.record) == expected.map(\.record))
    }

    @Test(
        "materialize --state, then snapshot/history/watch --state read the file; another topic's file is refused",
        .requiresKafka
    )
    func stateFile() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("cli-state")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("users.sqlite").path
        _ = try await CLI.run([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "300", "--seed", "9", "--quiet",
        ])

        let materialized = try await CLI.run([
            "materialize", "--brokers", brokers, "--topic", topic, "--state", state, "--exit-when-caught-up",
        ])
        #expect(materialized.status == 0, "\(materialized.stderr)")
        #expect(materialized.stdout.hasPrefix("Applied 300 events to \(state)"))
        #expect(materialized.stderr.contains("materializing '\(topic)' into \(state) from the beginning"))
        let again = try await CLI.run([
            "materialize", "--brokers", brokers, "--topic", topic, "--state", state, "--exit-when-caught-up",
        ])
        #expect(again.stdout.hasPrefix("Applied 0 events"), "\(again.stdout)")
        #expect(again.stderr.contains("from stored positions"))

        let snapshot = try await CLI.run(["snapshot", "--state", state, "--topic", topic, "--format", "csv"])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        #expect(snapshot.stdout == CLI.referenceCSV(seed: 9, count: 300))
        let history = try await CLI.run([
            "history", "--state", state, "--topic", topic, "--format", "json", "--limit", "5",
        ])
        let events = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]]
        #expect(events?.count == 5)

        let watch = try CLI.Running(["watch", "--state", state, "--topic", topic, "--format", "csv"])
        try await watch.waitForStdout(containing: "insert,", timeout: .seconds(30))
        watch.signal(SIGINT)
        _ = try await watch.wait()

        let wrong = try await CLI.run(["snapshot", "--state", state, "--topic", "orders"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("holds topic '\(topic)', not 'orders'"), "\(wrong.stderr)")
        #expect(wrong.stderr.contains("hint: "))
        let missing = try await CLI.run(["snapshot", "--state", directory.appendingPathComponent("none.sqlite").path])
        #expect(missing.status == 1 && missing.stderr.contains("materializ"), "\(missing.stderr)")
        // Without --topic, the readers take the topic the file records (not the default user-events).
        let own = try await CLI.run(["snapshot", "--state", state, "--format", "csv"])
        #expect(own.status == 0, "\(own.stderr)")
        #expect(own.stdout == CLI.referenceCSV(seed: 9, count: 300))
        let ownHistory = try await CLI.run(["history", "--state", state, "--format", "csv", "--limit", "3"])
        #expect(ownHistory.status == 0 && ownHistory.stdout.split(separator: "\n").count == 3, "\(ownHistory.stderr)")
    }

    /// Three processes: `watch --state` follows the file's change feed while `materialize` (another process) writes
    /// it. The writer records changes only while a feed is open; the watcher's feed, in its own process, must keep
    /// it recording: every change of every key is printed, in order.
    @Test("watch --state in one process prints every change a materialize in another process writes", .requiresKafka)
    func watchAcrossProcesses() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("cli-watch-file")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("users.sqlite").path
        _ = try await CLI.run([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "100", "--seed", "21", "--quiet",
        ])
        let first = try await CLI.run([
            "materialize", "--brokers", brokers, "--topic", topic, "--state", state, "--exit-when-caught-up",
        ])
        #expect(first.status == 0, "\(first.stderr)")

        let watch = try CLI.Running([
            "watch", "--state", state, "--format", "csv", "--from-now", "--poll-interval", "20",
        ])
        defer { watch.signal(SIGKILL) }
        // The feed is open once watch has read the file: its stderr says nothing, so wait for the feeds' lock.
        try await Self.waitForFeed(state)
        _ = try await CLI.run([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "200", "--seed", "22", "--quiet",
        ])
        let second = try await CLI.run([
            "materialize", "--brokers", brokers, "--topic", topic, "--state", state, "--exit-when-caught-up",
        ])
        #expect(second.status == 0, "\(second.stderr)")

        // What the 200 new events change, key by key (partitions keep each key's order, not the order across keys).
        var reference = LatestState<DemoUser>()
        var generator = DemoEventGenerator(seed: 21)
        for event in generator.next(100) { reference.apply(event) }
        generator = DemoEventGenerator(seed: 22, startOrder: 1_000)  // produced later: higher orders
        var expected: [Int: [String]] = [:]
        for event in generator.next(200) {
            guard let change = reference.apply(event) else { continue }
            expected[change.key, default: []].append(
                "\(change.kind.rawValue),\(change.key),\(change.record?.name ?? ""),\(change.record.map { "\($0.age)" } ?? "")"
            )
        }
        let total = expected.values.reduce(0) { $0 + $1.count }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while watch.output.split(separator: "\n").count < total, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        var printed: [Int: [String]] = [:]
        for line in watch.output.split(separator: "\n") {
            printed[Int(line.split(separator: ",")[1])!, default: []].append(String(line))
        }
        #expect(printed == expected, "watch printed \(watch.output)")
    }

    /// Waits (observing, bounded) until a change feed holds the shared lock on `state`'s feeds' lock file.
    static func waitForFeed(_ state: String) async throws {
        let descriptor = open(state + "-feeds.lock", O_RDONLY)
        defer { close(descriptor) }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        // An exclusive lock is refused while a feed holds its shared one.
        while descriptor < 0 || flock(descriptor, LOCK_EX | LOCK_NB) == 0 {
            if descriptor >= 0 { flock(descriptor, LOCK_UN) }
            guard clock.now < deadline else {
                Issue.record("no change feed of \(state) was opened")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test("a reader without write access to the file or its directory reads a state file the writer closed")
    func readOnlyReader() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-ro-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer {
            chmod(directory.path, 0o755)
            try? FileManager.default.removeItem(at: directory)
        }
        let state = directory.appendingPathComponent("users.sqlite").path
        var generator = DemoEventGenerator(seed: 12)
        let events = generator.next(60)
        do {  // written, then closed: the writer is gone
            let store = try SQLiteStateStore<DemoUser>(configuration: .init(path: state, source: "user-events"))
            try await store.apply(contentsOf: events, positions: [0: 60])
        }
        // The reader is another user (root ignores permissions: run it as nobody), or this user without write
        // access to the directory.
        let executable = directory.appendingPathComponent("UserEvents").path
        try FileManager.default.copyItem(atPath: CLI.executable.path, toPath: executable)
        let asNobody = getuid() == 0
        chmod(directory.path, asNobody ? 0o755 : 0o555)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: asNobody ? "/usr/sbin/runuser" : executable)
        process.arguments =
            (asNobody ? ["-u", "nobody", "--", executable] : []) + ["snapshot", "--state", state, "--format", "csv"]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let stdout = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(stderr)")
        #expect(stdout == CLI.referenceCSV(seed: 12, count: 60))
    }

    @Test(
        "a second materialize on the same file exits 1 naming the first's pid; after a SIGKILL the lock is gone",
        .requiresKafka
    )
    func oneWriterPerFile() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("cli-writer")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("users.sqlite").path
        _ = try await CLI.run([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "200", "--seed", "5", "--quiet",
        ])
        let first = try CLI.Running(["materialize", "--brokers", brokers, "--topic", topic, "--state", state])
        try await first.waitForStderr(containing: "caught up: 200 events applied", timeout: .seconds(60))
        let second = try await CLI.run([
            "materialize", "--brokers", brokers, "--topic", topic, "--state", state, "--exit-when-caught-up",
        ])
        #expect(second.status == 1, "\(second.stderr)")
        #expect(
            second.stderr.contains("another process (pid \(first.process.processIdentifier)) is writing \(state)"),
            "\(second.stderr)"
        )
        // Readers are unaffected.
        let snapshot = try await CLI.run(["snapshot", "--state", state, "--format", "csv"])
        #expect(snapshot.stdout == CLI.referenceCSV(seed: 5, count: 200), "\(snapshot.stderr)")
        first.signal(SIGKILL)
        _ = try await first.wait()
        let third = try await CLI.run([
            "materialize", "--brokers", brokers, "--topic", topic, "--state", state, "--exit-when-caught-up",
        ])
        #expect(third.status == 0, "\(third.stderr)")
        #expect(third.stdout.hasPrefix("Applied 0 events"), "\(third.stdout)")
    }

    @Test(
        "produce, then snapshot --brokers --format csv equals the in-memory reference for the same seed",
        .requiresKafka
    )
    func produceThenSnapshot() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("cli")
        let produced = try await CLI.run([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "500", "--seed", "42", "--quiet",
        ])
        #expect(produced.status == 0, "\(produced.stderr)")
        #expect(produced.stdout.hasPrefix("Sent 500 events to '\(topic)'"))
        // stderr is not a terminal here: no progress line, only the summary on stdout.
        #expect(produced.stderr.isEmpty, "\(produced.stderr)")
        let snapshot = try await CLI.run(["snapshot", "--brokers", brokers, "--topic", topic, "--format", "csv"])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        #expect(snapshot.stdout == CLI.referenceCSV(seed: 42, count: 500))

        let history = try await CLI.run([
            "history", "--brokers", brokers, "--topic", topic, "--format", "json", "--limit", "5",
        ])
        let events = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]]
        #expect(events?.count == 5)
        let orders = events?.compactMap { $0["event_order"] as? Int64 } ?? []
        #expect(orders == orders.sorted(by: >) && orders.count == 5)

        // The bytes on the topic decode to the demo's JSON keys.
        let raw = try KafkaTestSupport.rawMessagesViaPython(brokers, topic: topic)
        #expect(raw.count == 500)
        for message in raw.prefix(50) {
            let value = try #require(message["value"] ?? nil)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(value.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["id", "name", "age", "op", "event_order", "ts"])
        }
    }

    @Test("produce prints each acknowledged event as the demo did", .requiresKafka)
    func producePrints() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let result = try await CLI.run([
            "produce", "--brokers", brokers, "--topic", TestEnvironment.uniqueTopic("cli"), "--count", "5", "--seed",
            "1",
        ])
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("Sent: {\"id\":") }.count == 5)
    }

    @Test("provision --dry-run prints the pinned SQL without connecting")
    func provisionDryRun() async throws {
        let result = try await CLI.run(["provision", "--dry-run", "--rw-brokers", "redpanda:29092"])
        #expect(result.status == 0)
        let pipeline = try RisingWavePipeline<DemoUser>(
            configuration: .init(
                topic: "user-events",
                bootstrapServers: "redpanda:29092",
                sourceName: "user_events",
                viewName: "latest_user_state"
            )
        )
        #expect(result.stdout == pipeline.script)
        #expect(result.stdout.hasPrefix("CREATE SOURCE IF NOT EXISTS \"user_events\" ("))
        #expect(result.stdout.contains("CREATE MATERIALIZED VIEW IF NOT EXISTS \"latest_user_state\" AS"))
        let teardown = try await CLI.run(["provision", "--dry-run", "--teardown"])
        #expect(teardown.stdout.contains("DROP SOURCE IF EXISTS \"user_events\" CASCADE;"))
    }

    @Test(
        "bad arguments are usage errors (exit 64) naming the flag, before any network, never a trap",
        arguments: [
            (["--interval", "inf"], "--interval"), (["--interval", "1e300"], "--interval"),
            (["--interval", "-1s"], "--interval"),
            (["--count=-5"], "--count"), (["produce", "--count=-5"], "--count"),
            (["produce", "--partitions", "0"], "--partitions"),
            (["produce", "--partitions", "99999999999"], "--partitions"),
            (["produce", "--connect-timeout=-1"], "--connect-timeout"),
            (["produce", "--connect-timeout", "99999999999"], "--connect-timeout"),
            (["produce", "--brokers", "garbage"], "--brokers"),
            (["produce", "--brokers", ":99999"], "--brokers"), (["produce", "--brokers", ""], "--brokers"),
            (["produce", "--brokers", "http://localhost:9092"], "--brokers"),
            (["produce", "--kafka-property", "bootstrap.servers=127.0.0.1:1"], "bootstrap.servers"),
            (["history", "--brokers", "127.0.0.1:1", "--limit=-1"], "--limit"),
            (["snapshot", "--risingwave", ""], "--risingwave"),
            (["snapshot", "--risingwave", "mysql://u:SECRET@h/db"], "postgres://"),
        ]
    )
    func usageErrors(arguments: [String], flag: String) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await CLI.run(arguments)
        #expect(result.status == 64, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(flag), "\(result.stderr)")
        #expect(!result.stderr.contains("SECRET") && !result.stderr.contains("Stack dump"))
        #expect(clock.now - start < .seconds(20), "validation must not wait for a network timeout")
    }

    @Test(
        "SIGINT or SIGTERM during produce drains what is in flight, prints the count and exits 130 or 143",
        .requiresKafka,
        arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))]
    )
    func interruptedProduce(signal: Int32, code: Int32) async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("signal")
        let running = try CLI.Running([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "2000000", "--seed", "5",
        ])
        try await running.waitForStdout(containing: "Sent: ", timeout: .seconds(60))
        running.signal(signal)
        let result = try await running.wait()
        #expect(result.status == code, "\(result.stderr)")
        let summary = try #require(result.stdout.split(separator: "\n").last)
        #expect(summary.hasPrefix("Sent ") && summary.hasSuffix(" (interrupted)"), "\(summary)")
        let sent = try #require(Int(summary.split(separator: " ")[1]))
        #expect(sent > 0 && sent < 2_000_000)
        // Every event reported as sent was acknowledged, and nothing else reached the topic.
        #expect(
            result.stdout.components(separatedBy: "\nSent: ").count - 1 + (result.stdout.hasPrefix("Sent: ") ? 1 : 0)
                == sent
        )
        #expect(
            try await KafkaEventSource<DemoUser>.readAll(KafkaTestSupport.kafka(brokers), topic: topic).count == sent
        )
    }

    @Test(
        "SIGINT or SIGTERM stops materialize: what was applied stays in the file, the summary says so, exit 130 or 143",
        .requiresKafka,
        arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))]
    )
    func interruptedMaterialize(signal: Int32, code: Int32) async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("signal-state")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("users.sqlite").path
        _ = try await CLI.run([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "100", "--seed", "6", "--quiet",
        ])
        let running = try CLI.Running(["materialize", "--brokers", brokers, "--topic", topic, "--state", state])
        try await running.waitForStderr(containing: "caught up: 100 events applied", timeout: .seconds(60))
        running.signal(signal)
        let result = try await running.wait()
        #expect(result.status == code, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("Applied 100 events to \(state)"), "\(result.stdout)")
        #expect(result.stdout.contains(" (interrupted); positions "), "\(result.stdout)")
        let snapshot = try await CLI.run(["snapshot", "--state", state, "--format", "csv"])
        #expect(snapshot.stdout == CLI.referenceCSV(seed: 6, count: 100), "\(snapshot.stderr)")
    }

    @Test("a topic that does not exist: the error names it, the hint says to produce to it first", .requiresKafka)
    func missingTopic() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("missing")
        let result = try await CLI.run(["snapshot", "--brokers", brokers, "--topic", topic])
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 2, "\(result.stderr)")
        #expect(lines.first?.hasPrefix("error: topic '\(topic)' does not exist") == true, "\(result.stderr)")
        #expect(lines.last == "hint: produce to the topic first (`UserEvents produce --brokers …`) or check --topic")
    }

    @Test(
        "names with ANSI escapes and control characters are escaped in tables; watch --format csv prints CSV",
        .requiresKafka
    )
    func escapingAndWatchCSV() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let sink = try await KafkaTestSupport.makeSink(brokers)
        let evil = DemoUser(id: 1, name: "\u{1b}[31mEvil\u{1b}[0m\nline\u{7}", age: 30)
        try await sink.send(contentsOf: [
            .insert(evil, order: 1), .insert(DemoUser(id: 2, name: "Bo, \"B\"", age: 40), order: 2),
        ])
        try await sink.close()
        let table = try await CLI.run(["snapshot", "--brokers", brokers, "--topic", sink.topic])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(!table.stdout.contains("\u{1b}") && !table.stdout.contains("\u{7}"))
        #expect(table.stdout.contains("\\u{1b}[31mEvil\\u{1b}[0m\\u{a}line\\u{7}"), "\(table.stdout)")
        let watch = try CLI.Running(["watch", "--brokers", brokers, "--topic", sink.topic, "--format", "csv"])
        try await watch.waitForStdout(containing: "insert,2,", timeout: .seconds(60))
        watch.signal(SIGTERM)
        let csv = try await watch.wait().stdout
        // RFC 4180: a field with a comma, quote or newline is quoted (CSV is for machines; tables escape instead).
        #expect(csv.hasPrefix("insert,1,\"\u{1b}[31mEvil\u{1b}[0m\nline\u{7}\",30\n"), "\(csv)")
        #expect(csv.contains("\ninsert,2,\"Bo, \"\"B\"\"\",40\n"), "\(csv)")
    }

    @Test("help shows the interval's default as 0 and the exit codes")
    func helpText() async throws {
        let produce = try await CLI.run(["produce", "--help"])
        #expect(produce.stdout.contains("(default: 0)"), "\(produce.stdout)")
        #expect(!produce.stdout.contains("IntervalArgument"))
        let top = try await CLI.run(["--help"])
        #expect(top.stdout.contains("64 usage error"))
    }

    @Test("provision names the objects after the topic, so two topics never share them")
    func provisionNames() async throws {
        let orders = try await CLI.run(["provision", "--dry-run", "--topic", "orders"])
        #expect(orders.status == 0)
        #expect(orders.stdout.contains(#"CREATE SOURCE IF NOT EXISTS "orders_events" ("#))
        #expect(orders.stdout.contains(#"CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_orders_state" AS"#))
        #expect(!orders.stdout.contains("user_events"))
    }

    @Test("distinct topics never share RisingWave objects: a.b, a_b and A_B are refused (they would be a-b's)")
    func provisionNamesAreOneToOne() async throws {
        let dash = try await CLI.run(["provision", "--dry-run", "--topic", "a-b"])
        #expect(dash.status == 0, "\(dash.stderr)")
        #expect(dash.stdout.contains(#"CREATE SOURCE IF NOT EXISTS "a_b_events" ("#))
        #expect(dash.stdout.contains(#"CREATE MATERIALIZED VIEW IF NOT EXISTS "latest_a_b_state" AS"#))
        for topic in ["a.b", "a_b", "A_B", "a--b", "1a", "user"] {
            let result = try await CLI.run(["provision", "--dry-run", "--topic", topic])
            #expect(result.status == 64, "\(topic): \(result.stdout)")
            #expect(result.stdout.isEmpty, "\(topic): no SQL for a refused topic")
            #expect(
                result.stderr.contains("--topic") && result.stderr.contains("explicit sourceName and viewName"),
                "\(topic): \(result.stderr)"
            )
        }
        // The demo's topic keeps the original demo's names; a topic ending in -events is no longer cut (it would
        // share them with the topic without the suffix).
        let events = try await CLI.run(["provision", "--dry-run", "--topic", "orders-events"])
        #expect(events.stdout.contains(#""orders_events_events""#), "\(events.stderr)")
    }

    @Test(
        "provision --dry-run refuses a topic Kafka refuses (exit 64, the rule), before printing SQL",
        arguments: ["a b", "..", "a/b", "tópico", String(repeating: "t", count: 250)]
    )
    func provisionRefusesKafkaTopicNames(topic: String) async throws {
        let result = try await CLI.run(["provision", "--dry-run", "--topic", topic])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("invalid Kafka topic name"), "\(result.stderr)")
    }

    @Test("provision --connect-timeout bounds the wait for a database that accepts but never answers")
    func provisionConnectTimeout() async throws {
        // A listening socket that never accepts: the kernel completes the handshake, libpq then waits for an answer.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 8) == 0 }
        }
        #expect(bound)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let usage = try await CLI.run(["provision", "--connect-timeout", "0"])
        #expect(usage.status == 64 && usage.stderr.contains("--connect-timeout"), "\(usage.stderr)")
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await CLI.run([
            "provision", "--risingwave", "postgres://root@127.0.0.1:\(port)/dev?sslmode=disable",
            "--connect-timeout", "2",
        ])
        let elapsed = clock.now - start
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("127.0.0.1:\(port)"), "\(result.stderr)")
        // libpq's connect_timeout is 2 s here; the default (10 s) would take at least 10.
        #expect(elapsed < .seconds(9), "took \(elapsed)")
    }

    @Test(
        "provision creates a missing topic before the source (RisingWave refuses a source on a missing topic)",
        .requiresKafka,
        .requiresPostgres
    )
    func provisionCreatesTopic() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let url = try await PostgresEmulation.freshDatabase(try TestEnvironment.requirePostgres())
        // The catalog provisioning reads first (empty: nothing to compare).
        try await PostgresEmulation.emulateCatalog(on: RisingWaveConnection(configuration: .init(url: url)))
        let topic = TestEnvironment.uniqueTopic("provision")
        let admin = try KafkaTopicAdmin(configuration: .init(bootstrapServers: [brokers]))
        #expect(try await admin.partitions(of: topic) == nil)
        let result = try await CLI.run([
            "provision", "--risingwave", url, "--brokers", brokers, "--topic", topic, "--partitions", "3",
        ])
        #expect(result.stdout.contains("Created topic '\(topic)' with 3 partitions."), "\(result.stderr)")
        #expect(try await admin.partitions(of: topic)?.count == 3)
        // PostgreSQL then refuses CREATE SOURCE (RisingWave-only syntax): the error names the source and topic.
        #expect(result.status == 1)
        #expect(result.stderr.contains("refused to create source") && result.stderr.contains(topic))
    }

    @Test("an unreachable broker or database: one clear line naming the address, non-zero exit, no hang")
    func unreachable() async throws {
        let kafka = try await CLI.run(["produce", "--brokers", "127.0.0.1:1", "--connect-timeout", "2"])
        #expect(kafka.status == 1)
        // One line from the library saying what failed, one from the CLI saying what to do.
        let kafkaLines = kafka.stderr.split(separator: "\n")
        #expect(kafkaLines.count == 2)
        #expect(kafka.stderr.hasPrefix("error: no Kafka broker answered at 127.0.0.1:1"))
        #expect(kafkaLines.last?.hasPrefix("hint: ") == true && kafkaLines.last?.contains("--brokers") == true)
        let snapshot = try await CLI.run(["snapshot", "--brokers", "127.0.0.1:1", "--connect-timeout", "2"])
        #expect(snapshot.status == 1)
        #expect(snapshot.stderr.contains("127.0.0.1:1"))
        let rw = try await CLI.run([
            "snapshot", "--risingwave", "postgres://root:pw@127.0.0.1:1/dev", "--connect-timeout", "2",
        ])
        #expect(rw.status == 1)
        let rwLines = rw.stderr.split(separator: "\n")
        #expect(rwLines.count == 2)
        #expect(rwLines.last?.hasPrefix("hint: ") == true && rwLines.last?.contains("--risingwave") == true)
        #expect(rw.stderr.contains("127.0.0.1:1") && !rw.stderr.contains(":pw@"))
    }

    @Test(
        "snapshot and history --risingwave read the generated objects (on PostgreSQL standing in for RisingWave)",
        .requiresPostgres
    )
    func readsRisingWaveObjects() async throws {
        let url = try await PostgresEmulation.freshDatabase(try TestEnvironment.requirePostgres())
        var emulation = try await PostgresEmulation.make(
            url,
            configuration: .init(topic: "user-events", sourceName: "user_events", viewName: "latest_user_state")
        )
        var generator = DemoEventGenerator(seed: 77)
        let events = generator.next(200)
        try await emulation.load(events)
        let snapshot = try await CLI.run(["snapshot", "--risingwave", url, "--format", "csv"])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        #expect(snapshot.stdout == CLI.referenceCSV(seed: 77, count: 200))
        let table = try await CLI.run(["snapshot", "--risingwave", url])
        #expect(table.stdout.hasPrefix("id | name"))
        let history = try await CLI.run(["history", "--risingwave", url, "--format", "csv", "--limit", "3"])
        let orders = history.stdout.split(separator: "\n").map { $0.split(separator: ",")[0] }
        #expect(orders == ["200", "199", "198"])
    }
}
