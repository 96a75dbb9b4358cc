// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

/// Facts about the librdkafka library in use.
package enum RdKafka {
    /// `rd_kafka_version_str()` of the library loaded at run time.
    package static var versionString: String { String(cString: rd_kafka_version_str()) }
    /// `rd_kafka_version()` of the library loaded at run time (e.g. `0x020002ff` for 2.0.2).
    package static var version: Int { Int(rd_kafka_version()) }
    /// `RD_KAFKA_VERSION` of the headers DeltaKit was built against.
    package static var headerVersion: Int { Int(RD_KAFKA_VERSION) }

    static func error(_ err: rd_kafka_resp_err_t, message: String? = nil, fatal: Bool = false) -> KafkaError {
        KafkaError(
            code: err.rawValue,
            name: String(cString: rd_kafka_err2name(err)),
            message: message ?? String(cString: rd_kafka_err2str(err)),
            isFatal: fatal
        )
    }
}

/// Receives librdkafka's client-level callbacks (logs and errors). Retained by the handle for its lifetime.
final class RdKafkaCallbacks: Sendable {
    let logger: Logger
    private let errorHandler = Mutex<(@Sendable (KafkaError) -> Void)?>(nil)
    private let problem = Mutex<String?>(nil)

    /// The last warning or error librdkafka reported (log or error callback), to explain a failed connect.
    var lastProblem: String? { problem.withLock { $0 } }

    fileprivate func noteProblem(_ text: String) {
        // A failed version negotiation explains everything after it: keep it over later, vaguer messages.
        problem.withLock { current in
            if current?.contains("ApiVersionRequest failed") == true, !text.contains("ApiVersionRequest failed") {
                return
            }
            current = text
        }
    }

    init(logger: Logger) { self.logger = logger }

    func onError(_ handler: @escaping @Sendable (KafkaError) -> Void) { errorHandler.withLock { $0 = handler } }

    fileprivate func error(_ error: KafkaError) {
        let handler = errorHandler.withLock { $0 }
        if let handler { handler(error) } else { logger.warning("librdkafka error: \(error)") }
    }
}

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

/// A message read by a consumer, copied out of librdkafka's buffers.
struct RdKafkaMessage: Sendable {
    var topic: String
    var partition: Int32
    var offset: Int64
    var key: [UInt8]?
    var value: [UInt8]?
    /// The headers of a message whose value is null (a tombstone); empty otherwise (not read, to save the cost).
    var tombstoneHeaders: [String: [UInt8]] = [:]
    /// Set for consumer errors; `isPartitionEOF` for the end-of-partition signal.
    var error: KafkaError?
    var isPartitionEOF: Bool
}

/// Owns one `rd_kafka_t` (producer or consumer) and everything created from it.
///
/// `@unchecked Sendable` is sound: librdkafka documents every call on an `rd_kafka_t` as thread-safe,
/// apart from `rd_kafka_destroy`, which only `deinit` calls once no other reference exists. The cached
/// topic handles are guarded by a `Mutex`.
final class RdKafkaHandle: @unchecked Sendable {
    enum Kind { case producer, consumer }

    private let pointer: OpaquePointer
    let callbacks: RdKafkaCallbacks
    private let callbacksRef: Unmanaged<RdKafkaCallbacks>
    private let topics = Mutex<[String: TopicPointer]>([:])
    let kind: Kind

    /// Creates a client from ordered `properties` (later ones win).
    init(kind: Kind, properties: [(String, String)], callbacks: RdKafkaCallbacks) throws {
        guard let conf = rd_kafka_conf_new() else {
            throw DeltaKitError(code: .invalidConfiguration, message: "rd_kafka_conf_new failed")
        }
        var errstr = [CChar](repeating: 0, count: 512)
        for (name, value) in properties {
            if rd_kafka_conf_set(conf, name, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let shown = name.contains("password") || name.contains("secret") ? "<redacted>" : value
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "librdkafka property \(name)=\(shown) rejected: \(errorText(errstr)) (librdkafka \(RdKafka.versionString))"
                )
            }
        }
        let ref = Unmanaged.passRetained(callbacks)
        rd_kafka_conf_set_opaque(conf, ref.toOpaque())
        rd_kafka_conf_set_log_cb(conf, rdkafkaLog)
        rd_kafka_conf_set_error_cb(conf, rdkafkaError)
        if kind == .producer { rd_kafka_conf_set_dr_msg_cb(conf, rdkafkaDelivery) }
        guard
            let rk = rd_kafka_new(
                kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER,
                conf,
                &errstr,
                errstr.count
            )
        else {
            rd_kafka_conf_destroy(conf)
            ref.release()
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "cannot create a Kafka client: \(errorText(errstr))"
            )
        }
        self.pointer = rk
        self.callbacks = callbacks
        self.callbacksRef = ref
        self.kind = kind
        if kind == .consumer { rd_kafka_poll_set_consumer(rk) }
    }

    deinit {
        topics.withLock { topics in
            for topic in topics.values { rd_kafka_topic_destroy(topic.pointer) }
            topics.removeAll()
        }
        rd_kafka_destroy(pointer)
        callbacksRef.release()
    }

    // MARK: Polling (called only from the handle's dedicated thread)

    /// Serves delivery reports, logs and errors; blocks up to `timeoutMs`. Returns the number of events served.
    @discardableResult
    func poll(timeoutMs: Int32) -> Int32 { rd_kafka_poll(pointer, timeoutMs) }

    /// Number of messages in the producer's queues and in flight.
    var outstandingMessages: Int32 { rd_kafka_outq_len(pointer) }

    /// Waits (blocking) until all queued messages are delivered or `timeoutMs` passes.
    func flush(timeoutMs: Int32) -> KafkaError? {
        let err = rd_kafka_flush(pointer, timeoutMs)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : RdKafka.error(err)
    }

    /// Purges queued and in-flight messages; their delivery reports then carry `_PURGE_*` errors.
    func purgeAll() {
        _ = rd_kafka_purge(pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// The current fatal error, if the client is in a fatal state.
    var fatalError: KafkaError? {
        var errstr = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(pointer, &errstr, errstr.count)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : RdKafka.error(err, message: errorText(errstr), fatal: true)
    }

    // MARK: Producing

    enum ProduceResult {
        case enqueued
        case queueFull
        case failed(KafkaError)
    }

    private struct TopicPointer: @unchecked Sendable {
        // An rd_kafka_topic_t is thread-safe like its rd_kafka_t; destroyed only in the handle's deinit.
        let pointer: OpaquePointer
    }

    private func topicPointer(_ name: String) throws -> OpaquePointer {
        try topics.withLock { topics in
            if let existing = topics[name] { return existing.pointer }
            guard let rkt = rd_kafka_topic_new(pointer, name, nil) else {
                let err = rd_kafka_last_error()
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message: "invalid topic name '\(name)'",
                    underlying: RdKafka.error(err)
                )
            }
            topics[name] = TopicPointer(pointer: rkt)
            return rkt
        }
    }

    /// Enqueues one message (payload copied). On `.enqueued` the receiver gets exactly one delivery report.
    func produce(topic: String, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, receiver: DeliveryReceiver)
        throws -> ProduceResult
    {
        let rkt = try topicPointer(topic)
        let opaque = Unmanaged.passRetained(receiver).toOpaque()
        let status = rd_kafka_produce(
            rkt,
            -1,  // RD_KAFKA_PARTITION_UA: the configured partitioner picks by key
            RD_KAFKA_MSG_F_COPY,
            UnsafeMutableRawPointer(mutating: value.baseAddress),
            value.count,
            key?.baseAddress,
            key?.count ?? 0,
            opaque
        )
        if status == 0 { return .enqueued }
        Unmanaged<DeliveryReceiver>.fromOpaque(opaque).release()
        let err = rd_kafka_last_error()
        if err == RD_KAFKA_RESP_ERR__QUEUE_FULL { return .queueFull }
        return .failed(RdKafka.error(err, fatal: err == RD_KAFKA_RESP_ERR__FATAL))
    }

    /// Enqueues a tombstone: `key` with a null value and the given headers. On `.enqueued` the receiver gets
    /// exactly one delivery report.
    func produceTombstone(
        topic: String,
        key: UnsafeRawBufferPointer,
        headers: [(name: String, value: [UInt8])],
        receiver: DeliveryReceiver
    ) throws -> ProduceResult {
        let rkt = try topicPointer(topic)
        let opaque = Unmanaged.passRetained(receiver).toOpaque()
        let names = headers.map { strdup($0.name) }
        defer { names.forEach { free($0) } }
        // Every header value in one buffer, so that one borrow covers the call.
        let blob = headers.flatMap(\.value)
        var starts: [Int] = []
        var position = 0
        for header in headers {
            starts.append(position)
            position += header.value.count
        }
        let error: OpaquePointer? = blob.withUnsafeBytes { blob in
            var fields: [rd_kafka_vu_t] = []
            func field(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                var vu = rd_kafka_vu_t()
                vu.vtype = type
                set(&vu)
                fields.append(vu)
            }
            field(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = rkt }
            field(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
            field(RD_KAFKA_VTYPE_KEY) {
                $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                $0.u.mem.size = key.count
            }
            field(RD_KAFKA_VTYPE_VALUE) {  // a null value: no pointer, no size
                $0.u.mem.ptr = nil
                $0.u.mem.size = 0
            }
            field(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
            for (index, header) in headers.enumerated() {
                let name = names[index]
                field(RD_KAFKA_VTYPE_HEADER) {
                    $0.u.header.name = UnsafePointer(name)
                    $0.u.header.val = blob.baseAddress.map { UnsafeRawPointer($0 + starts[index]) }
                    $0.u.header.size = header.value.count
                }
            }
            return fields.withUnsafeBufferPointer { rd_kafka_produceva(pointer, $0.baseAddress, $0.count) }
        }
        guard let error else { return .enqueued }
        defer { rd_kafka_error_destroy(error) }
        Unmanaged<DeliveryReceiver>.fromOpaque(opaque).release()
        let code = rd_kafka_error_code(error)
        if code == RD_KAFKA_RESP_ERR__QUEUE_FULL { return .queueFull }
        return .failed(RdKafka.error(code, fatal: rd_kafka_error_is_fatal(error) != 0))
    }

    // MARK: Metadata and admin (blocking: call from a dedicated thread)

    /// One metadata request (all topics, or only `topic` through its handle); `body` reads the answer before it is freed.
    private func withMetadata<T>(
        of topic: String?,
        timeoutMs: Int32,
        _ body: (rd_kafka_metadata) throws -> T
    ) throws -> T {
        let rkt = try topic.map(topicPointer)
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
        guard let m = rd_kafka_consumer_poll(pointer, timeoutMs) else { return nil }
        defer { rd_kafka_message_destroy(m) }
        let msg = m.pointee
        let topic = msg.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        func bytes(_ p: UnsafeMutableRawPointer?, _ n: Int) -> [UInt8]? {
            guard let p else { return nil }
            return Array(UnsafeRawBufferPointer(start: p, count: n))
        }
        if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
            return RdKafkaMessage(
                topic: topic,
                partition: msg.partition,
                offset: msg.offset,
                key: nil,
                value: nil,
                error: nil,
                isPartitionEOF: true
            )
        }
        if msg.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = String(cString: rd_kafka_message_errstr(m))
            return RdKafkaMessage(
                topic: topic,
                partition: msg.partition,
                offset: msg.offset,
                key: nil,
                value: nil,
                error: RdKafka.error(msg.err, message: text, fatal: msg.err == RD_KAFKA_RESP_ERR__FATAL),
                isPartitionEOF: false
            )
        }
        var message = RdKafkaMessage(
            topic: topic,
            partition: msg.partition,
            offset: msg.offset,
            key: bytes(msg.key, msg.key_len),
            value: bytes(msg.payload, msg.len),
            error: nil,
            isPartitionEOF: false
        )
        if msg.payload == nil {
            var headers: OpaquePointer?
            if rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers {
                var index = 0
                var name: UnsafePointer<CChar>?
                var value: UnsafeRawPointer?
                var size = 0
                while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                    if let name {
                        message.tombstoneHeaders[String(cString: name)] =
                            value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                    }
                    index += 1
                }
            }
        }
        return message
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

    // MARK: Mock cluster (librdkafka's in-process test broker, `test.mock.num.brokers`)

    /// Bootstrap servers of the mock cluster, when this client runs one.
    var mockBootstrapServers: String? {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return nil }
        return String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    func mockSetBroker(_ id: Int32, up: Bool) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        _ = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
    }

    /// Makes the next `count` Produce requests fail with `errorCode` (e.g. `NOT_LEADER_FOR_PARTITION` = 6).
    func mockFailProduceRequests(count: Int, errorCode: Int32) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        var errors = [rd_kafka_resp_err_t](repeating: rd_kafka_resp_err_t(rawValue: errorCode), count: count)
        rd_kafka_mock_push_request_errors_array(cluster, 0, count, &errors)  // ApiKey 0 = Produce
    }

    func mockSetLeader(topic: String, partition: Int32, broker: Int32) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        _ = rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker)
    }

    func mockCreateTopic(_ name: String, partitions: Int32) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        _ = rd_kafka_mock_topic_create(cluster, name, partitions, 1)
    }
}

/// A topic partition.
package struct PartitionID: Hashable, Sendable, CustomStringConvertible {
    package var topic: String
    package var partition: Int32
    package init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    package var description: String { "\(topic)[\(partition)]" }
}

// MARK: - C callbacks (no captures; context comes through the opaque pointers)

private func rdkafkaLog(
    _ rk: OpaquePointer?,
    _ level: Int32,
    _ facility: UnsafePointer<CChar>?,
    _ text: UnsafePointer<CChar>?
) {
    guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
    let callbacks = Unmanaged<RdKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    let fac = facility.map { String(cString: $0) } ?? ""
    let message = text.map { String(cString: $0) } ?? ""
    let swiftLevel: Logger.Level =
        switch level {
        case ...3: .error
        case 4: .warning
        case 5, 6: .info
        default: .debug
        }
    if level <= 4 { callbacks.noteProblem(message) }
    callbacks.logger.log(level: swiftLevel, "\(message)", metadata: ["librdkafka.facility": "\(fac)"])
}

private func rdkafkaError(
    _ rk: OpaquePointer?,
    _ err: Int32,
    _ reason: UnsafePointer<CChar>?,
    _ opaque: UnsafeMutableRawPointer?
) {
    guard let opaque else { return }
    let callbacks = Unmanaged<RdKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    let code = rd_kafka_resp_err_t(rawValue: err)
    if let reason { callbacks.noteProblem(String(cString: reason)) }
    var error = RdKafka.error(
        code,
        message: reason.map { String(cString: $0) },
        fatal: code == RD_KAFKA_RESP_ERR__FATAL
    )
    if code == RD_KAFKA_RESP_ERR__FATAL, let rk {
        var errstr = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(rk, &errstr, errstr.count)
        error = RdKafka.error(underlying, message: errorText(errstr), fatal: true)
    }
    callbacks.error(error)
}

private func rdkafkaDelivery(
    _ rk: OpaquePointer?,
    _ message: UnsafePointer<rd_kafka_message_t>?,
    _ opaque: UnsafeMutableRawPointer?
) {
    guard let message, let token = message.pointee._private else { return }
    let receiver = Unmanaged<DeliveryReceiver>.fromOpaque(token).takeRetainedValue()
    let m = message.pointee
    let error: KafkaError? =
        m.err == RD_KAFKA_RESP_ERR_NO_ERROR
        ? nil : RdKafka.error(m.err, fatal: m.err == RD_KAFKA_RESP_ERR__FATAL)
    var key: String?
    if error != nil, let bytes = m.key {
        key = String(decoding: UnsafeRawBufferPointer(start: bytes, count: m.key_len), as: UTF8.self)
    }
    receiver.delivered(
        DeliveryOutcome(
            partition: m.partition,
            offset: m.offset,
            error: error,
            key: key,
            latencyMicros: rd_kafka_message_latency(message)
        )
    )
}

/// The NUL-terminated text in an `errstr` buffer.
private func errorText(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
