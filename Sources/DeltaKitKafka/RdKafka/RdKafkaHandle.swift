// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

/// Owns one `rd_kafka_t` (producer or consumer) and everything created from it.
///
/// `@unchecked Sendable` is sound: librdkafka documents every call on an `rd_kafka_t` as thread-safe,
/// apart from `rd_kafka_destroy`, which only `deinit` calls once no other reference exists. The cached
/// topic handles are guarded by a `Mutex`.
final class RdKafkaHandle: @unchecked Sendable {
    enum Kind { case producer, consumer }

    let pointer: OpaquePointer
    let callbacks: RdKafkaCallbacks
    private let callbacksRef: Unmanaged<RdKafkaCallbacks>
    let topics = Mutex<[String: TopicPointer]>([:])
    let kind: Kind
    /// A consumer's queue (where `rd_kafka_poll_set_consumer` sends everything), for taking its messages in
    /// batches (``consumeAvailable(upTo:willTake:_:)``); `nil` for a producer.
    let consumerQueue: OpaquePointer?

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
        self.consumerQueue = kind == .consumer ? rd_kafka_queue_get_consumer(rk) : nil
    }

    deinit {
        if let consumerQueue { rd_kafka_queue_destroy(consumerQueue) }
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

    /// Makes the `rd_kafka_poll`/`rd_kafka_flush` that is serving the calling callback return after it (only
    /// meaningful inside a callback on the polling thread).
    func yield() { rd_kafka_yield(pointer) }

    /// Makes an `rd_kafka_poll` waiting on another thread return now (or the next one, when none waits): the main
    /// queue's `rd_kafka_queue_yield`.
    func wakePoll() {
        guard let queue = rd_kafka_queue_get_main(pointer) else { return }
        rd_kafka_queue_yield(queue)
        rd_kafka_queue_destroy(queue)
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
}
