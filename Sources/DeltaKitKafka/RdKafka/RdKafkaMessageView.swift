// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit

/// A consumed message in librdkafka's buffer, valid only inside ``RdKafkaHandle/consumerPoll(timeoutMs:_:)``'s
/// body: the hot path reads the value in place; anything unusual is copied out (``copy()``).
struct RdKafkaMessageView {
    private let message: UnsafeMutablePointer<rd_kafka_message_t>

    /// Only `RdKafkaHandle.consumerPoll(timeoutMs:_:)` makes one, for the message it polled.
    init(_ message: UnsafeMutablePointer<rd_kafka_message_t>) { self.message = message }

    var partition: Int32 { message.pointee.partition }
    var offset: Int64 { message.pointee.offset }

    /// The message's timestamp in milliseconds since 1970; -1 when it has none.
    var timestamp: Int64 { rd_kafka_message_timestamp(message, nil) }

    /// What identifies this message in its partition's log (offset, timestamp, a digest of key and value).
    var fingerprint: MessageFingerprint {
        let m = message.pointee
        var digest = MessageFingerprint.Digest()
        digest.add(m.key.map { UnsafeRawBufferPointer(start: $0, count: m.key_len) })
        digest.add(m.payload.map { UnsafeRawBufferPointer(start: $0, count: m.len) })
        return MessageFingerprint(offset: m.offset, timestamp: timestamp, digest: digest.value)
    }

    /// The value of an ordinary message (no error, not a partition end, not a null value); `nil` otherwise.
    var plainValue: UnsafeRawBufferPointer? {
        let m = message.pointee
        guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR, let payload = m.payload else { return nil }
        return UnsafeRawBufferPointer(start: payload, count: m.len)
    }

    /// The message key, in place; `nil` when the message has none.
    var key: UnsafeRawBufferPointer? {
        let m = message.pointee
        guard let key = m.key else { return nil }
        return UnsafeRawBufferPointer(start: key, count: m.key_len)
    }

    /// The message's headers as trace headers (values as UTF-8 text), but for DeltaKit's own (`deltakit-…`, a
    /// tombstone's order and timestamp); empty when the message has none, which is every message of a producer
    /// that does not trace. librdkafka parses (and allocates) to tell, even then: the hot path asks only while an
    /// instrument is active.
    var traceHeaders: [TraceHeader] {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else {
            return []
        }
        var found: [TraceHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            if let name = name.map(String.init(cString:)), !name.hasPrefix("deltakit-") {
                let text = value.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: size), as: UTF8.self) }
                found.append(TraceHeader(name: name, value: text ?? ""))
            }
            index += 1
        }
        return found
    }

    /// The message copied out of librdkafka's buffers (with a tombstone's headers).
    func copy() -> RdKafkaMessage {
        let msg = message.pointee
        let topic = msg.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        func bytes(_ p: UnsafeMutableRawPointer?, _ n: Int) -> [UInt8]? {
            guard let p else { return nil }
            return Array(UnsafeRawBufferPointer(start: p, count: n))
        }
        var copied = RdKafkaMessage(
            topic: topic,
            partition: msg.partition,
            offset: msg.offset,
            key: nil,
            value: nil,
            error: nil,
            isPartitionEOF: msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF
        )
        if copied.isPartitionEOF { return copied }
        if msg.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = String(cString: rd_kafka_message_errstr(message))
            copied.error = RdKafka.error(msg.err, message: text, fatal: msg.err == RD_KAFKA_RESP_ERR__FATAL)
            return copied
        }
        copied.key = bytes(msg.key, msg.key_len)
        copied.value = bytes(msg.payload, msg.len)
        copied.timestamp = timestamp
        copied.traceHeaders = traceHeaders
        if msg.payload == nil {
            var headers: OpaquePointer?
            if rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers {
                var index = 0
                var name: UnsafePointer<CChar>?
                var value: UnsafeRawPointer?
                var size = 0
                while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                    if let name {
                        copied.tombstoneHeaders[String(cString: name)] =
                            value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                    }
                    index += 1
                }
            }
        }
        return copied
    }
}
