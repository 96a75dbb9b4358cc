/// An error reported by librdkafka, carried as `underlying`.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` value (negative for client-side errors, positive for broker errors);
    /// compare it with the named codes, e.g. `error.code == .messageTimedOut`.
    public let code: Code
    /// librdkafka's symbolic name, e.g. `_MSG_TIMED_OUT` or `TOPIC_AUTHORIZATION_FAILED`.
    public let name: String
    /// librdkafka's human-readable text.
    public let message: String
    /// `true` for fatal errors: the client must be recreated.
    public let isFatal: Bool

    /// Only librdkafka's reports make one (`RdKafka.error`).
    init(code: Code, name: String, message: String, isFatal: Bool = false) {
        self.code = code
        self.name = name
        self.message = message
        self.isFatal = isFatal
    }

    public var description: String { "librdkafka \(name) (\(code)): \(message)\(isFatal ? " [fatal]" : "")" }

    /// `true` when a broker refused to authenticate the client (``Code/authentication`` or
    /// ``Code/saslAuthenticationFailed``): check the credentials and the SASL mechanism, not the address.
    public var isAuthenticationFailure: Bool { code == .authentication || code == .saslAuthenticationFailed }
}

extension KafkaError {
    /// A librdkafka error code (`rd_kafka_resp_err_t`), with names for the ones a DeltaKit error can carry.
    /// Any other value is still there in ``rawValue``: see librdkafka's `rdkafka.h` for the full list.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The numeric value.
        public let rawValue: Int32

        init(rawValue: Int32) { self.rawValue = rawValue }

        /// `_FATAL` (-150): a fatal error; the client must be recreated.
        public static let fatal = Code(rawValue: -150)
        /// `_PURGE_QUEUE` (-152): the message was purged from the queue (close after the shutdown timeout).
        public static let purged = Code(rawValue: -152)
        /// `_TIMED_OUT` (-185): an operation timed out.
        public static let timedOut = Code(rawValue: -185)
        /// `_ALL_BROKERS_DOWN` (-187): no broker is reachable.
        public static let allBrokersDown = Code(rawValue: -187)
        /// `_UNKNOWN_TOPIC` (-188): the topic is not known to the cluster.
        public static let unknownTopic = Code(rawValue: -188)
        /// `_MSG_TIMED_OUT` (-192): a message was not delivered within `message.timeout.ms`.
        public static let messageTimedOut = Code(rawValue: -192)
        /// `_TRANSPORT` (-195): a connection to a broker failed.
        public static let transport = Code(rawValue: -195)
        /// `_UNSUPPORTED_FEATURE` (-165): this librdkafka cannot use a protocol feature the broker requires
        /// (DeltaKit reports it for a librdkafka too old for the broker).
        public static let unsupportedFeature = Code(rawValue: -165)
        /// `_AUTHENTICATION` (-169): authentication with a broker failed (a SASL handshake or login, or TLS).
        public static let authentication = Code(rawValue: -169)
        /// `SASL_AUTHENTICATION_FAILED` (58): the broker refused the SASL credentials.
        public static let saslAuthenticationFailed = Code(rawValue: 58)
        /// `UNKNOWN_TOPIC_OR_PART` (3): the broker does not host the topic or partition.
        public static let unknownTopicOrPartition = Code(rawValue: 3)

        /// The numeric value.
        public var description: String { String(rawValue) }
    }
}
