import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave
import DeltaKitSQLite
import Foundation

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

/// The command-line advice for a library error, if there is any: chosen by the error's code and the code or
/// type of its `underlying` error, never by its message.
func hint(for error: DeltaKitError) -> String? {
    let kafka = error.underlying as? KafkaError
    switch error.code {
    case .connectionFailed where kafka?.code == .unsupportedFeature:
        return
            "install librdkafka 2.2 or newer (or load one with LD_LIBRARY_PATH, as scripts/test does with the confluent-kafka wheel's)"
    case .connectionFailed where kafka?.isAuthenticationFailure == true:
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
    case .invalidConfiguration where kafka?.code == .unknownTopic:
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
