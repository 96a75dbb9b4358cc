import DeltaKit
import Foundation

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
    /// An unknown or invalid property fails construction with librdkafka's own message; a property the client
    /// sets itself and relies on (``reservedProperties``, and the source's and sink's own lists) fails
    /// ``validate()``, naming it and why. Default: empty.
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
        /// A SASL mechanism librdkafka supports (`sasl.mechanisms`).
        ///
        /// A closed set: librdkafka implements each one itself. One this list lacks goes into
        /// `additionalProperties` as `sasl.mechanisms`.
        public enum SASLMechanism: String, Sendable {
            /// `PLAIN`: user name and password.
            case plain = "PLAIN"
            /// `SCRAM-SHA-256`.
            case scramSHA256 = "SCRAM-SHA-256"
            /// `SCRAM-SHA-512`.
            case scramSHA512 = "SCRAM-SHA-512"
            /// `GSSAPI` (Kerberos), librdkafka's default.
            case gssapi = "GSSAPI"
            /// `OAUTHBEARER`.
            case oauthBearer = "OAUTHBEARER"
        }
        /// The SASL mechanism (`sasl.mechanisms`). Default: `nil` (librdkafka's default, `GSSAPI`).
        public var saslMechanism: SASLMechanism?
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
            saslMechanism: SASLMechanism? = nil,
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

    /// Checks every value, so that a mistake fails at once with its name instead of after a timeout or in a trap.
    ///
    /// Called by every Kafka type's initializer.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the setting, its value and what is
    ///   allowed.
    public func validate() throws {
        guard !bootstrapServers.isEmpty else {
            throw DeltaKitError.invalidValue("bootstrapServers", "empty", allowed: "one or more host:port")
        }
        // An entry may itself be a comma-separated list (librdkafka's own form).
        for entry in bootstrapServers {
            for server in entry.split(separator: ",", omittingEmptySubsequences: false) {
                try Self.validateServer(String(server.trimmingCharacters(in: .whitespaces)))
            }
        }
        guard !clientID.isEmpty else { throw DeltaKitError.invalidValue("clientID", "empty", allowed: "a name") }
        try DeltaKitError.check(connectTimeout, in: .milliseconds(1) ... .milliseconds(Int32.max), "connectTimeout")
        try checkReserved([:], by: "every DeltaKit client")
    }

    /// The librdkafka properties that every DeltaKit client sets from its own settings or relies on, each with
    /// the reason: ``validate()`` refuses them in ``additionalProperties``. The source and the sink refuse more
    /// (`KafkaEventSource.Configuration.reservedProperties`, `KafkaEventSink.Configuration.reservedProperties`).
    public static let reservedProperties: [String: String] = [
        "bootstrap.servers": "it is set from bootstrapServers, which is validated and named in every error",
        "metadata.broker.list": "it is an alias of bootstrap.servers, set from bootstrapServers",
        "delivery.report.only.error":
            "a producer completes each send from its delivery report; with reports for failures only, no send would ever be acknowledged",
    ]

    /// Throws for the first property of ``additionalProperties`` (by name) that `reserved` or
    /// ``reservedProperties`` lists, naming it, the client that relies on it, and why.
    func checkReserved(_ reserved: [String: String], by client: String) throws {
        for name in additionalProperties.keys.sorted() {
            guard let reason = reserved[name] ?? Self.reservedProperties[name] else { continue }
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "additionalProperties sets '\(name)', which \(client) sets itself and relies on: \(reason); remove it from additionalProperties"
            )
        }
    }

    /// `host:port`, `[v6]:port`, optionally behind a listener name such as `PLAINTEXT://`.
    static func validateServer(_ server: String) throws {
        var text = Substring(server)
        if let scheme = text.range(of: "://") {
            let name = text[..<scheme.lowerBound].lowercased()
            guard ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(name) else {
                throw DeltaKitError.invalidValue(
                    "bootstrapServers entry",
                    "'\(server)'",
                    allowed: "host:port (a URL scheme such as http:// is not a Kafka address)"
                )
            }
            text = text[scheme.upperBound...]
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65_535).contains(port), colon > text.startIndex,
            !text[..<colon].contains(where: { $0 == " " || $0 == "/" || $0 == "," })
        else {
            throw DeltaKitError.invalidValue(
                "bootstrapServers entry",
                "'\(server)'",
                allowed: "host:port with a port in 1…65535, such as localhost:9092"
            )
        }
    }

    /// The servers as one comma-separated string, for messages.
    var serversDescription: String { bootstrapServers.joined(separator: ",") }

    public var description: String {
        "KafkaConfiguration(bootstrapServers: \(serversDescription), clientID: \(clientID), security: \(security.protocol.rawValue))"
    }

    /// A client's librdkafka properties, in order (a later one wins): the cluster's, then the client's `own`, then
    /// ``additionalProperties`` — which override what the client sets, except what ``validate()`` refuses.
    func properties(with own: [(String, String)]) -> [(String, String)] {
        clusterProperties + own + additionalProperties.sorted { $0.key < $1.key }
    }

    /// The librdkafka properties of this configuration's own settings.
    private var clusterProperties: [(String, String)] {
        var p: [(String, String)] = [
            ("bootstrap.servers", serversDescription),
            ("client.id", clientID),
            ("security.protocol", security.protocol.rawValue),
            ("socket.nagle.disable", "true"),
        ]
        if let v = security.saslMechanism { p.append(("sasl.mechanisms", v.rawValue)) }
        if let v = security.saslUsername { p.append(("sasl.username", v)) }
        if let v = security.saslPassword { p.append(("sasl.password", v)) }
        if let v = security.caLocation { p.append(("ssl.ca.location", v)) }
        if let v = security.certificateLocation { p.append(("ssl.certificate.location", v)) }
        if let v = security.keyLocation { p.append(("ssl.key.location", v)) }
        if let v = security.keyPassword { p.append(("ssl.key.password", v)) }
        return p
    }
}
