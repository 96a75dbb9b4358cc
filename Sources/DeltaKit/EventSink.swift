/// A destination for change events: Kafka, an in-memory fake, or anything durable.
///
/// Every method returns only when its events are durable for that sink (acknowledged by the broker,
/// stored in memory, …). A sink that fails to make an event durable throws and must not silently
/// skip it; a backend may then refuse further sends until it is recreated.
///
/// Events for one key must be sent in order by one logical writer; sinks keep per-key order.
public protocol EventSink<Record>: Sendable {
    /// The record type this sink publishes.
    associatedtype Record: ChangeRecord

    /// Sends one event and returns once it is durable, with where it was stored.
    @discardableResult
    func send(_ event: ChangeEvent<Record>) async throws -> EventReceipt

    /// Sends a batch of events, keeping many in flight, and returns once all are durable, with the highest
    /// position per partition.
    ///
    /// The default implementation sends them one after another; backends override it.
    @discardableResult
    func send(contentsOf events: [ChangeEvent<Record>]) async throws -> EventReceipt

    /// Returns once every event sent before the call is durable.
    func flush() async throws
}

extension EventSink {
    /// Sends the events one after another.
    @discardableResult
    public func send(contentsOf events: [ChangeEvent<Record>]) async throws -> EventReceipt {
        var receipt = EventReceipt()
        for event in events { receipt = receipt.merging(try await send(event)) }
        return receipt
    }
}
