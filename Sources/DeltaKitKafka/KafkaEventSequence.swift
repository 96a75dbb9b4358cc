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
                switch item {
                case .event(let event):
                    core.handedOver(1)
                    core.consumed.increment()
                    return event
                case .rows(let chunk, let range):
                    // One event at a time: the rest of the range waits for the next call.
                    if range.count > 1 { current.putBack(.rows(chunk, range.dropFirst())) }
                    core.handedOver(1)
                    core.consumed.increment()
                    return try chunk.consumedEvent(
                        range.lowerBound,
                        Record.self,
                        topic: core.topic,
                        layout: core.rowLayout!
                    )
                case .malformed(let message):
                    core.handedOver(1)
                    try await core.handleMalformed(message)
                case .caughtUp:
                    core.handedOver(1)
                    core.markCaughtUp()
                    if core.stopWhenCaughtUp { return nil }
                case .failure(let error):
                    core.handedOver(1)
                    throw error
                }
            }
        }
    }
}
