public import DeltaKit

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

    public var description: String { "malformed message at \(topic)[\(partition)]@\(offset): \(error)" }
}

/// Events taken from a source in one hand-off (`KafkaEventSource.nextBatch(limit:)`).
package struct SourceBatch<Record: ChangeRecord>: Sendable {
    /// The events, in per-partition order.
    package var events: [KafkaConsumedEvent<Record>] = []
    /// Per partition, the offset after the last message of the batch (events and malformed messages alike):
    /// where a restart continues once the batch is applied.
    package var nextOffsets: [Int32: Int64] = [:]
    /// The batch ends at the point where every partition was caught up.
    package var reachesCaughtUp = false
    /// The source ends after this batch (``KafkaEventSource/Configuration/stopWhenCaughtUp``).
    package var isLast = false

    mutating func advance(_ partition: Int32, past offset: Int64) {
        nextOffsets[partition] = max(nextOffsets[partition] ?? 0, offset + 1)
    }
}
