import DeltaKit
import Logging

/// What a librdkafka client is made from: its cluster, its own librdkafka properties, and the checks to pass first.
/// ``RdKafkaHandle/client(_:_:logger:)`` makes every client of the module from one — the sink, the source, the
/// admin, the dead-letter sink and the short-lived probes — so each gets the cluster's settings and the user's
/// `additionalProperties` in the same order.
protocol KafkaClientSettings: Sendable {
    /// The cluster, with the user's `additionalProperties`.
    var kafka: KafkaConfiguration { get }
    /// The client's own librdkafka properties, applied after the cluster's and before `kafka.additionalProperties`.
    var clientProperties: [(String, String)] { get }
    /// Checks the settings — and for a sink or a source its record type's schema — so that a mistake fails with
    /// its name before librdkafka sees it.
    func check() throws
}

extension KafkaClientSettings {
    /// Every librdkafka property of the client, in order (a later one wins).
    var properties: [(String, String)] { kafka.properties(with: clientProperties) }
}

extension KafkaConfiguration: KafkaClientSettings {
    var kafka: KafkaConfiguration { self }
    var clientProperties: [(String, String)] { [] }
    func check() throws { try validate() }
}

/// A short-lived consumer that re-reads a few messages to check what the cluster holds (no group of its own, no
/// commits, partition ends reported); its settings were checked with those of the reader it works for.
struct ProbeSettings: KafkaClientSettings {
    var kafka: KafkaConfiguration
    /// The group id it reports (it never joins the group: a probe assigns its partitions itself).
    var groupID: String
    /// Further properties of this probe.
    var extra: [(String, String)] = []

    var clientProperties: [(String, String)] {
        [("group.id", groupID), ("enable.auto.commit", "false"), ("enable.partition.eof", "true")] + extra
    }

    func check() throws {}
}

extension RdKafkaHandle {
    /// Sets up a client from `settings`: checks them, then creates the callbacks (librdkafka's logs, and its errors
    /// until the owner sets a handler with `callbacks.onError`, go to `logger`) and the handle.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the first setting that fails its check, or with
    ///   librdkafka's message for a property it refuses.
    static func client(_ kind: Kind, _ settings: some KafkaClientSettings, logger: Logger) throws -> RdKafkaHandle {
        try settings.check()
        return try RdKafkaHandle(
            kind: kind,
            properties: settings.properties,
            callbacks: RdKafkaCallbacks(logger: logger)
        )
    }
}
