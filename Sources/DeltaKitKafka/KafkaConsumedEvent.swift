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
