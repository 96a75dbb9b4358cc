import DeltaKit
import Foundation

extension KafkaEventSink {
    /// Producer settings for an ordered, loss-free change stream. Every property has a documented default.
    public struct Configuration: Sendable {
        /// The cluster. Default: `KafkaConfiguration()` (`localhost:9092`).
        public var kafka: KafkaConfiguration
        /// The topic events go to. Required: a library has no default topic.
        public var topic: String
        /// Idempotent producer (`enable.idempotence`): no duplicates from retries, per-partition order kept.
        /// Default: `true`.
        public var idempotence: Bool
        /// Acknowledgements required from the broker (`acks`). Default: ``Acks/all``.
        public var acks: Acks
        /// How many produce requests may await their response on one broker connection
        /// (`max.in.flight.requests.per.connection`). Default: 1.
        ///
        /// With more than one, a partition's next batch can be on its way while an earlier one fails and is retried.
        /// If the broker then accepts the later batch, librdkafka reports the earlier one delivered as well ("implicitly
        /// acknowledged", with no offset) — sound only on a broker that enforces the idempotent producer's sequence
        /// numbers (Kafka does; librdkafka's mock cluster does not, for a producer without a transactional id, and
        /// there such an event was acknowledged but never written). With 1, every acknowledgement answers the
        /// request that carried the event. Each request still carries up to ``batchMessages`` events per partition,
        /// so the cost is one round trip between requests to a broker. At most 5 with ``idempotence``.
        public var maxInFlightRequests: Int
        /// How long to wait to fill a batch (`linger.ms`). Default: 5 ms. ``KafkaEventSink/flush()`` and
        /// ``KafkaEventSink/close()`` do not wait for it: they send what is lingering at once. Nor do the batches
        /// of an outbox relay (DeltaKitOutbox), which waits for their acknowledgements and nothing else: each is
        /// sent as soon as its last message is enqueued.
        public var linger: Duration
        /// Maximum batch size in bytes (`batch.size`). Default: 1,000,000.
        public var batchBytes: Int
        /// Maximum messages per batch (`batch.num.messages`). Default: 10,000.
        public var batchMessages: Int
        /// Compression codec (`compression.codec`). Default: ``Compression/none``.
        public var compression: Compression
        /// How long an event may take to be acknowledged, retries included (`message.timeout.ms`);
        /// past it the event fails and the sink stops. Default: 120 seconds.
        public var messageTimeout: Duration
        /// Key → partition mapping (`partitioner`). Default: ``Partitioner/murmur2Random``, the Java client's, so
        /// every client puts a key on the same partition.
        public var partitioner: Partitioner
        /// Local queue bound in messages (`queue.buffering.max.messages`); a full queue suspends senders.
        /// Default: 100,000.
        public var queueMaxMessages: Int
        /// How long ``KafkaEventSink/close()`` (and graceful shutdown) waits for outstanding deliveries before
        /// purging them and reporting them as failed. Default: 30 seconds.
        public var shutdownTimeout: Duration
        /// When set, the sink creates its topic (if missing) with these settings on start. Default: `nil`.
        public var createTopic: TopicSettings?
        /// Follow every delete event with a Kafka tombstone: a message with the same key, a null value and the
        /// delete's order and timestamp in the headers ``tombstoneOrderHeader`` and ``tombstoneTimestampHeader``.
        /// On a compacted topic (``TopicSettings/compacted(partitions:replicationFactor:)``) the broker then drops
        /// a deleted key's older messages, and later the tombstone itself, so the topic stays O(live keys) and a
        /// rebuild reads only that. ``KafkaEventSource`` reads a tombstone as the delete it stands for.
        ///
        /// Default: `false`, because RisingWave's `FORMAT PLAIN ENCODE JSON` source reads a tombstone as a row
        /// whose JSON columns are all NULL (DeltaKit's views ignore it; a raw `SELECT` on the source shows it):
        /// see `Documentation/embedded-table.md`.
        public var sendsTombstones: Bool

        /// Creates a configuration.
        public init(
            kafka: KafkaConfiguration = KafkaConfiguration(),
            topic: String,
            idempotence: Bool = true,
            acks: Acks = .all,
            maxInFlightRequests: Int = 1,
            linger: Duration = .milliseconds(5),
            batchBytes: Int = 1_000_000,
            batchMessages: Int = 10_000,
            compression: Compression = .none,
            messageTimeout: Duration = .seconds(120),
            partitioner: Partitioner = .murmur2Random,
            queueMaxMessages: Int = 100_000,
            shutdownTimeout: Duration = .seconds(30),
            createTopic: TopicSettings? = nil,
            sendsTombstones: Bool = false
        ) {
            self.kafka = kafka
            self.topic = topic
            self.idempotence = idempotence
            self.acks = acks
            self.maxInFlightRequests = maxInFlightRequests
            self.linger = linger
            self.batchBytes = batchBytes
            self.batchMessages = batchMessages
            self.compression = compression
            self.messageTimeout = messageTimeout
            self.partitioner = partitioner
            self.queueMaxMessages = queueMaxMessages
            self.shutdownTimeout = shutdownTimeout
            self.createTopic = createTopic
            self.sendsTombstones = sendsTombstones
        }

        /// The header of a tombstone that carries the delete's `event_order` (decimal ASCII).
        public static var tombstoneOrderHeader: String { "deltakit-order" }
        /// The header of a tombstone that carries the delete's `ts` (the wire format's ISO-8601 text).
        public static var tombstoneTimestampHeader: String { "deltakit-ts" }

        /// Broker acknowledgement level.
        public enum Acks: String, Sendable {
            /// The leader waits for all in-sync replicas (`-1`).
            case all = "all"
            /// Only the leader (`1`). Not allowed with idempotence.
            case leader = "1"
            /// No acknowledgement (`0`). Not allowed with idempotence.
            case none = "0"
        }

        /// librdkafka's partitioners: how a message's key picks its partition.
        public enum Partitioner: String, Sendable {
            /// murmur2 of the key, random for a message without a key: what Kafka's Java client does.
            case murmur2Random = "murmur2_random"
            /// murmur2 of the key; a message without a key always goes to the same partition.
            case murmur2 = "murmur2"
            /// CRC32 of the key, random for an empty key or none: librdkafka's own default.
            case consistentRandom = "consistent_random"
            /// CRC32 of the key; messages with an empty key or none all go to the same partition.
            case consistent = "consistent"
            /// FNV-1a of the key, random for a message without a key: what Sarama (Go) does.
            case fnv1aRandom = "fnv1a_random"
            /// FNV-1a of the key; a message without a key always goes to the same partition.
            case fnv1a = "fnv1a"
            /// A random partition, whatever the key: events of one key lose their order.
            case random = "random"
        }

        /// Compression codecs.
        public enum Compression: String, Sendable {
            /// No compression.
            case none, gzip, snappy, lz4, zstd
        }

        /// Settings for creating the topic.
        public struct TopicSettings: Sendable {
            /// Partition count. Default: 4.
            public var partitions: Int
            /// Replication factor. Default: 1.
            public var replicationFactor: Int
            /// Topic configuration. Default: empty.
            public var config: [String: String]
            /// Creates topic settings.
            public init(partitions: Int = 4, replicationFactor: Int = 1, config: [String: String] = [:]) {
                self.partitions = partitions
                self.replicationFactor = replicationFactor
                self.config = config
            }

            /// Settings for a compacted topic (`cleanup.policy=compact`): the broker keeps the newest message per
            /// key, so with ``Configuration/sendsTombstones`` a topic stays O(live keys). A compacted topic keeps
            /// no history of older events (a RisingWave *source* over it shows only what is left).
            public static func compacted(partitions: Int = 4, replicationFactor: Int = 1) -> TopicSettings {
                TopicSettings(
                    partitions: partitions,
                    replicationFactor: replicationFactor,
                    config: ["cleanup.policy": "compact"]
                )
            }

            /// Checks the counts: 1…100,000 partitions, a replication factor of 1…32,767.
            func validate() throws {
                try KafkaTopicAdmin.validateTopicCounts(partitions: partitions, replicationFactor: replicationFactor)
            }
        }

        /// Checks every value (and ``kafka``'s), naming the first that is out of range; called by
        /// ``KafkaEventSink/init(configuration:logger:metricsFactory:)``.
        ///
        /// Ranges are librdkafka's: `maxInFlightRequests` 1…5 with idempotence (1…1,000,000 without), `linger` 0…900 s, `batchBytes` 1…2,147,483,647, `batchMessages` 1…1,000,000,
        /// `queueMaxMessages` 1…2,147,483,647, `messageTimeout` 0…2,147,483,647 ms (0 = no limit);
        /// `shutdownTimeout` 0…24 days; a created topic has 1…100,000 partitions and a replication factor of 1…32,767;
        /// ``reservedProperties`` are refused in `kafka.additionalProperties`.
        public func validate() throws {
            try kafka.validate()
            try kafka.checkReserved(Self.reservedProperties, by: "KafkaEventSink")
            try KafkaTopicName.validate(topic)
            try DeltaKitError.check(maxInFlightRequests, in: 1...(idempotence ? 5 : 1_000_000), "maxInFlightRequests")
            try DeltaKitError.check(linger, in: .zero ... .seconds(900), "linger")
            try DeltaKitError.check(batchBytes, in: 1...Int(Int32.max), "batchBytes")
            try DeltaKitError.check(batchMessages, in: 1...1_000_000, "batchMessages")
            try DeltaKitError.check(queueMaxMessages, in: 1...Int(Int32.max), "queueMaxMessages")
            try DeltaKitError.check(messageTimeout, in: .zero ... .milliseconds(Int32.max), "messageTimeout")
            try DeltaKitError.check(shutdownTimeout, in: .zero ... .seconds(24 * 86_400), "shutdownTimeout")
            if let createTopic { try createTopic.validate() }
            if idempotence && acks != .all {
                throw DeltaKitError.invalidValue("acks", acks.rawValue, allowed: "all when idempotence is on")
            }
        }

        /// The librdkafka properties the sink sets from its own settings, each with the reason (besides
        /// `KafkaConfiguration.reservedProperties`): ``validate()`` refuses them in `kafka.additionalProperties`,
        /// where they would bypass the check that idempotence needs `acks=all`.
        public static var reservedProperties: [String: String] {
            [
                "enable.idempotence": "it is set from idempotence, checked together with acks",
                "acks": "it is set from acks, checked together with idempotence",
                "request.required.acks": "it is an alias of acks, set from acks",
            ]
        }
    }
}

extension KafkaEventSink.Configuration: KafkaClientSettings {
    /// The producer's own librdkafka properties, from the settings above.
    var clientProperties: [(String, String)] {
        [
            ("enable.idempotence", idempotence ? "true" : "false"),
            ("acks", acks.rawValue),
            ("max.in.flight.requests.per.connection", String(maxInFlightRequests)),
            ("linger.ms", String(linger.milliseconds())),
            ("batch.size", String(batchBytes)),
            ("batch.num.messages", String(batchMessages)),
            ("compression.codec", compression.rawValue),
            ("message.timeout.ms", String(messageTimeout.milliseconds())),
            ("partitioner", partitioner.rawValue),
            ("queue.buffering.max.messages", String(queueMaxMessages)),
        ]
    }

    /// ``validate()``, and the record type's schema (every event is encoded with it).
    func check() throws {
        try validate()
        _ = try Record.schema
    }
}
