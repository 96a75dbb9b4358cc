// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

/// Receives librdkafka's client-level callbacks (logs and errors). Retained by the handle for its lifetime.
final class RdKafkaCallbacks: Sendable {
    let logger: Logger
    private let errorHandler = Mutex<(@Sendable (KafkaError) -> Void)?>(nil)
    private let problem = Mutex<String?>(nil)
    private let authentication = Mutex<KafkaError?>(nil)

    /// The last authentication failure librdkafka reported (`_AUTHENTICATION` or `SASL_AUTHENTICATION_FAILED`),
    /// so that a refused login is not reported as a broker nobody answered at.
    var authenticationFailure: KafkaError? { authentication.withLock { $0 } }

    func noteAuthenticationFailure(_ error: KafkaError) { authentication.withLock { $0 = error } }

    /// The last warning or error librdkafka reported (log or error callback), to explain a failed connect.
    var lastProblem: String? { problem.withLock { $0 } }

    func noteProblem(_ text: String) {
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

    func error(_ error: KafkaError) {
        let handler = errorHandler.withLock { $0 }
        if let handler { handler(error) } else { logger.warning("librdkafka error: \(error)") }
    }
}

// MARK: - C callbacks (no captures; context comes through the opaque pointers)

func rdkafkaLog(
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
    callbacks.logger.log(level: swiftLevel, "\(message)", metadata: [KafkaTelemetry.Key.librdkafkaFacility: "\(fac)"])
}

func rdkafkaError(
    _ rk: OpaquePointer?,
    _ err: Int32,
    _ reason: UnsafePointer<CChar>?,
    _ opaque: UnsafeMutableRawPointer?
) {
    guard let opaque else { return }
    let callbacks = Unmanaged<RdKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    let code = rd_kafka_resp_err_t(rawValue: err)
    if let reason { callbacks.noteProblem(String(cString: reason)) }
    if code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED {
        callbacks.noteAuthenticationFailure(RdKafka.error(code, message: reason.map { String(cString: $0) }))
    }
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

func rdkafkaDelivery(
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
