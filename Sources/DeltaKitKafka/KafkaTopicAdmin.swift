import DeltaKit
public import Logging

/// Topic administration and connectivity checks (the demo's `ensure_topic`).
public struct KafkaTopicAdmin: Sendable {
    private let configuration: KafkaConfiguration
    private let handle: RdKafkaHandle

    /// The librdkafka version loaded at run time (`rd_kafka_version_str()`).
    public static var librdkafkaVersion: String { RdKafka.versionString }
    private let callbacks: RdKafkaCallbacks

    /// Creates an admin client. It connects lazily, on the first call.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) with
    ///   librdkafka's message when a property is unknown or invalid.
    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "deltakit.kafka.admin")) throws {
        try configuration.validate()
        self.configuration = configuration
        var properties = configuration.properties
        properties.append(contentsOf: configuration.additionalProperties.sorted { $0.key < $1.key })
        let callbacks = RdKafkaCallbacks(logger: logger)
        self.callbacks = callbacks
        self.handle = try RdKafkaHandle(kind: .producer, properties: properties, callbacks: callbacks)
    }

    /// Administers through an existing producer handle (a sink creates its topic on its own connection instead of
    /// opening a second client).
    init(handle: RdKafkaHandle, configuration: KafkaConfiguration, callbacks: RdKafkaCallbacks) {
        self.configuration = configuration
        self.handle = handle
        self.callbacks = callbacks
    }

    /// Checks that a broker answers within ``KafkaConfiguration/connectTimeout`` and returns the number of brokers.
    ///
    /// - Throws: `DeltaKitError` with code `connectionFailed` naming
    ///   the servers and the fix.
    @discardableResult
    public func checkConnection() async throws -> Int {
        try await metadataCall { handle, timeout in try handle.clusterMetadata(timeoutMs: timeout).brokers }
    }

    /// The topics the cluster knows.
    public func topics() async throws -> [String] {
        try await metadataCall { handle, timeout in try handle.clusterMetadata(timeoutMs: timeout).topics.sorted() }
    }

    /// The partition ids of `topic`, or `nil` if it does not exist.
    public func partitions(of topic: String) async throws -> [Int32]? {
        try await metadataCall { handle, timeout in try handle.partitions(of: topic, timeoutMs: timeout) }
    }

    /// Creates `topic` if it does not exist yet; idempotent. Returns `true` when this call created it.
    ///
    /// - Parameters:
    ///   - topic: A valid Kafka topic name (letters, digits, `.`, `_`, `-`; at most 249 characters).
    ///   - partitions: Partition count. Default: 4.
    ///   - replicationFactor: Replicas per partition. Default: 1 (use 3 in production).
    ///   - config: Topic configuration, e.g. `["cleanup.policy": "compact"]`. Default: empty.
    @discardableResult
    public func ensureTopic(
        _ topic: String,
        partitions: Int = 4,
        replicationFactor: Int = 1,
        config: [String: String] = [:]
    ) async throws -> Bool {
        try KafkaTopicName.validate(topic)
        try Self.validateTopicCounts(partitions: partitions, replicationFactor: replicationFactor)
        let handle = self.handle
        let timeout = configuration.connectTimeout.int32Milliseconds(minimum: 100)
        do {
            return try await BlockingCalls.run {
                try handle.createTopic(
                    topic,
                    partitions: Int32(clamping: partitions),
                    replicationFactor: Int32(clamping: replicationFactor),
                    config: config,
                    timeoutMs: timeout
                )
            }
        } catch let error as KafkaError {
            if [.transport, .timedOut, .allBrokersDown].contains(error.code) {
                throw unreachable(error)
            }
            throw DeltaKitError(
                code: .rejected,
                message: "cannot create topic '\(topic)' on \(configuration.serversDescription): \(error.message)",
                underlying: error
            )
        }
    }

    /// Runs a blocking metadata call on the shared blocking queue; a librdkafka failure means no broker answered.
    private func metadataCall<T: Sendable>(
        _ body: @escaping @Sendable (RdKafkaHandle, Int32) throws -> T
    ) async throws -> T {
        let handle = self.handle
        let timeout = configuration.connectTimeout.int32Milliseconds(minimum: 100)
        do {
            return try await BlockingCalls.run { try body(handle, timeout) }
        } catch let error as KafkaError {
            throw unreachable(error)
        }
    }

    /// A new topic's counts: 1…100,000 partitions, a replication factor of 1…32,767 (Kafka's `int16`).
    static func validateTopicCounts(partitions: Int, replicationFactor: Int) throws {
        try DeltaKitError.check(partitions, in: 1...100_000, "partitions")
        try DeltaKitError.check(replicationFactor, in: 1...Int(Int16.max), "replicationFactor")
    }

    private func unreachable(_ error: KafkaError) -> DeltaKitError {
        DeltaKitError.kafkaUnreachable(configuration, error, callbacks: callbacks)
    }
}

extension DeltaKitError {
    /// The error for a connect that failed, from what the client's callbacks saw: an authentication failure
    /// librdkafka reported, or the last problem it logged.
    static func kafkaUnreachable(
        _ configuration: KafkaConfiguration,
        _ error: KafkaError,
        callbacks: RdKafkaCallbacks
    ) -> DeltaKitError {
        if let refused = callbacks.authenticationFailure {
            return kafkaRefusedAuthentication(configuration, refused)
        }
        return kafkaUnreachable(configuration, error, librdkafkaSaid: callbacks.lastProblem)
    }

    /// The error for a broker that answered but refused to authenticate the client: it names the security
    /// protocol, the SASL mechanism and the user (never the password), and carries librdkafka's error
    /// (`KafkaError.Code.authentication` or `.saslAuthenticationFailed`) as `underlying`.
    static func kafkaRefusedAuthentication(_ configuration: KafkaConfiguration, _ refused: KafkaError) -> DeltaKitError
    {
        let extra = configuration.additionalProperties
        let mechanism =
            configuration.security.saslMechanism ?? extra["sasl.mechanisms"] ?? extra["sasl.mechanism"]
            ?? "GSSAPI (librdkafka's default)"
        let user = (configuration.security.saslUsername ?? extra["sasl.username"]).map { ", user '\($0)'" } ?? ""
        let securityProtocol = extra["security.protocol"] ?? configuration.security.protocol.rawValue
        return DeltaKitError(
            code: .connectionFailed,
            message:
                "authentication failed: the Kafka broker at \(configuration.serversDescription) refused the client (security.protocol \(securityProtocol), SASL mechanism \(mechanism)\(user); librdkafka \(refused.name): \(refused.message)); check the user name, the password and the mechanism the broker accepts",
            underlying: refused
        )
    }

    /// The error for a connect that failed; `librdkafkaSaid` is the last problem librdkafka logged, which tells
    /// "nobody answered" apart from "the broker answered but this librdkafka could not talk to it".
    static func kafkaUnreachable(
        _ configuration: KafkaConfiguration,
        _ error: KafkaError,
        librdkafkaSaid: String? = nil
    ) -> DeltaKitError {
        if let said = librdkafkaSaid, said.contains("ApiVersionRequest failed") {
            return DeltaKitError(
                code: .connectionFailed,
                message:
                    "the broker at \(configuration.serversDescription) answered, but librdkafka \(RdKafka.versionString) could not negotiate with it (librdkafka: \(said)); this librdkafka is too old for this broker: use librdkafka 2.2 or newer",
                underlying: RdKafka.error(.unsupportedFeature, message: said)
            )
        }
        let detail = librdkafkaSaid.map { "; last: \($0)" } ?? ""
        return DeltaKitError(
            code: .connectionFailed,
            message:
                "no Kafka broker answered at \(configuration.serversDescription) within \(configuration.connectTimeout) (librdkafka: \(error.message)\(detail)); check that a broker runs there and that the address is right",
            underlying: error
        )
    }
}
