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

    /// Gives back the rest of an item taken by ``next()`` or ``nextIfAvailable()`` (the rows a batch had no room
    /// for): the next call returns it.
    mutating func putBack(_ item: SourceItem<Record>) {
        frontIndex -= 1
        front[frontIndex] = item
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
    /// Events as rows (for a record type with a row layout: every event is one, tombstones included): a range of
    /// one poll's chunk.
    case rows(RowChunk, Range<Int>)
    case malformed(MalformedMessage)
    case caughtUp
    case failure(DeltaKitError)

    /// How many messages the item stands for (what the hand-off's accounting counts).
    var messageCount: Int {
        if case .rows(_, let range) = self { return range.count }
        return 1
    }
}

/// The events of one poll decoded into rows, with where each came from: handed over as ranges
/// (``SourceItem/rows(_:_:)``), so that the reader takes many events in one step and nothing per event is generic.
struct RowChunk: Sendable {
    var rows: RowList
    var partitions: [Int32] = []
    var offsets: [Int64] = []
    var fingerprints: [MessageFingerprint] = []
    /// The headers of the rows whose message had any, by row index: sparse, so that a chunk of messages without
    /// headers (no tracing producer) carries an empty dictionary and nothing per row.
    var traceHeaders: [Int: [TraceHeader]] = [:]

    init(width: Int) { rows = RowList(width: width) }

    /// Makes room for `additional` more events: a batch taken from librdkafka fills it without reallocating.
    mutating func reserve(_ additional: Int) {
        rows.reserveCapacity(count + additional)
        partitions.reserveCapacity(count + additional)
        offsets.reserveCapacity(count + additional)
        fingerprints.reserveCapacity(count + additional)
    }

    /// A placeholder for a range of the poll's chunk, filled in once the poll is over.
    static let placeholder = RowChunk(width: 0)

    var count: Int { partitions.count }

    /// Appends the event in `view`'s value when the one-pass decoder takes it and the message's key, if any, is
    /// the row's (``RowLayout/isKeyed(_:of:by:)``); `nil` when the key can only be told by the typed event (the row
    /// is then the last one, for the caller to check), `false` when the message is left to the slow path.
    /// With `traceHeaders`, the message's trace headers are kept with the row; without `fingerprint`, its
    /// fingerprint is ``MessageFingerprint/unrecorded`` (a digest of every message costs as much as a tenth of
    /// decoding it, and only a reader that records positions needs them all).
    @inline(__always)
    mutating func append(
        _ view: RdKafkaMessageView,
        value: UnsafeRawBufferPointer,
        layout: RowLayout,
        traceHeaders readsHeaders: Bool,
        fingerprint: Bool
    ) -> Bool? {
        guard layout.decode(value, into: &rows) else { return false }
        partitions.append(view.partition)
        offsets.append(view.offset)
        fingerprints.append(fingerprint ? view.fingerprint : .unrecorded)
        if readsHeaders {
            let headers = view.traceHeaders
            if !headers.isEmpty { traceHeaders[partitions.count - 1] = headers }
        }
        guard let key = view.key else { return true }
        guard let agrees = layout.isKeyed(rows.count - 1, of: rows, by: key) else { return nil }
        if !agrees { removeLast() }
        return agrees
    }

    /// Appends the row of a typed event (a tombstone's delete, or an event the slow path decoded).
    mutating func append<Record: ChangeRecord>(_ event: KafkaConsumedEvent<Record>, layout: RowLayout) throws {
        try layout.appendRow(from: event.event, into: &rows)
        partitions.append(event.partition)
        offsets.append(event.offset)
        fingerprints.append(event.fingerprint)
        if !event.traceHeaders.isEmpty { traceHeaders[partitions.count - 1] = event.traceHeaders }
    }

    mutating func removeLast() {
        if !traceHeaders.isEmpty { traceHeaders[partitions.count - 1] = nil }
        rows.removeLastRow()
        partitions.removeLast()
        offsets.removeLast()
        fingerprints.removeLast()
    }

    /// The typed event of row `index`, for a reader that asks for one.
    func consumedEvent<Record: ChangeRecord>(
        _ index: Int,
        _ type: Record.Type,
        topic: String,
        layout: RowLayout
    ) throws -> KafkaConsumedEvent<Record> {
        KafkaConsumedEvent(
            event: try ChangeEvent(row: index, of: rows, layout: layout),
            topic: topic,
            partition: partitions[index],
            offset: offsets[index],
            fingerprint: fingerprints[index],
            traceHeaders: traceHeaders[index] ?? []
        )
    }
}
