import DeltaKit

extension DeltaKitError {
    /// The error for a connect that failed, from what the client's callbacks saw: an authentication failure
    /// librdkafka reported, or the last problem it logged.
    static func kafkaUnreachable(
        _ configuration: KafkaConfiguration,
        _ error: KafkaError,
        callbacks: RdKafkaCallbacks
    ) -> DeltaKitError {
        if let refused = callbacks.authenticationFailure {
            return kafkaRefusedAuthentication(configuration, refused)
        }
        return kafkaUnreachable(configuration, error, librdkafkaSaid: callbacks.lastProblem)
    }

    /// The error for a broker that answered but refused to authenticate the client: it names the security
    /// protocol, the SASL mechanism and the user (never the password), and carries librdkafka's error
    /// (`KafkaError.Code.authentication` or `.saslAuthenticationFailed`) as `underlying`.
    static func kafkaRefusedAuthentication(_ configuration: KafkaConfiguration, _ refused: KafkaError) -> DeltaKitError
    {
        // What the client used: additionalProperties are applied last, over the security settings.
        let extra = configuration.additionalProperties
        let mechanism =
            extra["sasl.mechanisms"] ?? extra["sasl.mechanism"] ?? configuration.security.saslMechanism?.rawValue
            ?? "GSSAPI (librdkafka's default)"
        let user = (extra["sasl.username"] ?? configuration.security.saslUsername).map { ", user '\($0)'" } ?? ""
        let securityProtocol = extra["security.protocol"] ?? configuration.security.protocol.rawValue
        return DeltaKitError(
            code: .connectionFailed,
            message:
                "authentication failed: the Kafka broker at \(configuration.serversDescription) refused the client (security.protocol \(securityProtocol), SASL mechanism \(mechanism)\(user); librdkafka \(refused.name): \(refused.message)); check the user name, the password and the mechanism the broker accepts",
            underlying: refused
        )
    }

    /// The error for a connect that failed; `librdkafkaSaid` is the last problem librdkafka logged, which tells
    /// "nobody answered" apart from "the broker answered but this librdkafka could not talk to it".
    static func kafkaUnreachable(
        _ configuration: KafkaConfiguration,
        _ error: KafkaError,
        librdkafkaSaid: String? = nil
    ) -> DeltaKitError {
        if let said = librdkafkaSaid, said.contains("ApiVersionRequest failed") {
            return DeltaKitError(
                code: .connectionFailed,
                message:
                    "the broker at \(configuration.serversDescription) answered, but librdkafka \(RdKafka.versionString) could not negotiate with it (librdkafka: \(said)); this librdkafka is too old for this broker: use librdkafka 2.2 or newer",
                underlying: RdKafka.error(.unsupportedFeature, message: said)
            )
        }
        let detail = librdkafkaSaid.map { "; last: \($0)" } ?? ""
        return DeltaKitError(
            code: .connectionFailed,
            message:
                "no Kafka broker answered at \(configuration.serversDescription) within \(configuration.connectTimeout) (librdkafka: \(error.message)\(detail)); check that a broker runs there and that the address is right",
            underlying: error
        )
    }
}
