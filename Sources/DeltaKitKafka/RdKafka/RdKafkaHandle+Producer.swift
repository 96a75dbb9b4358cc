// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

extension RdKafkaHandle {
    // MARK: Producing

    enum ProduceResult {
        case enqueued
        case queueFull
        case failed(KafkaError)
    }

    struct TopicPointer: @unchecked Sendable {
        // An rd_kafka_topic_t is thread-safe like its rd_kafka_t; destroyed only in the handle's deinit.
        let pointer: OpaquePointer
    }

    /// The topic's handle, created at its first use: resolve it once for many messages rather than by name for each
    /// (a lock and a string hash per message).
    func topic(_ name: String) throws -> TopicPointer {
        try topics.withLock { topics in
            if let existing = topics[name] { return existing }
            guard let rkt = rd_kafka_topic_new(pointer, name, nil) else {
                let err = rd_kafka_last_error()
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message: "invalid topic name '\(name)'",
                    underlying: RdKafka.error(err)
                )
            }
            let topic = TopicPointer(pointer: rkt)
            topics[name] = topic
            return topic
        }
    }

    /// Enqueues one message (payload copied). On `.enqueued` the receiver gets exactly one delivery report.
    func produce(
        topic: TopicPointer,
        key: UnsafeRawBufferPointer?,
        value: UnsafeRawBufferPointer,
        receiver: DeliveryReceiver
    ) -> ProduceResult {
        let rkt = topic.pointer
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

    /// Enqueues a message with headers: `key`, `value` (`nil`: a null value, a tombstone) and `headers` (payload
    /// and headers copied). On `.enqueued` the receiver gets exactly one delivery report.
    func produce(
        topic: TopicPointer,
        key: UnsafeRawBufferPointer?,
        value: UnsafeRawBufferPointer?,
        headers: [(name: String, value: [UInt8])],
        receiver: DeliveryReceiver
    ) -> ProduceResult {
        let rkt = topic.pointer
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
                $0.u.mem.ptr = key.flatMap { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
                $0.u.mem.size = key?.count ?? 0
            }
            field(RD_KAFKA_VTYPE_VALUE) {  // a null value: no pointer, no size
                $0.u.mem.ptr = value.flatMap { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
                $0.u.mem.size = value?.count ?? 0
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
}
