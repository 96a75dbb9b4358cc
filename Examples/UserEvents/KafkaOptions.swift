import ArgumentParser
import DeltaKit
import DeltaKitKafka
import Foundation

/// `--brokers`, `--topic`, `--connect-timeout` and `--kafka-property`, for the commands that talk to Kafka.
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

/// `--brokers` is a comma-separated list of host:port, checked before touching the network.
func validateBrokers(_ brokers: String) throws {
    let configuration = KafkaConfiguration.userEvents(brokers: brokers, connectTimeout: 10)
    do {
        try configuration.validate()
    } catch let error as DeltaKitError {
        throw ValidationError("--brokers: \(error.message)")
    }
}
