import DeltaKit
import Metrics

extension KafkaEventSource {
    /// The events in batches: each waits for at least one event, then takes every event already handed over, up
    /// to `limit` — what a materializer applies in one step. Malformed messages are handled as by ``events``
    /// (reported, skipped or dead-lettered) and advance ``SourceBatch/nextOffsets`` like events do. Like
    /// ``events``, read by one iterator.
    ///
    /// When a batch ends at the caught-up point, ``SourceBatch/reachesCaughtUp`` is set and the caller calls
    /// ``markCaughtUp()`` once the batch is applied, so that ``isCaughtUp`` never runs ahead of the state.
    func batches(limit: Int) -> SourceBatches<Record> { SourceBatches(core: core, limit: max(1, limit)) }

    /// Acknowledges a batch once it is applied: its events and the malformed messages it skipped (one offset
    /// stored per partition: the batch's ``SourceBatch/nextOffsets``).
    func acknowledge(_ batch: SourceBatch<Record>) {
        for (partition, next) in batch.nextOffsets {
            core.acknowledge(topic: topic, partition: partition, offset: next - 1)
        }
    }

    /// Marks the source caught up (after applying a batch that ``SourceBatch/reachesCaughtUp``).
    func markCaughtUp() { core.markCaughtUp() }
}

/// The batches of a source (``KafkaEventSource/batches(limit:)``).
struct SourceBatches<Record: ChangeRecord>: AsyncSequence, Sendable {
    typealias Element = SourceBatch<Record>
    let core: SourceCore<Record>
    let limit: Int

    func makeAsyncIterator() -> Iterator { Iterator(reader: core.makeReader(), limit: limit) }

    /// Builds each batch from what the producer side handed over.
    struct Iterator: AsyncIteratorProtocol {
        var reader: Result<SourceReader<Record>, DeltaKitError>
        let limit: Int

        mutating func next() async throws -> SourceBatch<Record>? {
            guard case .success(var current) = reader else {
                _ = try reader.get()
                return nil
            }
            defer { reader = .success(current) }
            let core = current.core
            var batch = SourceBatch<Record>()
            guard var item = await current.next() else { return nil }
            var handed = 0
            defer {
                core.handedOver(handed)
                if batch.eventCount > 0 { core.consumed.increment(by: Int64(batch.eventCount)) }
            }
            while true {
                handed += 1
                switch item {
                case .event(let event):
                    batch.events.append(event)
                    batch.advance(event.partition, past: event.offset, fingerprint: event.fingerprint)
                case .rows(let chunk, let range):
                    // As many rows as the batch has room for; the rest waits for the next batch.
                    let taken = range.prefix(limit - batch.eventCount)
                    batch.take(chunk, taken)
                    handed += taken.count - 1
                    if taken.count < range.count {
                        current.putBack(.rows(chunk, taken.upperBound..<range.upperBound))
                        return batch
                    }
                case .malformed(let message):
                    try await core.handleMalformed(message, acknowledging: false)
                    batch.skipped.append((message.partition, message.offset))
                    batch.advance(message.partition, past: message.offset, fingerprint: message.fingerprint)
                case .caughtUp:
                    batch.reachesCaughtUp = true
                    if core.stopWhenCaughtUp { batch.isLast = true }
                    return batch
                case .failure(let error):
                    throw error
                }
                // Take what is already handed over, without waiting for more.
                guard batch.eventCount < limit, let next = await current.nextIfAvailable() else { return batch }
                item = next
            }
        }
    }
}
