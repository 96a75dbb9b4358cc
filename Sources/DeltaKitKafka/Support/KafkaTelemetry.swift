/// Every metric name and log-metadata key the Kafka backend emits, in one place and one namespace: metrics are
/// `deltakit_kafka_*` (Prometheus style, with a `topic` dimension and, for the lag, `partition`); log metadata
/// keys are `deltakit.kafka.*`. `Documentation/operations.md` lists them for dashboards and alerts.
enum KafkaTelemetry {
    /// Metric names.
    enum Metric {
        static let eventsSent = "deltakit_kafka_events_sent_total"
        static let eventsAcknowledged = "deltakit_kafka_events_acknowledged_total"
        static let eventsFailed = "deltakit_kafka_events_failed_total"
        static let deliveryLatency = "deltakit_kafka_delivery_latency"
        static let eventsConsumed = "deltakit_kafka_events_consumed_total"
        static let messagesMalformed = "deltakit_kafka_messages_malformed_total"
        static let materializerLag = "deltakit_kafka_materializer_lag"
    }

    /// Metric dimension names.
    enum Dimension {
        static let topic = "topic"
        static let partition = "partition"
    }

    /// Log metadata keys.
    enum Key {
        static let topic = "deltakit.kafka.topic"
        static let partition = "deltakit.kafka.partition"
        static let offset = "deltakit.kafka.offset"
        static let error = "deltakit.kafka.error"
        static let servers = "deltakit.kafka.servers"
        static let librdkafkaVersion = "deltakit.kafka.librdkafka_version"
        static let librdkafkaFacility = "deltakit.kafka.librdkafka_facility"
    }
}
