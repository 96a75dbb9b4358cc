import DeltaKit

extension RisingWavePipeline {
    /// Names and connection settings of the generated objects. Every property but ``topic`` has a documented
    /// default.
    public struct Configuration: Sendable {
        /// The Kafka topic. Required: a library has no default topic.
        public var topic: String
        /// The brokers *as RisingWave reaches them* (inside Docker, e.g. `redpanda:29092`).
        /// Default: `"localhost:9092"`.
        public var bootstrapServers: String
        /// The source's name. Default: `nil`, derived from the record type: `<record>_events` in snake case
        /// (`User` → `user_events`, `OrderLine` → `order_line_events`).
        public var sourceName: String?
        /// The latest-state view's name. Default: `nil`, derived from the record type: `latest_<record>_state`
        /// (`User` → `latest_user_state`).
        public var viewName: String?
        /// Where the source starts reading the topic (`scan.startup.mode`). Default: ``StartupMode/earliest``.
        public var startupMode: StartupMode
        /// Extra Kafka properties for RisingWave, without the `properties.` prefix (e.g. `security.protocol`).
        /// Only keys in ``RisingWavePipeline/allowedKafkaProperties`` are allowed; values may not contain a
        /// backslash or NUL. Default: empty.
        public var kafkaProperties: [String: String]
        /// When set, also create a keyed `FORMAT UPSERT` table with this name (latest message per Kafka key;
        /// delete events stay as rows with `op = 'delete'`). Default: `nil`.
        public var upsertTable: String?
        /// How long the subscription keeps changes: how far back a change feed can resume
        /// (``RisingWaveStateStore/changes(from:)``), and how long a cursor may go without a new epoch. Whole
        /// seconds (a fraction is rounded up), 1 second or more. Default: 1 day.
        public var subscriptionRetention: Duration
        /// How many of the newest valid events the history view keeps (a streaming Top-N: O(`historySize`)
        /// state, unlike a query on the source, which scans the whole topic each time); 1…100,000.
        /// Default: 1,000.
        public var historySize: Int

        /// Creates a configuration.
        public init(
            topic: String,
            bootstrapServers: String = "localhost:9092",
            sourceName: String? = nil,
            viewName: String? = nil,
            startupMode: StartupMode = .earliest,
            kafkaProperties: [String: String] = [:],
            upsertTable: String? = nil,
            subscriptionRetention: Duration = .seconds(86_400),
            historySize: Int = 1_000
        ) {
            self.topic = topic
            self.bootstrapServers = bootstrapServers
            self.sourceName = sourceName
            self.viewName = viewName
            self.startupMode = startupMode
            self.kafkaProperties = kafkaProperties
            self.upsertTable = upsertTable
            self.subscriptionRetention = subscriptionRetention
            self.historySize = historySize
        }

        /// Checks every setting that does not depend on the record. (Literals are checked where the DDL quotes
        /// them: a value that cannot be quoted fails `PipelineDDL`'s initializer.)
        ///
        /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the setting.
        func validate() throws {
            if let table = upsertTable { try SQLText.validateRelationName(table, what: "table") }
            for key in kafkaProperties.keys.sorted() {
                guard RisingWavePipeline.allowedKafkaProperties.contains(key) else {
                    throw DeltaKitError(
                        code: .invalidConfiguration,
                        message:
                            "RisingWave does not accept the Kafka property '\(key)' (its DDL would fail with \"Unknown fields in the WITH clause\")"
                    )
                }
            }
            try DeltaKitError.check(historySize, in: 1...100_000, "historySize")
            try DeltaKitError.check(
                subscriptionRetention,
                in: .seconds(1) ... .seconds(Int64(Int32.max)),
                "subscriptionRetention"
            )
            // A topic Kafka refuses would only fail later, inside RisingWave's CREATE SOURCE (or never, with --dry-run).
            try KafkaTopicName.validate(topic)
        }

        /// ``kafkaProperties`` in key order: the order the `WITH` clause lists them in, so the DDL is stable.
        var sortedKafkaProperties: [(key: String, value: String)] {
            kafkaProperties.sorted { $0.key < $1.key }
        }

        /// ``subscriptionRetention`` as RisingWave's interval text: whole days as `1D` (RisingWave's documented
        /// form), anything else in seconds.
        var retentionInterval: String {
            let seconds = subscriptionRetention.wholeSecondsRoundedUp(minimum: 1)
            return seconds % 86_400 == 0 ? "\(seconds / 86_400)D" : "\(seconds)s"
        }
    }

    /// Where a new source starts reading its topic: RisingWave's `scan.startup.mode`.
    public enum StartupMode: String, Sendable, Hashable, CaseIterable {
        /// From the oldest message the topic still holds: the view is the state of every retained event.
        case earliest
        /// From the messages produced after the source is created.
        case latest
    }

    /// Kafka property keys RisingWave accepts in a source's `WITH` clause (anything else fails its DDL).
    ///
    /// `auto.commit.interval.ms`, `reconnect.backoff.ms`, `reconnect.backoff.max.ms`, `retry.backoff.ms`,
    /// `retry.backoff.max.ms` and `socket.connection.setup.timeout.ms` are accepted only from RisingWave v3.0.2
    /// on; an older RisingWave refuses the DDL with "Unknown fields in the WITH clause".
    public static var allowedKafkaProperties: Set<String> {
        [
            "security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "sasl.oauthbearer.config",
            "sasl.kerberos.service.name", "sasl.kerberos.keytab", "sasl.kerberos.principal", "sasl.kerberos.kinit.cmd",
            "sasl.kerberos.min.time.before.relogin", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
            "ssl.ca.pem", "ssl.certificate.pem", "ssl.key.pem", "ssl.key.password",
            "ssl.endpoint.identification.algorithm",
            "enable.ssl.certificate.verification", "client.id", "sync.call.timeout", "message.max.bytes",
            "receive.message.max.bytes", "fetch.max.bytes", "fetch.min.bytes", "fetch.wait.max.ms",
            "fetch.queue.backoff.ms", "fetch.message.max.bytes", "queued.min.messages", "queued.max.messages.kbytes",
            "reconnect.backoff.ms", "reconnect.backoff.max.ms", "retry.backoff.ms", "retry.backoff.max.ms",
            "socket.connection.setup.timeout.ms", "socket.keepalive.enable", "statistics.interval.ms",
            "enable.auto.commit", "auto.commit.interval.ms",
        ]
    }
}
