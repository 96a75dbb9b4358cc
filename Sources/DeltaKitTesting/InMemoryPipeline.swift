public import DeltaKit

/// A sink wired straight to a store: every event sent is applied before `send` returns.
///
/// Runs the demo with no infrastructure: events go through the same wire encoding a broker would
/// carry (each event is encoded and decoded again), then into an `InMemoryStateStore`.
public struct InMemoryPipeline<Record: ChangeRecord>: Sendable {
    /// Where events are sent.
    public let sink: InMemoryEventSink<Record>
    /// Where the latest state is read.
    public let store: InMemoryStateStore<Record>

    /// Creates a pipeline.
    ///
    /// - Parameter historyLimit: The store's retained history. Default: 1,000.
    /// - Throws: `DeltaKitError` when `historyLimit` is negative.
    public init(historyLimit: Int = 1_000) throws {
        let store = try InMemoryStateStore<Record>(historyLimit: historyLimit)
        self.store = store
        // The sink hands over each event as a consumer decodes it from the wire.
        self.sink = InMemoryEventSink { event in try await store.apply(event) }
    }
}
