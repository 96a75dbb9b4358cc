import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Testing

extension CLI {
    /// Runs the executable through `/bin/sh -c script`, where the script refers to the executable as `"$0"` and to
    /// `arguments` as `"$@"` (e.g. `exec "$0" "$@" >/dev/full`); stdout and stderr are collected as they arrive.
    static func shell(_ script: String, _ arguments: [String]) async throws -> Result {
        try await Running(arguments, shell: script).wait()
    }

    /// Runs the executable with SIGPIPE ignored (as systemd starts services) and its stdout on a pipe that is
    /// closed once the first line arrived (what `| head -1` does); returns how the process ended.
    static func closingStdoutAfterFirstLine(_ arguments: [String]) async throws -> (
        reason: Process.TerminationReason, status: Int32, stderr: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // An ignored signal stays ignored across exec: the executable starts with SIGPIPE ignored.
        process.arguments = ["-c", #"trap '' PIPE; exec "$0" "$@""#, executable.path] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        try out.fileHandleForWriting.close()
        try err.fileHandleForWriting.close()
        var first = Data()
        while !first.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            first.append(chunk)
        }
        // The reader goes away: every later write of the process fails with EPIPE.
        try out.fileHandleForReading.close()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        return (process.terminationReason, process.terminationStatus, String(decoding: errors, as: UTF8.self))
    }
}

extension CLI.Running {
    /// Starts the executable through `/bin/sh -c script` (see ``CLI/shell(_:_:)``).
    convenience init(_ arguments: [String], shell script: String) throws {
        try self.init(
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: ["-c", script, CLI.executable.path] + arguments
        )
    }
}

@Suite("UserEvents CLI: output that cannot be written, tables, argument forms", .timeLimit(.minutes(5)))
struct UserEventsCLIOutputTests {
    /// The demo's output is far larger than a pipe's buffer, so a closed reader is always noticed.
    static let demo = ["--count", "100000", "--seed", "4"]

    @Test(
        "stdout full, closed, or a pipe closed early with SIGPIPE ignored: exit 1 and one line on stderr, never a trap",
        arguments: [
            (#"exec "$0" "$@" >/dev/full"#, "No space left on device"),
            (#"exec "$0" "$@" >&-"#, "Bad file descriptor"),
        ]
    )
    func stdoutFails(script: String, reason: String) async throws {
        for arguments in [Self.demo, Self.demo + ["--format", "csv"], ["provision", "--dry-run"]] {
            let result = try await CLI.shell(script, arguments)
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr == "error: cannot write to standard output: \(reason)\n", "\(arguments)")
        }
    }

    @Test("a reader that closes the pipe early with SIGPIPE ignored: exit 1 with one line on stderr (EPIPE)")
    func brokenPipe() async throws {
        let ended = try await CLI.closingStdoutAfterFirstLine(Self.demo)
        #expect(ended.reason == .exit && ended.status == 1, "\(ended)")
        #expect(ended.stderr == "error: cannot write to standard output: Broken pipe\n")
    }

    @Test("produce into a pipe closed early with SIGPIPE ignored: exit 1 with one line on stderr", .requiresKafka)
    func brokenPipeProduce() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("cli-pipe")
        // 20,000 `Sent:` lines are about 2.5 MB: far more than a pipe holds.
        let ended = try await CLI.closingStdoutAfterFirstLine([
            "produce", "--brokers", brokers, "--topic", topic, "--count", "20000", "--seed", "6",
        ])
        #expect(ended.reason == .exit && ended.status == 1, "\(ended)")
        #expect(ended.stderr == "error: cannot write to standard output: Broken pipe\n")
    }

    @Test("a reader that closes the pipe early with SIGPIPE at its default ends the command by SIGPIPE, silently")
    func brokenPipeDefault() async throws {
        // `| head -1` in a shell: the Unix convention for a filter (status 141 in the shell), not a trap (132).
        let result = try await CLI.shell(#"exec "$0" "$@" | head -n 1 >/dev/null; exit 0"#, Self.demo)
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
        let status = try await CLI.shell(
            #"trap - PIPE; { "$0" "$@"; echo $? >&2; } | head -n 1 >/dev/null"#,
            Self.demo
        )
        #expect(status.stderr == "141\n", "\(status.stderr)")
    }

    @Test(
        "stderr closed or full when a command must report an error: exit 1 with the error line on stdout",
        arguments: [#"exec "$0" "$@" 2>&-"#, #"exec "$0" "$@" 2>/dev/full"#]
    )
    func stderrFails(script: String) async throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("none-\(UUID()).sqlite").path
        let result = try await CLI.shell(script, ["snapshot", "--state", missing])
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && lines[0].contains(missing), "\(result.stdout)")
        // Both streams unusable: exit 1, silently (no trap).
        let both = try await CLI.shell(#"exec "$0" "$@" >&- 2>&-"#, ["snapshot", "--state", missing])
        #expect(both.status == 1)
        // Nothing to say on stderr: a closed stderr is no failure.
        let quiet = try await CLI.shell(script, ["--count", "30", "--seed", "4", "--format", "csv"])
        #expect(quiet.status == 0 && quiet.stdout == CLI.referenceCSV(seed: 4, count: 30))
    }

    @Test(
        "produce and materialize with stdout or stderr unusable exit 1 with one line on the other stream",
        .requiresKafka
    )
    func serviceCommandsFail() async throws {
        let brokers = try TestEnvironment.requireKafka()
        let topic = TestEnvironment.uniqueTopic("cli-output")
        let produced = try await CLI.shell(
            #"exec "$0" "$@" >/dev/full"#,
            ["produce", "--brokers", brokers, "--topic", topic, "--count", "3000", "--seed", "2"]
        )
        #expect(produced.status == 1)
        #expect(produced.stderr == "error: cannot write to standard output: No space left on device\n")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("users.sqlite").path
        let arguments = [
            "materialize", "--brokers", brokers, "--topic", topic, "--state", state, "--exit-when-caught-up",
        ]
        let noStderr = try await CLI.shell(#"exec "$0" "$@" 2>&-"#, arguments)
        #expect(noStderr.status == 1)
        #expect(noStderr.stdout == "error: cannot write to standard error: Bad file descriptor\n")
        let full = try await CLI.shell(#"exec "$0" "$@" >/dev/full"#, arguments)
        #expect(full.status == 1, "\(full.stderr)")
        #expect(full.stderr.hasSuffix("\nerror: cannot write to standard output: No space left on device\n"))
        #expect(full.stderr.contains("caught up: "), "\(full.stderr)")
        // stdout closed: descriptor 1 stays taken (read-only /dev/null), so the summary is refused with EBADF.
        // Without that, librdkafka's next descriptor (an eventfd) became "stdout" and the write went into it (EINVAL).
        let closed = try await CLI.shell(#"exec "$0" "$@" >&-"#, arguments)
        #expect(closed.status == 1, "\(closed.stderr)")
        #expect(closed.stderr.hasSuffix("\nerror: cannot write to standard output: Bad file descriptor\n"))
    }

    @Test("a table cuts a long value to 64 characters; CSV and JSON keep it whole")
    func longValues() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("users.sqlite").path
        let long = String(repeating: "x", count: 5_000_000)
        let store = try SQLiteStateStore<DemoUser>(configuration: .init(path: state, source: "t"))
        try await store.apply(
            contentsOf: [
                .insert(DemoUser(id: 1, name: long, age: 30), order: 1),
                .insert(DemoUser(id: 2, name: "Bo", age: 40), order: 2),
            ],
            positions: [0: 2]
        )
        let table = try await CLI.run(["snapshot", "--state", state, "--topic", "t"])
        #expect(table.status == 0, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 4 && lines.allSatisfy { $0.count < 100 }, "\(lines.map(\.count))")
        #expect(lines[2].contains(String(repeating: "x", count: 63) + "…"))
        #expect(lines[3].hasPrefix(" 2 | Bo "))
        let history = try await CLI.run(["history", "--state", state, "--topic", "t"])
        #expect(history.stdout.split(separator: "\n").allSatisfy { $0.count < 200 })
        let csv = try await CLI.run(["snapshot", "--state", state, "--topic", "t", "--format", "csv"])
        #expect(csv.stdout == "1,\(long),30\n2,Bo,40\n")
        let json = try await CLI.run(["snapshot", "--state", state, "--topic", "t", "--format", "json"])
        #expect(json.stdout.contains(long))
    }

    @Test(
        "a negative number after a space is the value, refused with the range; --interval takes decimal seconds only",
        arguments: [
            (["--count", "-5"], "--count must be 0…100,000,000, got -5"),
            (["produce", "--count", "-5"], "--count must be 0…100,000,000, got -5"),
            (["produce", "--partitions", "-3"], "--partitions must be 1…10,000, got -3"),
            (["produce", "--connect-timeout", "-1"], "--connect-timeout must be 1…3600 seconds, got -1"),
            (["history", "--brokers", "127.0.0.1:1", "--limit", "-1"], "--limit must be 0…100,000, got -1"),
            (
                ["watch", "--state", "/nonexistent/x.sqlite", "--poll-interval", "-5"],
                "--poll-interval must be 10…60,000"
            ),
            (["--count", "0", "--interval", "-1s"], "--interval must be a decimal number of seconds"),
            (["--count", "0", "--interval", "0x10"], "got '0x10'"),
            (["--count", "0", "--interval", "1e3"], "got '1e3'"),
            (["--count", "0", "--interval", "nan"], "got 'nan'"),
            (["--count", "0", "--interval", "1.5h"], "got '1.5h'"),
            (["--count", "0", "--interval", "3601"], "at most 1 hour; got '3601'"),
        ]
    )
    func numberForms(arguments: [String], message: String) async throws {
        let result = try await CLI.run(arguments)
        #expect(result.status == 64, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        #expect(!result.stderr.contains("Missing value"))
    }

    @Test("--interval accepts decimal seconds and units")
    func intervalForms() async throws {
        for interval in ["0", "0.001", "1ms", "0.5ms", "0s", "0m"] {
            let result = try await CLI.run(["--count", "2", "--seed", "1", "--interval", interval, "--format", "csv"])
            #expect(result.status == 0, "\(interval): \(result.stderr)")
        }
    }

    @Test(
        "a Kafka property the library relies on is refused, naming it and why",
        arguments: ["enable.partition.eof=false", "enable.auto.offset.store=true", "acks=1", "group.id=g"]
    )
    func reservedKafkaProperties(property: String) async throws {
        let name = String(property.prefix { $0 != "=" })
        for command in ["materialize", "produce"] {
            var arguments = [command, "--brokers", "127.0.0.1:1", "--kafka-property", property]
            let state = FileManager.default.temporaryDirectory.appendingPathComponent("none-\(UUID()).sqlite").path
            if command == "materialize" { arguments += ["--state", state] }
            let result = try await CLI.run(arguments)
            #expect(result.status == 64, "\(result.stderr)")
            #expect(result.stderr.contains("--kafka-property \(name)=… is not allowed: DeltaKit sets it itself"))
        }
    }

    @Test(
        "a broker that refuses the SASL login: 'authentication failed' naming the mechanism, never 'start Kafka'",
        .requiresKafka
    )
    func authenticationFailure() async throws {
        // Tansu refuses librdkafka's SASL handshake (librdkafka reports _AUTHENTICATION, -169).
        let brokers = try TestEnvironment.requireKafka()
        let sasl = [
            "--kafka-property", "security.protocol=sasl_plaintext", "--kafka-property", "sasl.mechanisms=PLAIN",
            "--kafka-property", "sasl.username=app", "--kafka-property", "sasl.password=SECRET-PW",
            "--brokers", brokers, "--connect-timeout", "3",
        ]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("users.sqlite").path
        for arguments in [["produce", "--count", "1"], ["materialize", "--state", state]] {
            let result = try await CLI.run(arguments + sasl)
            #expect(result.status == 1)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 2, "\(arguments): \(result.stderr)")
            #expect(lines.first?.hasPrefix("error: authentication failed: the Kafka broker at \(brokers)") == true)
            #expect(result.stderr.contains("SASL mechanism PLAIN, user 'app'"))
            #expect(lines.last?.hasPrefix("hint: check the SASL settings") == true)
            #expect(!result.stderr.contains("start Kafka") && !result.stderr.contains("SECRET-PW"))
        }
    }

    @Test("the corrupt-file hint is given for a corrupt state file only, not for a directory or a missing file")
    func storageHints() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltakit-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let corrupt = directory.appendingPathComponent("corrupt.sqlite")
        try Data(repeating: 0x5A, count: 8192).write(to: corrupt)
        let bad = try await CLI.run(["snapshot", "--state", corrupt.path])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("hint: the --state file is corrupt or not a state file"), "\(bad.stderr)")
        for path in [directory.path, "/dev/null", directory.appendingPathComponent("missing.sqlite").path] {
            let result = try await CLI.run(["snapshot", "--state", path])
            #expect(result.status == 1)
            #expect(
                result.stderr.hasPrefix("error: ") && !result.stderr.contains("corrupt"),
                "\(path): \(result.stderr)"
            )
        }
        let materialize = try await CLI.run([
            "materialize", "--brokers", "127.0.0.1:1", "--state", directory.path, "--connect-timeout", "1",
        ])
        #expect(materialize.status == 1)
        #expect(!materialize.stderr.contains("corrupt"), "\(materialize.stderr)")
    }

    @Test("demo --count keeps memory bounded: 400,000 events in the memory of a few")
    func demoMemory() async throws {
        // /usr/bin/time reports the child's peak RSS: it must not grow with the count (a demo that kept every event
        // would need about 100 B each, 73 MB at 400,000).
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/time") else { return }
        let result = try await CLI.shell(
            #"/usr/bin/time -f "maxrss=%M" "$0" "$@" >/dev/null"#,
            ["--count", "400000", "--seed", "3", "--format", "csv"]
        )
        #expect(result.status == 0, "\(result.stderr)")
        let line = try #require(result.stderr.split(separator: "\n").first { $0.hasPrefix("maxrss=") })
        let kilobytes = try #require(Int(line.dropFirst("maxrss=".count)))
        #expect(kilobytes < 50_000, "peak RSS \(kilobytes) kB")
    }
}
