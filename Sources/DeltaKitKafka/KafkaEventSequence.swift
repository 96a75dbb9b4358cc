public import DeltaKit
import Metrics

/// The events of a ``KafkaEventSource``.
public struct KafkaEventSequence<Record: ChangeRecord>: AsyncSequence, Sendable {
    public typealias Element = KafkaConsumedEvent<Record>
    let core: SourceCore<Record>

    public func makeAsyncIterator() -> Iterator { Iterator(reader: core.makeReader()) }

    /// Iterates events; malformed messages and caught-up markers are handled inside.
    public struct Iterator: AsyncIteratorProtocol {
        var reader: Result<SourceReader<Record>, DeltaKitError>

        public mutating func next() async throws -> KafkaConsumedEvent<Record>? {
            guard case .success(var current) = reader else {
                _ = try reader.get()
                return nil
            }
            defer { reader = .success(current) }
            let core = current.core
            while true {
                guard let item = await current.next() else { return nil }
                core.handedOver(1)
                switch item {
                case .event(let event):
                    core.consumed.increment()
                    return event
                case .row(let row):
                    core.consumed.increment()
                    return try row.consumedEvent(Record.self, topic: core.topic, layout: core.rowLayout!)
                case .malformed(let message):
                    try await core.handleMalformed(message)
                case .caughtUp:
                    core.markCaughtUp()
                    if core.stopWhenCaughtUp { return nil }
                case .failure(let error):
                    throw error
                }
            }
        }
    }
}
