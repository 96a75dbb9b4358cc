public import DeltaKit
public import Logging
public import ServiceLifecycle

/// Keeps the latest state in-process straight from Kafka: runs a ``KafkaEventSource`` into any
/// `MutableStateStore` (the in-memory one, typically) — the embedded alternative to RisingWave.
///
/// Each event is applied, then acknowledged, so a crash re-delivers at most what was not yet applied; since
/// the merge is idempotent by order (`LatestStateMerge`), the replay gives the same state.
///
/// ```swift
/// let store = try InMemoryStateStore<User>()
/// let materializer = KafkaMaterializer(source: try await KafkaEventSource(configuration: config), store: store)
/// let group = ServiceGroup(services: [materializer], gracefulShutdownSignals: [.sigterm], logger: logger)
/// ```
public final class KafkaMaterializer<Store: MutableStateStore>: Service {
    /// The source being read.
    public let source: KafkaEventSource<Store.Record>
    /// The store being written.
    public let store: Store
    private let logger: Logger

    /// Creates a materializer; ``run()`` starts it.
    public init(
        source: KafkaEventSource<Store.Record>,
        store: Store,
        logger: Logger = Logger(label: "deltakit.kafka.materializer")
    ) {
        self.source = source
        self.store = store
        self.logger = logger
    }

    /// Applies events until the source ends, graceful shutdown, or cancellation; then closes the source
    /// (committing what was applied).
    public func run() async throws {
        let source = self.source
        try await withGracefulShutdownHandler {
            do {
                try await self.applyAll()
            } catch {
                try? await source.close()
                throw error
            }
            try await source.close()
        } onGracefulShutdown: {
            Task { try? await source.close() }
        }
    }

    /// Returns the number of events applied.
    @discardableResult
    func applyAll(progress: (@Sendable (Int) -> Void)? = nil) async throws -> Int {
        var applied = 0
        for try await consumed in source.events {
            try await store.apply(consumed.event)
            source.acknowledge(consumed)
            applied += 1
            if applied % 10_000 == 0 { progress?(applied) }
        }
        return applied
    }

    /// Waits until every assigned partition reached its end and all events before that point are applied.
    public func waitUntilCaughtUp() async { await source.waitUntilCaughtUp() }

    /// Reads a topic once, from the start, into `store`, and returns when caught up (partition EOF on every
    /// partition). Uses no consumer group unless `configuration.groupID` is set.
    ///
    /// - Parameters:
    ///   - configuration: The source settings; ``KafkaEventSource/Configuration/stopWhenCaughtUp`` is forced on.
    ///   - store: Where events are applied.
    ///   - logger: Receives the source's logs. Default: a logger labelled `deltakit.kafka.materializer`.
    ///   - onMalformed: Called for each malformed message before it is skipped or dead-lettered. Default: `nil`.
    ///   - progress: Called every 10,000 events with the count so far. Default: `nil`.
    /// - Returns: The number of events applied.
    @discardableResult
    public static func materialize(
        _ configuration: KafkaEventSource<Store.Record>.Configuration,
        into store: Store,
        logger: Logger = Logger(label: "deltakit.kafka.materializer"),
        onMalformed: (@Sendable (MalformedMessage) -> Void)? = nil,
        progress: (@Sendable (Int) -> Void)? = nil
    ) async throws -> Int {
        var configuration = configuration
        configuration.stopWhenCaughtUp = true
        let source = try await KafkaEventSource<Store.Record>(
            configuration: configuration,
            logger: logger,
            onMalformed: onMalformed
        )
        let materializer = KafkaMaterializer(source: source, store: store, logger: logger)
        do {
            let count = try await materializer.applyAll(progress: progress)
            try await source.close()
            return count
        } catch {
            try? await source.close()
            throw error
        }
    }
}
