import ArgumentParser
import Logging

/// `--verbose`, for every command.
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

/// `--format`, for the commands that print state or events.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, csv, json
}

/// `--connect-timeout` is whole seconds, 1…3600.
func validateConnectTimeout(_ seconds: Int) throws {
    guard (1...3600).contains(seconds) else {
        throw ValidationError("--connect-timeout must be 1…3600 seconds, got \(seconds)")
    }
}
