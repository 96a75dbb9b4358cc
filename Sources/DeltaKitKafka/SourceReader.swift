import DeltaKit
import NIOCore

/// The one reader of a source's items: it owns the producer's iterator (which stays in the task that reads) and
/// the rest of the batch it is reading.
struct SourceReader<Record: ChangeRecord> {
    let core: SourceCore<Record>
    private let iterator: SourceCore<Record>.Items.AsyncIterator
    /// The batch taken from the producer, handed on up to `frontIndex`.
    private var front: [SourceItem<Record>] = []
    private var frontIndex = 0
    /// How many batches this reader took from the producer.
    private var pulled = 0

    init(core: SourceCore<Record>, iterator: SourceCore<Record>.Items.AsyncIterator) {
        self.core = core
        self.iterator = iterator
    }

    /// The next item, waiting for one; `nil` once the source is closed (or the task cancelled).
    mutating func next() async -> SourceItem<Record>? {
        if frontIndex == front.count {
            guard await pullBatch() else { return nil }
        }
        frontIndex += 1
        return front[frontIndex - 1]
    }

    /// The next item already handed over, without waiting for a new one; `nil` when there is none.
    mutating func nextIfAvailable() async -> SourceItem<Record>? {
        if frontIndex == front.count {
            // A batch the poll thread already yielded is buffered: taking it does not wait.
            guard core.yieldedBatches > pulled, await pullBatch() else { return nil }
        }
        frontIndex += 1
        return front[frontIndex - 1]
    }

    /// Replaces the (used up) front with the producer's next batch; `false` at the end.
    private mutating func pullBatch() async -> Bool {
        guard let batch = await iterator.next() else { return false }
        pulled += 1
        front = batch
        frontIndex = 0
        if batch.isEmpty { return await pullBatch() }
        return true
    }
}

enum SourceItem<Record: ChangeRecord>: Sendable {
    case event(KafkaConsumedEvent<Record>)
    /// An event as a row (for a record type with a row layout): every event is one, tombstones included.
    case row(SourceRow)
    case malformed(MalformedMessage)
    case caughtUp
    case failure(DeltaKitError)
}

/// An event decoded into a row of the rows taken in one poll (shared by that poll's items, not copied).
struct SourceRow: Sendable {
    var rows: RowList
    var index: Int
    var partition: Int32
    var offset: Int64
    var fingerprint: MessageFingerprint

    /// The typed event, for a reader that asks for one.
    func consumedEvent<Record: ChangeRecord>(
        _ type: Record.Type,
        topic: String,
        layout: RowLayout
    ) throws -> KafkaConsumedEvent<Record> {
        KafkaConsumedEvent(
            event: try ChangeEvent(row: index, of: rows, layout: layout),
            topic: topic,
            partition: partition,
            offset: offset,
            fingerprint: fingerprint
        )
    }
}
