// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

extension RdKafkaHandle {
    // MARK: Consuming (called from the consumer's dedicated thread)

    func subscribe(_ topics: [String]) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, -1) }  // RD_KAFKA_PARTITION_UA
        let err = rd_kafka_subscribe(pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RdKafka.error(err) }
    }

    /// Assigns `partitions` of `topic` directly (no group), each starting at `overrides[partition]` or else at `offset`
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

    /// Takes up to `limit` messages (or events) that the consumer's queue already holds, without waiting, and
    /// hands each to `body` in librdkafka's own buffer, in order (after telling `willTake` how many), with whether
    /// it is the last of its partition's run in the batch; returns how many it took.
    ///
    /// One `rd_kafka_consume_batch_queue` call takes the queue's lock and reads the clock once for the whole
    /// batch, where `rd_kafka_consumer_poll` does both per message. It serves the queue's other events
    /// (rebalances, errors) as the poll does: they arrive as messages with an error code, or through the
    /// callbacks.
    func consumeAvailable(
        upTo limit: Int,
        willTake: (Int) -> Void,
        _ body: (RdKafkaMessageView, _ endsRun: Bool) -> Void
    ) -> Int {
        guard let consumerQueue, limit > 0 else { return 0 }
        return withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<rd_kafka_message_t>?.self, capacity: limit) {
            messages in
            let count = rd_kafka_consume_batch_queue(consumerQueue, 0, messages.baseAddress, limit)
            guard count > 0 else { return 0 }
            willTake(count)
            for index in 0..<count {
                guard let message = messages[index] else { continue }
                let next = index + 1 < count ? messages[index + 1] : nil
                body(
                    RdKafkaMessageView(message),
                    next.map { $0.pointee.partition != message.pointee.partition } ?? true
                )
                rd_kafka_message_destroy(message)
            }
            return count
        }
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

extension RdKafkaHandle {
    /// Takes the errors waiting on a consumer's queue — nobody serves it before the source's poll thread starts —
    /// and notes them on ``callbacks`` as the error callback would (an authentication failure by its code), to
    /// explain a failed connect. Other events on the queue are dropped: call it only on a consumer that failed to
    /// connect and is about to be destroyed.
    func noteQueuedErrorsAfterFailedConnect() {
        guard kind == .consumer, let queue = rd_kafka_queue_get_consumer(pointer) ?? rd_kafka_queue_get_main(pointer)
        else { return }
        defer { rd_kafka_queue_destroy(queue) }
        while let event = rd_kafka_queue_poll(queue, 0) {
            defer { rd_kafka_event_destroy(event) }
            guard rd_kafka_event_type(event) == RD_KAFKA_EVENT_ERROR else { continue }
            let code = rd_kafka_event_error(event)
            let message = rd_kafka_event_error_string(event).map { String(cString: $0) }
            if let message { callbacks.noteProblem(message) }
            if code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED {
                callbacks.noteAuthenticationFailure(RdKafka.error(code, message: message))
            }
        }
    }
}
