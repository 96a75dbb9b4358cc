// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit

/// A message read by a consumer, copied out of librdkafka's buffers.
struct RdKafkaMessage: Sendable {
    var topic: String
    var partition: Int32
    var offset: Int64
    var key: [UInt8]?
    var value: [UInt8]?
    /// The message's timestamp in milliseconds since 1970 (create or log-append time); -1 when it has none.
    var timestamp: Int64 = -1
    /// The headers of a message whose value is null (a tombstone); empty otherwise (not read, to save the cost).
    var tombstoneHeaders: [String: [UInt8]] = [:]
    /// Every header of the message, as text (empty when it has none): where a trace context is read from.
    var traceHeaders: [TraceHeader] = []
    /// Set for consumer errors; `isPartitionEOF` for the end-of-partition signal.
    var error: KafkaError?
    var isPartitionEOF: Bool

    /// What identifies this message in its partition's log (as ``RdKafkaMessageView/fingerprint`` does in place).
    var fingerprint: MessageFingerprint {
        var digest = MessageFingerprint.Digest()
        digest.add(key)
        digest.add(value)
        return MessageFingerprint(offset: offset, timestamp: timestamp, digest: digest.value)
    }
}
