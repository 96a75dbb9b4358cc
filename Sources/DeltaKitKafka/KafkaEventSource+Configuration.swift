import DeltaKit
import Foundation

extension KafkaEventSource {
    /// Consumer settings. Every property has a documented default.
    public struct Configuration: Sendable {
        /// The cluster. Default: `KafkaConfiguration()` (`localhost:9092`).
        public var kafka: KafkaConfiguration
        /// The topic to read. Required: a library has no default topic.
        public var topic: String
        /// The consumer group (`group.id`). With a group, partitions are balanced across its members and
        /// acknowledged offsets are committed, so a restarted member resumes after its last commit and sees
        /// only its share of the partitions. `nil` reads every partition directly from ``startPosition``,
        /// without a group and without commits.
        ///
        /// Default: `nil`, which is right for an in-memory state (``KafkaMaterializer`` over
        /// `InMemoryStateStore`): such a state must be rebuilt from the beginning of every partition after each
        /// start. Use a group only for a consumer whose progress is stored with its results — a store that
        /// keeps its own position, or a processor whose effects are idempotent elsewhere.
        public var groupID: String?
        /// Where to start when the group has no committed offset (or when there is no group).
        /// Default: ``StartPosition/earliest``.
        public var startPosition: StartPosition
        /// The next offset to read for some partitions, overriding ``startPosition`` for them: where a store
        /// that keeps its own position (`PositionedStateStore`, e.g. `SQLiteStateStore`) left off. Only without
        /// a group. ``KafkaMaterializer/init(configuration:store:maxBatchSize:logger:onMalformed:onSourceEvent:rebuildOnIncompatibleTopic:metricsFactory:)`` fills it from the store.
        /// Default: empty.
        public var startOffsets: [Int32: Int64] = [:]
        /// What to do with a message that is not a valid change event. Default: ``MalformedPolicy/skip``.
        public var malformedPolicy: MalformedPolicy
        /// Messages buffered ahead of the application before back-pressure applies: no more messages are taken
        /// from librdkafka until half are taken (in a group, an application behind for more than a second gets its
        /// partitions paused instead, so that the poll keeps serving the group). Default: 10,000.
        public var bufferSize: Int
        /// The longest a broker may hold a fetch request open waiting for data (`fetch.wait.max.ms`): the
        /// latency/throughput trade-off of reading. A broker answers as soon as data arrives, but some (librdkafka's
        /// mock cluster, Tansu) hold every fetch for this long, and an idle partition is polled this often, so on
        /// those the latency from send to applied follows it (`Documentation/performance.md`). Lower it for
        /// read-your-writes latency; raise it to cut idle requests. 0…300 s. Default: 100 milliseconds.
        public var fetchWait: Duration = .milliseconds(100)
        /// How long the group waits for a silent member before rebalancing (`session.timeout.ms`); heartbeats
        /// go every third of it. Shorter joins and failovers, at the price of evictions under long pauses.
        /// Default: 45 seconds (Kafka's).
        public var sessionTimeout: Duration
        /// End the event sequence once every assigned partition is caught up (partition EOF), for one-shot
        /// reads. Default: `false`.
        public var stopWhenCaughtUp: Bool
        /// How often a source without a group asks for the topic's partitions, and starts reading partitions
        /// added since from their beginning (in a group, the group's rebalance does it). 100 ms…1 hour.
        /// Default: 10 seconds.
        public var partitionRefreshInterval: Duration = .seconds(10)
        /// For tests: without a group, start with only these partitions, as if the topic had no others then
        /// (librdkafka's mock cluster cannot add partitions to a topic; partition discovery adds the rest).
        package var initialPartitions: Set<Int32>?
        /// How long a source in a group stops taking messages for a reader that is behind before it pauses its
        /// partitions to keep serving the group (a rebalance waits at most this long for the member). Tests
        /// widen it to tell a short stall from a long one on a loaded machine. Default: 1 second.
        package var groupStallBeforePause: Duration = .seconds(1)

        /// Whether every message's fingerprint is computed (a digest of its key and value). A reader that records
        /// positions with the fingerprint of any message it stops at — a `PositionedStateStore`, the events of
        /// ``KafkaEventSource/events`` — needs them all; a materializer into a store without positions needs only
        /// the last of each partition (the continuity check's), and sets this to `false`. Default: `true`.
        package var fingerprintsEveryMessage = true

        /// Creates a configuration.
        public init(
            kafka: KafkaConfiguration = KafkaConfiguration(),
            topic: String,
            groupID: String? = nil,
            startPosition: StartPosition = .earliest,
            malformedPolicy: MalformedPolicy = .skip,
            bufferSize: Int = 10_000,
            sessionTimeout: Duration = .seconds(45),
            stopWhenCaughtUp: Bool = false
        ) {
            self.kafka = kafka
            self.topic = topic
            self.groupID = groupID
            self.startPosition = startPosition
            self.malformedPolicy = malformedPolicy
            self.bufferSize = bufferSize
            self.sessionTimeout = sessionTimeout
            self.stopWhenCaughtUp = stopWhenCaughtUp
        }

        /// Where reading starts.
        public enum StartPosition: Sendable {
            /// The oldest retained message.
            case earliest
            /// Only messages produced from now on.
            case latest
        }

        /// The handling of malformed messages. Either way the message never reaches state, the stream goes
        /// on, and the message is reported (log, metric, `onMalformed`) with its topic, partition, offset and
        /// decoding error.
        public enum MalformedPolicy: Sendable {
            /// Report and skip. The default.
            case skip
            /// Report, then copy the raw message to this topic (awaiting the broker's acknowledgement) before
            /// moving past it.
            case deadLetter(topic: String)
        }

        /// Checks every value (and ``kafka``'s), naming the first that is out of range; called by the source's
        /// initializer. `bufferSize` is 1…10,000,000; `sessionTimeout` 1 s…1 hour; ``reservedProperties`` are
        /// refused in `kafka.additionalProperties`.
        public func validate() throws {
            try kafka.validate()
            try kafka.checkReserved(Self.reservedProperties, by: "KafkaEventSource")
            try KafkaTopicName.validate(topic)
            if let groupID, groupID.isEmpty {
                throw DeltaKitError.invalidValue("groupID", "empty", allowed: "a name, or nil for no group")
            }
            try DeltaKitError.check(bufferSize, in: 1...10_000_000, "bufferSize")
            try DeltaKitError.check(sessionTimeout, in: .seconds(1) ... .seconds(3600), "sessionTimeout")
            try DeltaKitError.check(fetchWait, in: .zero ... .seconds(300), "fetchWait")
            try DeltaKitError.check(
                partitionRefreshInterval,
                in: .milliseconds(100) ... .seconds(3600),
                "partitionRefreshInterval"
            )
            if case .deadLetter(let topic) = malformedPolicy { try KafkaTopicName.validate(topic) }
            if !startOffsets.isEmpty, groupID != nil {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "startOffsets and groupID are both set; a group resumes from its committed offsets, start offsets apply only without a group (set groupID to nil)"
                )
            }
            for (partition, offset) in startOffsets.sorted(by: { $0.key < $1.key }) where partition < 0 || offset < 0 {
                throw DeltaKitError.invalidValue(
                    "startOffsets[\(partition)]",
                    offset,
                    allowed: "an offset of 0 or more for a partition of 0 or more"
                )
            }
        }

        /// The librdkafka properties the source sets itself and relies on, each with the reason (besides
        /// `KafkaConfiguration.reservedProperties`): ``validate()`` refuses them in `kafka.additionalProperties`.
        public static var reservedProperties: [String: String] {
            [
                "enable.partition.eof":
                    "the source learns that a partition is read to its end from librdkafka's end-of-partition events; without them waitUntilCaughtUp() and KafkaMaterializer.materialize never return",
                "enable.auto.offset.store":
                    "the source stores an offset only once the application acknowledged its event; automatic storing would commit events that were never applied",
                "group.id": "it is set from groupID (nil reads without a group)",
                "auto.offset.reset": "it is set from startPosition",
            ]
        }

        /// The first librdkafka with `fetch.queue.backoff.ms` (2.2.0).
        static var fetchQueueBackoffVersion: Int { 0x0202_0000 }
    }
}

extension KafkaEventSource.Configuration: KafkaClientSettings {
    /// The consumer's own librdkafka properties, from the settings above.
    var clientProperties: [(String, String)] {
        var p: [(String, String)] = [
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", startPosition == .earliest ? "earliest" : "latest"),
            ("enable.auto.offset.store", "false"),
            ("fetch.wait.max.ms", String(fetchWait.milliseconds())),
        ]
        // A consumer whose application is slower than its fetches fills librdkafka's prefetch queue
        // (queued.min.messages), and the next fetch then waits fetch.queue.backoff.ms — 1 s by default, longer than
        // the application takes to drain the queue, so reading would stall. The check is local (no request), so a
        // short backoff costs nothing. librdkafka before 2.2.0 has no such property (it backs off by
        // fetch.error.backoff.ms instead).
        if RdKafka.version >= Self.fetchQueueBackoffVersion { p.append(("fetch.queue.backoff.ms", "10")) }
        if let groupID {
            let session = sessionTimeout.milliseconds(minimum: 1000)
            p += [
                ("group.id", groupID), ("enable.auto.commit", "true"),
                ("session.timeout.ms", String(session)), ("heartbeat.interval.ms", String(max(100, session / 3))),
            ]
        } else {
            p += [("group.id", "deltakit-unused"), ("enable.auto.commit", "false")]
        }
        return p
    }

    /// ``validate()``, and the record type's schema (every event is decoded with it).
    func check() throws {
        try validate()
        _ = try Record.schema
    }
}

extension KafkaEventSource.Configuration.StartPosition: Equatable {}
