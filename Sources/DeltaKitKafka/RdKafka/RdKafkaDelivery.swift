// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.

/// The outcome of one message's delivery, handed from the delivery-report callback to Swift.
struct DeliveryOutcome: Sendable {
    var partition: Int32
    var offset: Int64
    /// `nil` when the broker acknowledged the message.
    var error: KafkaError?
    /// The message key as text, filled in only for failures (for error messages).
    var key: String?
    /// Microseconds from enqueue to this report, or -1 when unknown.
    var latencyMicros: Int64
}

/// Something that awaits delivery reports; passed (retained) as each message's opaque pointer.
class DeliveryReceiver: @unchecked Sendable {
    // Subclasses keep all mutable state behind a Mutex; this base class has no state.
    func delivered(_ outcome: DeliveryOutcome) {}
}
