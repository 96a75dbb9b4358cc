// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

extension RdKafkaHandle {
    // MARK: Metadata and admin (blocking: call from a dedicated thread)

    /// One metadata request (all topics, or only `topic` through its handle); `body` reads the answer before it is freed.
    private func withMetadata<T>(
        of topic: String?,
        timeoutMs: Int32,
        _ body: (rd_kafka_metadata) throws -> T
    ) throws -> T {
        let rkt = try topic.map { try self.topic($0).pointer }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(pointer, rkt == nil ? 1 : 0, rkt, &metadata, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md = metadata else { throw RdKafka.error(err) }
        defer { rd_kafka_metadata_destroy(md) }
        return try body(md.pointee)
    }

    /// Partition ids of `topic`, or `nil` when the cluster does not know the topic.
    func partitions(of topic: String, timeoutMs: Int32) throws -> [Int32]? {
        try withMetadata(of: nil, timeoutMs: timeoutMs) { md in
            for i in 0..<Int(md.topic_cnt) {
                let t = md.topics[i]
                guard String(cString: t.topic) == topic else { continue }
                if t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART { return nil }
                if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RdKafka.error(t.err) }
                return (0..<Int(t.partition_cnt)).map { t.partitions[$0].id }.sorted()
            }
            return nil
        }
    }

    /// Fetches metadata for `topic` through its topic handle, so that partitions and leaders are known before the
    /// first message (librdkafka would otherwise look them up lazily on the first produce). Returns the partition
    /// count, or `nil` if the topic does not exist (yet).
    @discardableResult
    func warmUp(topic: String, timeoutMs: Int32) throws -> Int? {
        try withMetadata(of: topic, timeoutMs: timeoutMs) { md in
            guard md.topic_cnt > 0, md.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            return Int(md.topics[0].partition_cnt)
        }
    }

    /// Broker count and the names of all topics (one metadata round trip).
    func clusterMetadata(timeoutMs: Int32) throws -> (brokers: Int, topics: [String]) {
        try withMetadata(of: nil, timeoutMs: timeoutMs) { md in
            (Int(md.broker_cnt), (0..<Int(md.topic_cnt)).map { String(cString: md.topics[$0].topic) })
        }
    }

    /// Creates a topic; `true` if created, `false` if it already existed.
    func createTopic(
        _ name: String,
        partitions: Int32,
        replicationFactor: Int32,
        config: [String: String],
        timeoutMs: Int32
    ) throws -> Bool {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(name, partitions, replicationFactor, &errstr, errstr.count) else {
            throw DeltaKitError(code: .invalidConfiguration, message: "topic '\(name)': \(errorText(errstr))")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        for (key, value) in config.sorted(by: { $0.key < $1.key }) {
            let err = rd_kafka_NewTopic_set_config(newTopic, key, value)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RdKafka.error(err, message: "topic config \(key)=\(value)") }
        }
        let options = rd_kafka_AdminOptions_new(pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errstr, errstr.count)
        let queue = rd_kafka_queue_new(pointer)
        defer { rd_kafka_queue_destroy(queue) }
        var topicsArray: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(pointer, &topicsArray, 1, options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 1000) else {
            throw RdKafka.error(RD_KAFKA_RESP_ERR__TIMED_OUT, message: "CreateTopics for '\(name)' got no answer")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventErr = rd_kafka_event_error(event)
        if eventErr != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw RdKafka.error(eventErr, message: String(cString: rd_kafka_event_error_string(event)))
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw RdKafka.error(RD_KAFKA_RESP_ERR__FAIL, message: "CreateTopics returned no result")
        }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count), count == 1, let r = results[0] else {
            throw RdKafka.error(RD_KAFKA_RESP_ERR__FAIL, message: "CreateTopics returned \(count) results")
        }
        let err = rd_kafka_topic_result_error(r)
        if err == RD_KAFKA_RESP_ERR_NO_ERROR { return true }
        if err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS { return false }
        let text = rd_kafka_topic_result_error_string(r).map { String(cString: $0) }
        throw RdKafka.error(err, message: text)
    }
}
