import DeltaKit
import Logging

/// Where a materializer over a `PositionedStateStore` starts: the store's positions, once they are shown to
/// belong to the log the topic holds now (``TopicContinuity``).
extension KafkaMaterializer {
    static func describe(_ offsets: [Int32: Int64]) -> String {
        offsets.isEmpty
            ? "the beginning"
            : offsets.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: ", ")
    }

    /// `configuration` fitted to `store`: the source of a `PositionedStateStore` starts at the store's positions
    /// (``startOffsets(of:for:logger:rebuild:)``); the source of any other store computes message fingerprints only
    /// where the continuity check needs them, as it records no positions
    /// (``KafkaEventSource/Configuration/fingerprintsEveryMessage``).
    static func sourceConfiguration(
        _ configuration: KafkaEventSource<Store.Record>.Configuration,
        for store: Store,
        logger: Logger,
        rebuild: Bool
    ) async throws -> KafkaEventSource<Store.Record>.Configuration {
        var configuration = configuration
        if let positioned = store as? any PositionedStateStore<Store.Record> {
            configuration.startOffsets = try await startOffsets(
                of: positioned,
                for: configuration,
                logger: logger,
                rebuild: rebuild
            )
        } else {
            configuration.fingerprintsEveryMessage = false
        }
        return configuration
    }

    static func startOffsets(
        of store: any PositionedStateStore<Store.Record>,
        for configuration: KafkaEventSource<Store.Record>.Configuration,
        logger: Logger,
        rebuild: Bool = false
    ) async throws -> [Int32: Int64] {
        guard store.source == configuration.topic else {
            throw DeltaKitError(
                code: .incompatibleStore,
                message:
                    "the store holds topic '\(store.source)', not '\(configuration.topic)'; use a store for '\(configuration.topic)' (another file)"
            )
        }
        guard configuration.groupID == nil else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "groupID '\(configuration.groupID ?? "")' is set, but \(type(of: store)) keeps its own position and a full copy of every partition; set groupID to nil"
            )
        }
        return try await checkContinuity(
            of: store,
            topic: configuration.topic,
            kafka: configuration.kafka,
            logger: logger,
            rebuild: rebuild
        )
    }

    /// Re-reads the last applied message of each partition (``TopicContinuity``) and returns the positions to start
    /// from: the store's, or none after a rebuild; throws `incompatibleStore` when they belong to another log.
    @discardableResult
    static func checkContinuity(
        of store: any PositionedStateStore<Store.Record>,
        topic: String,
        kafka: KafkaConfiguration,
        logger: Logger,
        rebuild: Bool
    ) async throws -> [Int32: Int64] {
        let positions = try await store.positions()
        guard !positions.isEmpty else { return positions }
        let fingerprints = try await store.fingerprints()
        var expected: [Int32: ExpectedPosition] = [:]
        for (partition, next) in positions {
            expected[partition] = ExpectedPosition(next: next, fingerprint: fingerprints[partition])
        }
        let timeout = max(kafka.connectTimeout, .seconds(5))
        let checked = expected
        let verdicts = try await BlockingCalls.run {
            TopicContinuity.verify(
                topic: topic,
                expected: checked,
                kafka: kafka,
                logger: logger,
                timeout: timeout
            )
        }
        guard
            let changed = TopicContinuity.changes(
                verdicts,
                expected: expected,
                topic: topic,
                had: "the store has",
                logger: logger
            )
        else { return positions }
        if rebuild {
            logger.warning(
                "rebuilding the store from the beginning of '\(topic)': its positions belong to another log (\(changed))"
            )
            try await store.removeAll()
            return [:]
        }
        throw DeltaKitError(
            code: .incompatibleStore,
            message:
                "the store follows another log than topic '\(topic)' holds now (the topic was deleted and recreated, or the broker lost its data): \(changed); resuming would skip or mix events — rebuild the store from the topic's beginning (KafkaMaterializer rebuildOnIncompatibleTopic: true), or point it at the cluster it was built from",
            underlying: changed
        )
    }
}
