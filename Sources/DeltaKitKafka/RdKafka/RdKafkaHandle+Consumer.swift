// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

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

/// A consumed message in librdkafka's buffer, valid only inside ``RdKafkaHandle/consumerPoll(timeoutMs:_:)``'s
/// body: the hot path reads the value in place; anything unusual is copied out (``copy()``).
struct RdKafkaMessageView {
    private let message: UnsafeMutablePointer<rd_kafka_message_t>

    fileprivate init(_ message: UnsafeMutablePointer<rd_kafka_message_t>) { self.message = message }

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

extension RdKafkaHandle {
    // MARK: Consuming (called from the consumer's dedicated thread)

    func subscribe(_ topics: [String]) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, -1) }  // RD_KAFKA_PARTITION_UA
        let err = rd_kafka_subscribe(pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RdKafka.error(err) }
    }

    /// Assigns partitions directly (no group), starting at `offset` (`-2` beginning, `-1` end).
    /// Assigns `partitions` of `topic`, each starting at `overrides[partition]` or else at `offset`
    /// (an offset, or librdkafka's logical -2 beginning / -1 end).
    func assign(topic: String, partitions: [Int32], offset: Int64, overrides: [Int32: Int64] = [:]) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in partitions {
            rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset = overrides[p] ?? offset
        }
        let err = rd_kafka_assign(pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RdKafka.error(err) }
    }

    /// Adds `partitions` of `topic` to the assignment, each starting at `offset` (-2: the beginning), keeping the
    /// positions of the partitions already assigned.
    func addToAssignment(topic: String, partitions: [Int32], offset: Int64) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(max(1, partitions.count)))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in partitions { rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset = offset }
        if let error = rd_kafka_incremental_assign(pointer, list) {
            defer { rd_kafka_error_destroy(error) }
            throw RdKafka.error(rd_kafka_error_code(error), message: String(cString: rd_kafka_error_string(error)))
        }
    }

    /// The partition's low and high watermarks, asked from its leader (blocking up to `timeoutMs`).
    func queryWatermarks(topic: String, partition: Int32, timeoutMs: Int32) -> (low: Int64, high: Int64)? {
        var low: Int64 = -1
        var high: Int64 = -1
        let err = rd_kafka_query_watermark_offsets(pointer, topic, partition, &low, &high, timeoutMs)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? (low, high) : nil
    }

    /// The current assignment as `(topic, partition)` pairs.
    func assignment() -> [PartitionID] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return (0..<Int(list.pointee.cnt)).map {
            PartitionID(
                topic: String(cString: list.pointee.elems[$0].topic),
                partition: list.pointee.elems[$0].partition
            )
        }
    }

    /// The partition's high watermark as librdkafka last saw it in a fetch response (no request is sent);
    /// `nil` when it has not fetched the partition yet.
    func cachedHighWatermark(topic: String, partition: Int32) -> Int64? {
        var low: Int64 = -1
        var high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(pointer, topic, partition, &low, &high)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { return nil }
        return high
    }

    func pause(_ partitions: [PartitionID]) { withList(partitions) { _ = rd_kafka_pause_partitions(pointer, $0) } }
    func resume(_ partitions: [PartitionID]) { withList(partitions) { _ = rd_kafka_resume_partitions(pointer, $0) } }

    /// Stores `offset` (the next offset to read) for auto-commit.
    func storeOffset(_ partition: PartitionID, next offset: Int64) -> KafkaError? {
        var result: KafkaError?
        withList([partition]) { list in
            list.pointee.elems[0].offset = offset
            let err = rd_kafka_offsets_store(pointer, list)
            let perPartition = list.pointee.elems[0].err
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                result = RdKafka.error(err)
            } else if perPartition != RD_KAFKA_RESP_ERR_NO_ERROR {
                result = RdKafka.error(perPartition)
            }
        }
        return result
    }

    /// Synchronously commits all stored offsets. `_NO_OFFSET` (nothing to commit) is not an error.
    func commitStored() -> KafkaError? {
        let err = rd_kafka_commit(pointer, nil, 0)
        if err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET { return nil }
        return RdKafka.error(err)
    }

    /// Committed offsets of `partitions` for this consumer's group (blocking).
    func committed(_ partitions: [PartitionID], timeoutMs: Int32) -> [PartitionID: Int64] {
        var result: [PartitionID: Int64] = [:]
        withList(partitions) { list in
            guard rd_kafka_committed(pointer, list, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR else { return }
            for i in 0..<Int(list.pointee.cnt) {
                let e = list.pointee.elems[i]
                result[PartitionID(topic: String(cString: e.topic), partition: e.partition)] = e.offset
            }
        }
        return result
    }

    /// Leaves the group (committing stored offsets when auto-commit is on).
    func closeConsumer() -> KafkaError? {
        let err = rd_kafka_consumer_close(pointer)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : RdKafka.error(err)
    }

    /// Polls one consumer message or event; `nil` on timeout.
    func consumerPoll(timeoutMs: Int32) -> RdKafkaMessage? {
        consumerPoll(timeoutMs: timeoutMs) { $0.copy() }
    }

    /// Polls one consumer message or event and hands it to `body` in librdkafka's own buffer (no copy); `nil`
    /// on timeout. The view is valid only during `body`.
    func consumerPoll<T>(timeoutMs: Int32, _ body: (RdKafkaMessageView) -> T) -> T? {
        guard let m = rd_kafka_consumer_poll(pointer, timeoutMs) else { return nil }
        defer { rd_kafka_message_destroy(m) }
        return body(RdKafkaMessageView(m))
    }
    private func withList(
        _ partitions: [PartitionID],
        _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void
    ) {
        let list = rd_kafka_topic_partition_list_new(Int32(max(1, partitions.count)))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in partitions { rd_kafka_topic_partition_list_add(list, p.topic, p.partition) }
        body(list)
    }
}
