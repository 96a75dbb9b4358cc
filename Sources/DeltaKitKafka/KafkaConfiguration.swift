/// How to reach a Kafka cluster: shared by ``KafkaEventSink``, ``KafkaEventSource`` and ``KafkaTopicAdmin``.
///
/// Every property has a documented default; anything librdkafka supports beyond these goes into
/// ``additionalProperties``. Secrets never appear in ``description``.
public struct KafkaConfiguration: Sendable, CustomStringConvertible {
    /// `host:port` of one or more brokers (`bootstrap.servers`). Default: `["localhost:9092"]`.
    public var bootstrapServers: [String]
    /// The client id brokers see (`client.id`). Default: `"deltakit"`.
    public var clientID: String
    /// Transport security and authentication. Default: ``Security/plaintext``.
    public var security: Security
    /// How long to wait for a broker when connecting before failing with an error that names the servers.
    /// Default: 10 seconds.
    public var connectTimeout: Duration
    /// Any other librdkafka property (see librdkafka's `CONFIGURATION.md`), applied last.
    /// An unknown or invalid property fails construction with librdkafka's own message. Default: empty.
    public var additionalProperties: [String: String]

    /// Creates a configuration.
    public init(
        bootstrapServers: [String] = ["localhost:9092"],
        clientID: String = "deltakit",
        security: Security = .plaintext,
        connectTimeout: Duration = .seconds(10),
        additionalProperties: [String: String] = [:]
    ) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.security = security
        self.connectTimeout = connectTimeout
        self.additionalProperties = additionalProperties
    }

    /// Transport security (TLS) and SASL authentication.
    public struct Security: Sendable {
        /// Kafka's `security.protocol`.
        public enum SecurityProtocol: String, Sendable {
            /// No TLS, no authentication.
            case plaintext = "plaintext"
            /// TLS.
            case ssl = "ssl"
            /// SASL without TLS.
            case saslPlaintext = "sasl_plaintext"
            /// SASL over TLS.
            case saslSSL = "sasl_ssl"
        }
        /// The protocol. Default: ``SecurityProtocol/plaintext``.
        public var `protocol`: SecurityProtocol
        /// SASL mechanism (`sasl.mechanisms`), e.g. `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`. Default: `nil`.
        public var saslMechanism: String?
        /// SASL user name. Default: `nil`.
        public var saslUsername: String?
        /// SASL password (never logged or printed). Default: `nil`.
        public var saslPassword: String?
        /// CA certificate file for verifying brokers (`ssl.ca.location`). Default: `nil` (system store).
        public var caLocation: String?
        /// Client certificate file for mutual TLS (`ssl.certificate.location`). Default: `nil`.
        public var certificateLocation: String?
        /// Client private key file (`ssl.key.location`). Default: `nil`.
        public var keyLocation: String?
        /// Password of the private key (never logged or printed). Default: `nil`.
        public var keyPassword: String?

        /// No TLS, no authentication.
        public static let plaintext = Security(protocol: .plaintext)

        /// Creates a security setting.
        public init(
            protocol: SecurityProtocol,
            saslMechanism: String? = nil,
            saslUsername: String? = nil,
            saslPassword: String? = nil,
            caLocation: String? = nil,
            certificateLocation: String? = nil,
            keyLocation: String? = nil,
            keyPassword: String? = nil
        ) {
            self.protocol = `protocol`
            self.saslMechanism = saslMechanism
            self.saslUsername = saslUsername
            self.saslPassword = saslPassword
            self.caLocation = caLocation
            self.certificateLocation = certificateLocation
            self.keyLocation = keyLocation
            self.keyPassword = keyPassword
        }
    }

    /// The servers as one comma-separated string, for messages.
    public var serversDescription: String { bootstrapServers.joined(separator: ",") }

    public var description: String {
        "KafkaConfiguration(bootstrapServers: \(serversDescription), clientID: \(clientID), security: \(security.protocol.rawValue))"
    }

    /// The librdkafka properties, common part.
    var properties: [(String, String)] {
        var p: [(String, String)] = [
            ("bootstrap.servers", serversDescription),
            ("client.id", clientID),
            ("security.protocol", security.protocol.rawValue),
            ("socket.nagle.disable", "true"),
        ]
        if let v = security.saslMechanism { p.append(("sasl.mechanisms", v)) }
        if let v = security.saslUsername { p.append(("sasl.username", v)) }
        if let v = security.saslPassword { p.append(("sasl.password", v)) }
        if let v = security.caLocation { p.append(("ssl.ca.location", v)) }
        if let v = security.certificateLocation { p.append(("ssl.certificate.location", v)) }
        if let v = security.keyLocation { p.append(("ssl.key.location", v)) }
        if let v = security.keyPassword { p.append(("ssl.key.password", v)) }
        return p
    }
}

extension Duration {
    /// Whole milliseconds, at least `minimum`.
    func milliseconds(minimum: Int64 = 0) -> Int64 {
        let (seconds, attoseconds) = components
        return max(minimum, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
