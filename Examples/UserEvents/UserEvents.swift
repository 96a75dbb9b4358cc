import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave
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
            143 terminated (SIGTERM).
            """,
        subcommands: [
            Demo.self, Produce.self, Provision.self, Materialize.self, Snapshot.self, History.self, Watch.self,
        ],
        defaultSubcommand: Demo.self
    )
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

    @Option(help: "Seconds to wait for a broker before giving up (1…3600).")
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
            if item[..<eq] == "bootstrap.servers" {
                throw ValidationError(
                    "--kafka-property bootstrap.servers=… is not allowed; pass the brokers with --brokers"
                )
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
    @Option(help: "How many events to send (0…100,000,000).")
    var count = 100

    @Option(help: "Random seed (the same seed gives the same events). Default: random.")
    var seed: UInt64?

    @Option(help: "Pause between events: 0 (default), 500ms, 1s (the original demo), 2m; at most 1 hour.")
    var interval: IntervalArgument = IntervalArgument(duration: .zero)

    var resolvedSeed: UInt64 { seed ?? UInt64.random(in: 0...UInt64(UInt32.max)) }

    func validate() throws {
        guard (0...100_000_000).contains(count) else {
            throw ValidationError("--count must be 0…100,000,000, got \(count)")
        }
    }
}

struct IntervalArgument: ExpressibleByArgument {
    var duration: Duration
    init(duration: Duration) { self.duration = duration }

    /// A number of seconds, or with a unit (`ms`, `s`, `m`); finite, 0…1 hour. Anything else is a usage error.
    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        var factor = 1.0
        var number = Substring(text)
        for (suffix, unit) in [("ms", 0.001), ("s", 1.0), ("m", 60.0)] where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            factor = unit
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * factor <= 3600 else { return nil }
        duration = .milliseconds(Int64((value * factor * 1000).rounded()))
    }

    var defaultValueDescription: String { duration == .zero ? "0" : "\(duration)" }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// Runs `body`, turning DeltaKit errors into one line on stderr and exit code 1 — never a stack trace. The
/// library's message says what failed; the CLI adds, on its own line, what to do about it with this tool.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as DeltaKitError {
        var text = "error: \(error.message)\n"
        if let hint = hint(for: error) { text += "hint: \(hint)\n" }
        FileHandle.standardError.write(Data(text.utf8))
        throw ExitCode(1)
    } catch let error as RisingWaveDecodingError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// The command-line advice for a library error, if there is any.
func hint(for error: DeltaKitError) -> String? {
    switch error.code {
    case .connectionFailed where error.message.contains("too old"):
        return
            "install librdkafka 2.2 or newer (or load one with LD_LIBRARY_PATH, as scripts/test does with the confluent-kafka wheel's)"
    case .connectionFailed where error.underlying is RisingWaveError:
        return "start RisingWave (`docker compose up -d` starts the demo's) or pass its URL with --risingwave"
    case .connectionFailed:
        return "start Kafka (`docker compose up -d` starts the demo's) or pass its address with --brokers"
    case .incompatibleStore:
        return
            "point --state at the file of this topic, or delete the file and run `UserEvents materialize` to rebuild it"
    case .storageFailed:
        return "check the --state file: a corrupt file is never replaced; move it away to rebuild it from the topic"
    case .invalidConfiguration where error.message.contains("does not exist on"):
        return "produce to the topic first (`UserEvents produce --brokers …`) or check --topic"
    default:
        return nil
    }
}

func printLine(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
