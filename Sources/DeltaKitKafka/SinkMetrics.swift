import Metrics

/// A sink's metrics, with its topic as the dimension (names in `KafkaTelemetry`).
struct SinkMetrics: Sendable {
    let sent: Counter
    let acknowledged: Counter
    let failed: Counter
    let latency: Metrics.Timer

    init(topic: String, factory: any MetricsFactory) {
        let dimensions = [(KafkaTelemetry.Dimension.topic, topic)]
        sent = Counter(label: KafkaTelemetry.Metric.eventsSent, dimensions: dimensions, factory: factory)
        acknowledged = Counter(
            label: KafkaTelemetry.Metric.eventsAcknowledged,
            dimensions: dimensions,
            factory: factory
        )
        failed = Counter(label: KafkaTelemetry.Metric.eventsFailed, dimensions: dimensions, factory: factory)
        latency = Metrics.Timer(label: KafkaTelemetry.Metric.deliveryLatency, dimensions: dimensions, factory: factory)
    }
}
