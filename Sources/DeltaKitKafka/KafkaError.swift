/// An error reported by librdkafka, carried as `underlying`.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` value (negative for client-side errors, positive for broker errors).
    public var code: Int32
    /// librdkafka's symbolic name, e.g. `_MSG_TIMED_OUT` or `TOPIC_AUTHORIZATION_FAILED`.
    public var name: String
    /// librdkafka's human-readable text.
    public var message: String
    /// `true` for fatal errors: the client must be recreated.
    public var isFatal: Bool

    /// Creates an error.
    public init(code: Int32, name: String, message: String, isFatal: Bool = false) {
        self.code = code
        self.name = name
        self.message = message
        self.isFatal = isFatal
    }

    public var description: String { "librdkafka \(name) (\(code)): \(message)\(isFatal ? " [fatal]" : "")" }
}
