import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import Logging

/// The original Python demo, in Swift: publish user change events, keep the latest state per user, read it.
@main
struct UserEvents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "UserEvents",
        abstract: "Publish user change events and read the latest state per user (DeltaKit's demo).",
        discussion: """
            With no subcommand, runs the demo end to end on the embedded in-memory pipeline: no Kafka, no RisingWave. \
            The subcommands talk to a real Kafka (--brokers) and RisingWave (--risingwave); `docker compose up -d` \
            starts both on the demo's ports.

            Exit codes: 0 success, 1 runtime failure (the message says what failed, a `hint:` line what to do), \
            64 usage error (a bad argument, named with its allowed values), 130 interrupted (SIGINT), \
            143 terminated (SIGTERM). Output that cannot be written (a full disk, a closed stream) is a runtime \
            failure: exit 1 with one line on the other stream. A reader that closes the pipe early (`| head -1`) \
            ends the command by SIGPIPE like any Unix filter; with SIGPIPE ignored (as under systemd) that is \
            exit 1 with `error: cannot write to standard output: Broken pipe`.
            """,
        subcommands: [
            Demo.self, Produce.self, Provision.self, Materialize.self, Snapshot.self, History.self, Watch.self,
        ],
        defaultSubcommand: Demo.self
    )

    /// Runs the command, after giving a closed standard stream a placeholder (see
    /// ``Console/occupyClosedStandardDescriptors()``).
    static func main() async {
        Console.occupyClosedStandardDescriptors()
        await main(nil)
    }
}

// MARK: - Shared options

struct LoggingOptions: ParsableArguments {
    @Flag(name: .long, help: "Log librdkafka and libpq messages to stderr.")
    var verbose = false

    func bootstrap() {
        let level: Logger.Level = verbose ? .info : .critical
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

struct KafkaOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers, comma-separated.")
    var brokers = "localhost:9092"

    @Option(help: "The topic.")
    var topic = "user-events"

    @Option(parsing: .unconditional, help: "Seconds to wait for a broker before giving up (1…3600).")
    var connectTimeout: Int = 10

    @Option(
        name: .customLong("kafka-property"),
        help: "Extra librdkafka property as key=value (repeatable), e.g. security.protocol=sasl_ssl."
    )
    var kafkaProperties: [String] = []

    func validate() throws {
        try validateConnectTimeout(connectTimeout)
        try validateBrokers(brokers)
        for item in kafkaProperties {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ValidationError("--kafka-property must be key=value, got '\(item)'")
            }
            let name = String(item[..<eq])
            if name == "bootstrap.servers" || name == "metadata.broker.list" {
                throw ValidationError("--kafka-property \(name)=… is not allowed; pass the brokers with --brokers")
            }
            // The library refuses these too (KafkaConfiguration.validate()); here it is a usage error, before any
            // network, for every command (produce would not mind enable.partition.eof, but it means a mistake).
            let reserved = KafkaConfiguration.reservedProperties
                .merging(KafkaEventSource<DemoUser>.Configuration.reservedProperties) { first, _ in first }
                .merging(KafkaEventSink<DemoUser>.Configuration.reservedProperties) { first, _ in first }
            if let reason = reserved[name] {
                throw ValidationError("--kafka-property \(name)=… is not allowed: DeltaKit sets it itself; \(reason)")
            }
        }
    }

    func configuration() throws -> KafkaConfiguration {
        var extra: [String: String] = [:]
        for item in kafkaProperties {
            guard let eq = item.firstIndex(of: "=") else {
                throw ValidationError("--kafka-property must be key=value, got '\(item)'")
            }
            extra[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        return .userEvents(brokers: brokers, connectTimeout: connectTimeout, additionalProperties: extra)
    }
}

extension KafkaConfiguration {
    /// The CLI's Kafka settings from a comma-separated `--brokers` value.
    static func userEvents(brokers: String, connectTimeout: Int, additionalProperties: [String: String] = [:]) -> Self {
        KafkaConfiguration(
            bootstrapServers: brokers.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) },
            clientID: "user-events",
            connectTimeout: .seconds(connectTimeout),
            additionalProperties: additionalProperties
        )
    }
}

extension RisingWavePipeline where Record == DemoUser {
    /// The CLI's objects for a topic, named after it so that two topics never share them: the source is
    /// `<stem>_events` and the view `latest_<stem>_state`, where the stem is the topic with `-` written `_`
    /// (`orders` gives `orders_events` and `latest_orders_state`). The demo's topic `user-events` keeps the
    /// original demo's names, `user_events` and `latest_user_state`.
    ///
    /// The mapping is one-to-one: it takes topics of lower-case letters and digits in words joined by single `-`,
    /// starting with a letter, of at most 41 characters (the longest derived name, `latest_<stem>_state_progress`,
    /// then fits RisingWave's 63). Any other topic (`a.b`, `a_b`, `A_B`, `a--b`, `1a` would share names with
    /// `a-b` or another topic) and the topic `user` (it would share the demo's names) are refused, saying to use
    /// such a topic or to create the pipeline in code with explicit `sourceName` and `viewName`.
    static func userEvents(topic: String, bootstrapServers: String = "localhost:9092") throws -> Self {
        try KafkaTopicName.validate(topic)
        let stem: String
        if topic == "user-events" {
            stem = "user"
        } else {
            let words = topic.split(separator: "-", omittingEmptySubsequences: false)
            let isWord: (Substring) -> Bool = { word in
                !word.isEmpty && word.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
            }
            guard words.allSatisfy(isWord), let first = topic.unicodeScalars.first, ("a"..."z").contains(first),
                topic.unicodeScalars.count <= 41, topic != "user"
            else {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "the CLI cannot name RisingWave objects after topic '\(topic)' without sharing them with another topic: its names take topics of lower-case letters and digits in words joined by single '-', starting with a letter, at most 41 characters, and not 'user' (the demo's user-events has those names; 'a.b', 'a_b' and 'A_B' would all be 'a_b'); use such a topic, or create the pipeline in code with explicit sourceName and viewName"
                )
            }
            stem = topic.replacingOccurrences(of: "-", with: "_")
        }
        return try RisingWavePipeline(
            configuration: .init(
                topic: topic,
                bootstrapServers: bootstrapServers,
                sourceName: stem + "_events",
                viewName: "latest_\(stem)_state"
            )
        )
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, csv, json
}

/// `--connect-timeout` is whole seconds, 1…3600.
func validateConnectTimeout(_ seconds: Int) throws {
    guard (1...3600).contains(seconds) else {
        throw ValidationError("--connect-timeout must be 1…3600 seconds, got \(seconds)")
    }
}

/// `--brokers` is a comma-separated list of host:port, checked before touching the network.
func validateBrokers(_ brokers: String) throws {
    let configuration = KafkaConfiguration.userEvents(brokers: brokers, connectTimeout: 10)
    do {
        try configuration.validate()
    } catch let error as DeltaKitError {
        throw ValidationError("--brokers: \(error.message)")
    }
}

struct GeneratorOptions: ParsableArguments {
    // Numbers are parsed `.unconditional`ly, so `--count -5` is the value -5 (refused with the allowed range), not
    // an unknown option `-5` that leaves `--count` without a value.
    @Option(parsing: .unconditional, help: "How many events to send (0…100,000,000).")
    var count = 100

    @Option(parsing: .unconditional, help: "Random seed (the same seed gives the same events). Default: random.")
    var seed: UInt64?

    @Option(
        parsing: .unconditional,
        help:
            "Pause between events, in decimal seconds or with a unit: 0 (default), 0.5, 500ms, 1s (the original demo), 2m; at most 1 hour."
    )
    var interval: IntervalArgument = IntervalArgument(duration: .zero)

    var resolvedSeed: UInt64 { seed ?? UInt64.random(in: 0...UInt64(UInt32.max)) }

    func validate() throws {
        guard (0...100_000_000).contains(count) else {
            throw ValidationError("--count must be 0…100,000,000, got \(count)")
        }
        if let invalid = interval.invalid {
            throw ValidationError(
                "--interval must be a decimal number of seconds, optionally with a unit (0.5, 500ms, 2s, 2m), at most 1 hour; got '\(invalid)'"
            )
        }
    }
}

struct IntervalArgument: ExpressibleByArgument {
    var duration: Duration
    /// The argument as given when it is not an interval (``GeneratorOptions/validate()`` refuses it, naming it).
    var invalid: String?

    init(duration: Duration) { self.duration = duration }

    /// Plain decimal digits (`0`, `1.5`), optionally followed by a unit (`ms`, `s`, `m`); 0…1 hour. Anything else
    /// — hexadecimal `0x10`, an exponent `1e3`, `inf`, a sign — is kept as ``invalid``, for a usage error that
    /// says what is accepted (`Double(_:)` alone would read `0x10` as 16 seconds).
    init?(argument: String) {
        duration = .zero
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        var factor = 1.0
        var number = Substring(text)
        for (suffix, unit) in [("ms", 0.001), ("s", 1.0), ("m", 60.0)] where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            factor = unit
            break
        }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard !number.isEmpty, parts.count <= 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
            let value = Double(number), value * factor <= 3600
        else {
            invalid = argument
            return
        }
        duration = .milliseconds(Int64((value * factor * 1000).rounded()))
    }

    var defaultValueDescription: String { duration == .zero ? "0" : "\(duration)" }

    static var defaultCompletionKind: CompletionKind { .default }
}

extension Character {
    /// `0`…`9` only (`isNumber` also accepts other scripts' digits and fractions).
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// Runs `body`, turning DeltaKit errors into one line on stderr and exit code 1 — never a stack trace. The
/// library's message says what failed; the CLI adds, on its own line, what to do about it with this tool.
/// Output that cannot be written (``OutputError``, thrown or kept by ``Console/report(_:)``) ends the command
/// the same way, with its line on the stream that still works; when neither does, exit 1 silently.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
        try Console.checkReported()
        // What went through Swift's `print` (buffered by the C library) must reach the stream too.
        if fflush(nil) != 0 { throw OutputError(stream: .standardOutput, code: errno) }
    } catch let error as OutputError {
        Console.reportFailure(error)
        throw ExitCode(1)
    } catch let error as DeltaKitError {
        var lines = ["error: \(error.message)"]
        if let hint = hint(for: error) { lines.append("hint: \(hint)") }
        Console.reportFailure(lines)
        throw ExitCode(1)
    } catch let error as RisingWaveDecodingError {
        Console.reportFailure(["error: \(error)"])
        throw ExitCode(1)
    }
}

/// The command-line advice for a library error, if there is any.
func hint(for error: DeltaKitError) -> String? {
    switch error.code {
    case .connectionFailed where error.message.contains("too old"):
        return
            "install librdkafka 2.2 or newer (or load one with LD_LIBRARY_PATH, as scripts/test does with the confluent-kafka wheel's)"
    case .connectionFailed where (error.underlying as? KafkaError)?.isAuthenticationFailure == true:
        return
            "check the SASL settings passed with --kafka-property (security.protocol, sasl.mechanisms, sasl.username, sasl.password) against what the broker accepts"
    case .connectionFailed where error.underlying is RisingWaveError:
        return "start RisingWave (`docker compose up -d` starts the demo's) or pass its URL with --risingwave"
    case .connectionFailed:
        return "start Kafka (`docker compose up -d` starts the demo's) or pass its address with --brokers"
    case .incompatibleStore where error.underlying is TopicLogChanged:
        return
            "rebuild the state from the topic's beginning: `UserEvents materialize --state FILE --rebuild` for a state file; run watch/snapshot --brokers again"
    case .incompatibleStore:
        return
            "point --state at the file of this topic, or delete the file and run `UserEvents materialize` to rebuild it"
    case .storageFailed where (error.underlying as? SQLiteFailure)?.isCorruptFile == true:
        return
            "the --state file is corrupt or not a state file; it is never replaced: move it away and run `UserEvents materialize` to rebuild it from the topic"
    case .invalidConfiguration where error.message.contains("does not exist on"):
        return "produce to the topic first (`UserEvents produce --brokers …`) or check --topic"
    default:
        return nil
    }
}

extension SQLiteFailure {
    /// SQLite said the file is corrupt (`SQLITE_CORRUPT`, 11) or not a database (`SQLITE_NOTADB`, 26): the only
    /// storage failures that moving the file away fixes (a directory, missing permissions or a full disk are not).
    var isCorruptFile: Bool { [11, 26].contains(code & 0xFF) }
}
