public import DeltaKit
public import Instrumentation

/// A change event read from Kafka, with where it came from.
///
/// Pass it to ``KafkaEventSource/acknowledge(_:)`` once the application is done with it; only then is its
/// offset committed (at-least-once).
public struct KafkaConsumedEvent<Record: ChangeRecord>: Sendable {
    /// The decoded event.
    public var event: ChangeEvent<Record>
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The message's offset in its partition.
    public var offset: Int64
    /// What identifies the message in its partition's log (kept by positioned stores with their positions).
    var fingerprint = MessageFingerprint(offset: -1, timestamp: -1, digest: 0)
    /// The message's headers (empty when it has none), where ``traceContext`` is read from.
    package var traceHeaders: [TraceHeader] = []

    /// The trace context the producer sent with the event (the span active when it was sent or enqueued in an
    /// outbox), as the active instrument reads it from the message's headers; `nil` when the message carries none
    /// or no tracer is bootstrapped. Continue the trace with `withSpan(_:context:)`.
    public var traceContext: ServiceContext? { TraceHeaders.context(from: traceHeaders) }
}

/// A message that is not a valid change event, reported with where it is and why it was refused.
public struct MalformedMessage: Sendable, CustomStringConvertible {
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The offset.
    public var offset: Int64
    /// The raw key.
    public var key: [UInt8]?
    /// The raw value.
    public var value: [UInt8]?
    /// Why it could not be decoded.
    public var error: ChangeEventDecodingError
    /// What identifies the message in its partition's log.
    var fingerprint: MessageFingerprint?

    public var description: String { "malformed message at \(topic)[\(partition)]@\(offset): \(error)" }
}

/// Events taken from a source in one hand-off (``KafkaEventSource/batches(limit:)``).
struct SourceBatch<Record: ChangeRecord>: Sendable {
    /// The events, in per-partition order (for a record type without a row layout).
    var events: [KafkaConsumedEvent<Record>] = []
    /// The events as rows, in per-partition order (for a record type with a row layout: every event of the batch):
    /// ranges of the chunks the poll thread filled, not copied.
    var segments: [(chunk: RowChunk, range: Range<Int>)] = []
    private var segmentRows = 0
    /// The number of events in the batch.
    var eventCount: Int { events.count + segmentRows }

    /// Every event of the batch as a typed event (building the records of its rows).
    func typedEvents(layout: RowLayout?) throws -> [ChangeEvent<Record>] {
        guard let layout else { return events.map(\.event) }
        var typed = events.map(\.event)
        for (chunk, range) in segments {
            for row in range { typed.append(try ChangeEvent(row: row, of: chunk.rows, layout: layout)) }
        }
        return typed
    }
    /// Whether an event of the batch came with headers (a trace context, usually): the materializer then applies
    /// it in its own span. A check per segment, not per row, for the common batch without any.
    var carriesTraceHeaders: Bool {
        for (chunk, range) in segments where !chunk.traceHeaders.isEmpty {
            if chunk.traceHeaders.keys.contains(where: range.contains) { return true }
        }
        return events.contains { !$0.traceHeaders.isEmpty }
    }

    /// Every event of the batch as a typed event with its message's headers (``typedEvents(layout:)``).
    func tracedEvents(layout: RowLayout?) throws -> [(event: ChangeEvent<Record>, trace: [TraceHeader])] {
        var typed = events.map { ($0.event, $0.traceHeaders) }
        guard let layout else { return typed }
        for (chunk, range) in segments {
            for row in range {
                typed.append((try ChangeEvent(row: row, of: chunk.rows, layout: layout), chunk.traceHeaders[row] ?? []))
            }
        }
        return typed
    }

    /// Per partition, the offset after the last message of the batch (events and malformed messages alike):
    /// where a restart continues once the batch is applied.
    var nextOffsets: [Int32: Int64] = [:]
    /// Per partition, the fingerprint of the last message of the batch: recorded with the positions, it tells the
    /// same log from a recreated topic when reading resumes.
    var lastFingerprints: [Int32: MessageFingerprint] = [:]
    /// The malformed messages skipped within the batch (reported already; acknowledged with the batch).
    var skipped: [(partition: Int32, offset: Int64)] = []
    /// The batch ends at the point where every partition was caught up.
    var reachesCaughtUp = false
    /// The source ends after this batch (``KafkaEventSource/Configuration/stopWhenCaughtUp``).
    var isLast = false

    mutating func advance(_ partition: Int32, past offset: Int64, fingerprint: MessageFingerprint?) {
        Self.advance(&nextOffsets, &lastFingerprints, partition, past: offset, fingerprint: fingerprint)
    }

    /// Takes rows `range` of `chunk`: the rows, and the positions past them.
    mutating func take(_ chunk: RowChunk, _ range: Range<Int>) {
        segments.append((chunk, range))
        segmentRows += range.count
        Self.advance(&nextOffsets, &lastFingerprints, past: chunk, range)
    }

    private static func advance(
        _ nextOffsets: inout [Int32: Int64],
        _ lastFingerprints: inout [Int32: MessageFingerprint],
        _ partition: Int32,
        past offset: Int64,
        fingerprint: MessageFingerprint?
    ) {
        guard offset + 1 > nextOffsets[partition] ?? 0 else { return }
        nextOffsets[partition] = offset + 1
        lastFingerprints[partition] = fingerprint
    }

    /// The positions past rows `range` of `chunk` (not generic: it runs for every row).
    private static func advance(
        _ nextOffsets: inout [Int32: Int64],
        _ lastFingerprints: inout [Int32: MessageFingerprint],
        past chunk: RowChunk,
        _ range: Range<Int>
    ) {
        // Rows come in runs of one partition: the dictionaries are updated once per run, at its highest offset.
        var index = range.lowerBound
        while index < range.upperBound {
            let partition = chunk.partitions[index]
            var highest = index
            index += 1
            while index < range.upperBound, chunk.partitions[index] == partition {
                if chunk.offsets[index] >= chunk.offsets[highest] { highest = index }
                index += 1
            }
            advance(
                &nextOffsets,
                &lastFingerprints,
                partition,
                past: chunk.offsets[highest],
                fingerprint: chunk.fingerprints[highest]
            )
        }
    }
}

/// What a ``KafkaEventSource`` notices about the cluster while it reads, reported to its `onSourceEvent` handler.
public enum KafkaSourceEvent: Sendable, Hashable, CustomStringConvertible {
    /// librdkafka reported a problem reaching the cluster (all brokers down, a transport error…); it keeps
    /// retrying, and no events arrive meanwhile. Reported once until the source recovers.
    case connectionProblem(String)
    /// Messages or partition ends arrive again after a ``connectionProblem(_:)``.
    case recovered
    /// A partition's offsets went back: the next offset was `expected` but the broker now starts at `found`, or
    /// (`found` `nil`) no longer has the last message read. The broker lost data or the topic was deleted and
    /// recreated; state built from the old messages may hold records the topic no longer has.
    case offsetsWentBack(topic: String, partition: Int32, expected: Int64, found: Int64?)

    /// A one-line description for logs and terminals.
    public var description: String {
        switch self {
        case .connectionProblem(let message): "cannot reach Kafka (\(message)); retrying, no changes until it is back"
        case .recovered: "Kafka is reachable again"
        case .offsetsWentBack(let topic, let partition, let expected, let found):
            "partition \(partition) of '\(topic)' went back in time: the next offset was \(expected), \(found.map { "the broker now has \($0)" } ?? "and the broker no longer has offset \(expected - 1)"); it lost or recreated the topic, so the state may hold records the topic no longer has"
        }
    }
}
