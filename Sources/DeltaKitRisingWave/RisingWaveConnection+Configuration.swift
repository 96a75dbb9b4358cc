import DeltaKit
import Foundation

extension RisingWaveConnection {
    /// Connection settings. Every property has a documented default.
    public struct Configuration: Sendable, CustomStringConvertible {
        /// A `postgres://` URL or a libpq `key=value` string.
        /// Default: `"postgres://root@localhost:4566/dev"` (RisingWave's defaults).
        public var url: String
        /// libpq's `sslmode`: whether and how the connection uses TLS. `nil` keeps the URL's `sslmode`, or libpq's
        /// default (``SSLMode/prefer``). Default: `nil`.
        public var sslMode: SSLMode?
        /// How long to wait for the server when connecting. Default: 10 seconds.
        public var connectTimeout: Duration
        /// How many times to retry re-establishing a broken connection. Default: 5.
        public var reconnectAttempts: Int
        /// The first reconnect delay; it doubles per attempt up to 5 seconds. Default: 200 ms.
        public var reconnectBackoff: Duration
        /// `application_name` shown in the server's session list. Default: `"deltakit"`.
        public var applicationName: String

        /// Creates a configuration.
        public init(
            url: String = "postgres://root@localhost:4566/dev",
            sslMode: SSLMode? = nil,
            connectTimeout: Duration = .seconds(10),
            reconnectAttempts: Int = 5,
            reconnectBackoff: Duration = .milliseconds(200),
            applicationName: String = "deltakit"
        ) {
            self.url = url
            self.sslMode = sslMode
            self.connectTimeout = connectTimeout
            self.reconnectAttempts = reconnectAttempts
            self.reconnectBackoff = reconnectBackoff
            self.applicationName = applicationName
        }

        /// The URL with everything that may be a secret replaced by `***`: safe for logs and errors. Hidden are
        /// the user information (all between the scheme and the last `@`, the user name included: a mistyped URL
        /// can put the password there), a non-numeric port when there is no `@` (`postgres://root:S3cr3t`), and
        /// password parameters (`?password=`, `passwd`, `sslpassword`, `key=value` forms).
        public var redactedURL: String { ConnectionSecrets.redactURL(url) }

        /// The configuration with ``redactedURL`` in place of the URL: safe to log.
        /// The configuration with ``redactedURL`` in place of the URL: safe to log.
        public var description: String { "RisingWaveConnection.Configuration(url: \(redactedURL))" }

        /// A message from libpq with every password-like part replaced by `***` and this configuration's
        /// secrets — and their fragments — removed wherever they appear (libpq quotes parts of a conninfo it
        /// cannot parse).
        func scrub(_ message: String) -> String {
            ConnectionSecrets.scrub(message, secrets: ConnectionSecrets.secrets(in: url))
        }

        /// Checks the settings; called by ``RisingWaveConnection/init(configuration:logger:)``.
        ///
        /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the setting; a URL is never echoed with its
        ///   password.
        public func validate() throws {
            let trimmed = url.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else {
                throw DeltaKitError.invalidValue(
                    "url",
                    "empty",
                    allowed: "postgres://user@host:port/database (an empty URL would silently use the local socket)"
                )
            }
            let isKeyValue = !trimmed.contains("//") && !trimmed.contains("@") && trimmed.contains("=")
            let lower = trimmed.lowercased()
            if !isKeyValue, !(lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")) {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message: "the URL \(redactedURL) must start with postgres:// or postgresql://"
                )
            }
            try DeltaKitError.check(connectTimeout, in: .seconds(1) ... .seconds(Int64(Int32.max)), "connectTimeout")
            try DeltaKitError.check(reconnectAttempts, in: 0...1_000, "reconnectAttempts")
            try DeltaKitError.check(reconnectBackoff, in: .zero ... .seconds(60), "reconnectBackoff")
        }

        var conninfo: String {
            var extras = [
                ("connect_timeout", String(connectTimeout.wholeSecondsRoundedUp(minimum: 1))),
                ("application_name", applicationName),
                ("client_encoding", "UTF8"),
            ]
            if let sslMode { extras.append(("sslmode", sslMode.rawValue)) }
            if url.contains("://") {
                let separator = url.contains("?") ? "&" : "?"
                let query = extras.map {
                    "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0.1)"
                }
                return url + separator + query.joined(separator: "&")
            }
            return url + " " + extras.map { "\($0.0)='\($0.1)'" }.joined(separator: " ")
        }

        /// libpq's `sslmode` values: whether the connection uses TLS, and what it checks of the server's certificate.
        public enum SSLMode: String, Sendable, Hashable, CaseIterable {
            /// No TLS.
            case disable
            /// TLS only if the server insists on it.
            case allow
            /// TLS if the server offers it, else plaintext. RisingWave offers it only when started with a certificate.
            case prefer
            /// TLS, without checking the server's certificate.
            case require
            /// TLS, with a server certificate signed by a trusted authority.
            case verifyCA = "verify-ca"
            /// TLS, with a trusted server certificate for the host name connected to.
            case verifyFull = "verify-full"
        }
    }
}
