import DeltaKit

/// The messages a sink produces for one chunk of a send, encoded before any is produced, into one buffer: an
/// event's key and wire JSON, a delete's tombstone (its key, a null value, headers), or a raw message.
///
/// Encoding first keeps producing a loop over finished messages, each its own delivery; one buffer for the chunk
/// keeps the hot path to a few allocations per chunk rather than two per event.
struct OutgoingMessages {
    struct Message {
        /// Where the key is in ``bytes``; `nil` for a message without a key.
        var key: Range<Int>?
        /// Where the value is in ``bytes``; `nil` for a tombstone (a null value).
        var value: Range<Int>?
        /// The message's headers: a tombstone's order and timestamp, an event's trace context.
        var headers: [(name: String, value: [UInt8])] = []
    }

    /// Every key and value, one after the other.
    private(set) var bytes: [UInt8] = []
    private(set) var messages: [Message] = []

    var count: Int { messages.count }

    /// Empties the chunk, keeping its storage for the next one.
    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        messages.removeAll(keepingCapacity: true)
    }

    /// Appends a message with `key` (or none) and `value`.
    mutating func append(key: [UInt8]?, value: [UInt8]) {
        let keyRange = key.map { key in
            let start = bytes.count
            bytes += key
            return start..<bytes.count
        }
        let start = bytes.count
        bytes += value
        messages.append(Message(key: keyRange, value: start..<bytes.count))
    }

    /// Appends `event`'s message — keyed by its record key (`keyBytes`), its wire JSON as the value — and, for a
    /// delete when `tombstone` is set, the tombstone that follows it: the same key, a null value, and the delete's
    /// order and timestamp in the headers `KafkaEventSink.Configuration` names. Nothing is appended when `event`
    /// cannot be encoded.
    ///
    /// `trace` (the trace context's propagation headers, usually none) goes with the event's message, and with its
    /// tombstone, so that a consumer reading only the tombstone continues the same trace.
    mutating func append<Record>(
        _ event: ChangeEvent<Record>,
        writer: WireEventWriter,
        tombstone: Bool,
        trace: [TraceHeader] = []
    ) throws {
        let start = bytes.count
        let key: Range<Int>
        do {
            try writer.append(event, to: &bytes)
            let keyStart = bytes.count
            try event.appendKeyBytes(to: &bytes)
            key = keyStart..<bytes.count
        } catch {
            bytes.removeSubrange(start...)
            throw error
        }
        let traceHeaders: [(name: String, value: [UInt8])] =
            trace.isEmpty ? [] : trace.map { ($0.name, Array($0.value.utf8)) }
        messages.append(Message(key: key, value: start..<key.lowerBound, headers: traceHeaders))
        guard tombstone, event.operation == .delete else { return }
        typealias Headers = KafkaEventSink<Record>.Configuration
        messages.append(
            Message(
                key: key,
                value: nil,
                headers: [
                    (Headers.tombstoneOrderHeader, Array(String(event.order).utf8)),
                    (Headers.tombstoneTimestampHeader, Array(EventTimestamp.format(event.timestamp).utf8)),
                ] + traceHeaders
            )
        )
    }

    /// Appends the message of an event already encoded — its key, its JSON as the value, its trace headers — and,
    /// for a delete when `tombstoneHeaders` are given (the names `KafkaEventSink.Configuration` gives a tombstone's
    /// order and timestamp headers, when the sink sends tombstones), its tombstone: the messages
    /// ``append(_:writer:tombstone:trace:)`` makes for the event the JSON holds.
    mutating func append(_ event: EncodedEvent, tombstoneHeaders: (order: String, timestamp: String)?) {
        let keyStart = bytes.count
        bytes += event.key.utf8
        let key = keyStart..<bytes.count
        bytes += event.json.utf8
        let traceHeaders: [(name: String, value: [UInt8])] =
            event.trace.isEmpty ? [] : event.trace.map { ($0.name, Array($0.value.utf8)) }
        messages.append(Message(key: key, value: key.upperBound..<bytes.count, headers: traceHeaders))
        guard let tombstoneHeaders, event.isDelete else { return }
        messages.append(
            Message(
                key: key,
                value: nil,
                headers: [
                    (tombstoneHeaders.order, Array(String(event.order).utf8)),
                    (tombstoneHeaders.timestamp, Array(event.timestamp.utf8)),
                ] + traceHeaders
            )
        )
    }

    /// The key of message `index` as text, for errors.
    func keyText(_ index: Int) -> String {
        messages[index].key.map { String(decoding: bytes[$0], as: UTF8.self) } ?? "(none)"
    }

    /// Enqueues message `index` on `handle` for `topic`; on `.enqueued`, `receiver` gets its delivery report.
    func produce(
        _ index: Int,
        topic: RdKafkaHandle.TopicPointer,
        on handle: RdKafkaHandle,
        receiver: DeliveryReceiver
    ) -> RdKafkaHandle.ProduceResult {
        let message = messages[index]
        return bytes.withUnsafeBytes { bytes in
            let key = message.key.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
            let value = message.value.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
            // The common message, with a value and no header, takes librdkafka's plain call.
            guard let value, message.headers.isEmpty else {
                return handle.produce(
                    topic: topic,
                    key: key,
                    value: value,
                    headers: message.headers,
                    receiver: receiver
                )
            }
            return handle.produce(topic: topic, key: key, value: value, receiver: receiver)
        }
    }
}
