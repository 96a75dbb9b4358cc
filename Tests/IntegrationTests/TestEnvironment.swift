import DeltaKit
import Foundation
import Testing

/// Service addresses exported by `scripts/test`. Without them the integration tests are skipped with a
/// message saying how to run them; when `CI` is set, a missing service fails the run instead.
enum TestEnvironment {
    static let howToRun =
        "run `bash scripts/test` (it installs and starts Tansu and PostgreSQL), or export DELTAKIT_KAFKA_BROKERS / DELTAKIT_POSTGRES_URL"

    static var isCI: Bool {
        let value = ProcessInfo.processInfo.environment["CI"] ?? ""
        return !value.isEmpty && value != "0" && value.lowercased() != "false"
    }

    static var kafkaBrokers: String? { nonEmpty("DELTAKIT_KAFKA_BROKERS") }
    static var postgresURL: String? { nonEmpty("DELTAKIT_POSTGRES_URL") }

    /// Enabled when Kafka is configured — or always in CI, so that a missing broker fails instead of skipping.
    static var kafkaEnabled: Bool { kafkaBrokers != nil || isCI }
    static var postgresEnabled: Bool { postgresURL != nil || isCI }

    /// The brokers, or a recorded failure (in CI) naming what is missing.
    static func requireKafka() throws -> String {
        try #require(
            kafkaBrokers,
            "DELTAKIT_KAFKA_BROKERS is not set but CI is: the Kafka integration tests must run; \(howToRun)"
        )
    }

    static func requirePostgres() throws -> String {
        try #require(
            postgresURL,
            "DELTAKIT_POSTGRES_URL is not set but CI is: the PostgreSQL integration tests must run; \(howToRun)"
        )
    }

    private static func nonEmpty(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// A topic name no other test uses.
    static func uniqueTopic(_ prefix: String = "deltakit-test") -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

extension Trait where Self == ConditionTrait {
    /// Skips (outside CI) when no Kafka broker is configured.
    static var requiresKafka: Self {
        .enabled(if: TestEnvironment.kafkaEnabled, "needs a Kafka broker: \(TestEnvironment.howToRun)")
    }
    /// Skips (outside CI) when no PostgreSQL is configured.
    static var requiresPostgres: Self {
        .enabled(if: TestEnvironment.postgresEnabled, "needs PostgreSQL: \(TestEnvironment.howToRun)")
    }
}
