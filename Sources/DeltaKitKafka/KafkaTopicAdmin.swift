import DeltaKit
public import Logging

/// Topic administration and connectivity checks (the demo's `ensure_topic`).
public struct KafkaTopicAdmin: Sendable {
    private let configuration: KafkaConfiguration
    private let handle: RdKafkaHandle

    /// The librdkafka version loaded at run time (`rd_kafka_version_str()`).
    public static var librdkafkaVersion: String { RdKafka.versionString }

    /// Creates an admin client. It connects lazily, on the first call.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the setting that is out of range, or with
    ///   librdkafka's message when a property is unknown or invalid.
    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "deltakit.kafka.admin")) throws {
        self.configuration = configuration
        self.handle = try RdKafkaHandle.client(.producer, configuration, logger: logger)
    }

    /// Administers through an existing producer handle (a sink creates its topic on its own connection instead of
    /// opening a second client).
    init(handle: RdKafkaHandle, configuration: KafkaConfiguration) {
        self.configuration = configuration
        self.handle = handle
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
        DeltaKitError.kafkaUnreachable(configuration, error, callbacks: handle.callbacks)
    }
}
