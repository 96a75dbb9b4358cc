import DeltaKit
import Logging

/// Produces raw messages — a malformed message's key and value, copied to a source's dead-letter topic — through
/// the machinery of ``KafkaEventSink`` (``SinkCore``): each send returns once the broker acknowledged the message,
/// a full local queue suspends the sender and never fails it, and the first failed delivery stops the producer.
final class RawMessageSink: Sendable {
    /// The topic messages go to.
    let topic: String
    private let core: SinkCore

    /// The producer's settings: every message is acknowledged by all in-sync replicas, written once, and sent at
    /// once (a dead letter is awaited before its source moves on, so there is nothing to batch).
    struct Settings: KafkaClientSettings {
        var kafka: KafkaConfiguration
        var clientProperties: [(String, String)] {
            [
                ("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "0"),
                // As `KafkaEventSink.Configuration.maxInFlightRequests`: every acknowledgement answers the
                // request that carried the message.
                ("max.in.flight.requests.per.connection", "1"),
            ]
        }
        func check() throws { try kafka.validate() }
    }

    /// Creates the producer for `topic` and starts polling; it connects on the first send.
    init(kafka: KafkaConfiguration, topic: String, logger: Logger) throws {
        try KafkaTopicName.validate(topic)
        let handle = try RdKafkaHandle.client(.producer, Settings(kafka: kafka), logger: logger)
        self.topic = topic
        self.core = SinkCore(
            handle: handle,
            topic: topic,
            wording: .init(
                name: "the dead-letter producer for '\(topic)'",
                message: "dead-letter message",
                recovery: "create a new source: the malformed message was not acknowledged, so it is read again"
            ),
            // A dead letter in flight when its source closes is waited for as long as a connect; after that it
            // is purged and its send fails, so its malformed message is never acknowledged.
            shutdownTimeout: kafka.connectTimeout,
            logger: logger,
            metrics: nil,
            threadName: "deltakit-kafka-dlq"
        )
    }

    deinit { core.abandon() }

    /// Sends one message (`key` `nil`: none) and returns once the broker acknowledged it.
    ///
    /// - Throws: `DeltaKitError` — `deliveryFailed` when it was not acknowledged, `closed` once the producer
    ///   stopped after a failure or was closed.
    func send(key: [UInt8]?, value: [UInt8]) async throws {
        _ = try await core.send(count: 1) { _, messages in messages.append(key: key, value: value) }
    }

    /// How often a sender waited because librdkafka's queue was full (for tests).
    var queueFullWaits: Int { core.queueFullWaits }

    /// Waits for the messages in flight (purging them after the shutdown timeout) and stops polling.
    ///
    /// - Throws: `deliveryFailed` when messages had to be purged.
    func close() async throws {
        try await core.close()
    }
}
