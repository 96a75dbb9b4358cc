import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

@Suite("RisingWave connection settings and redaction (no server)")
struct ConnectionUnitTests {
    @Test("everything between the scheme and the last @ is redacted, the user name too")
    func userInformationIsRedactedWhole() {
        // The user name goes too: a mistyped URL can put the password where the user name goes
        // (`postgres:` + `//S3cr3t@host`).
        for url in ["postgres://alice@h:4566/dev", "postgresql://alice@h/dev", "POSTGRES://alice@h/dev"] {
            #expect(!RisingWaveConnection.Configuration(url: url).redactedURL.contains("alice"), "\(url)")
        }
        #expect(ConnectionSecrets.redact("postgres://alice:pw@h/dev") == "postgres://***@h/dev")
        #expect(
            ConnectionSecrets.redactURL("postgres://root@localhost:4566/dev") == "postgres://***@localhost:4566/dev"
        )
        #expect(
            ConnectionSecrets.redactURL("postgres://localhost:4566/dev?sslmode=require")
                == "postgres://localhost:4566/dev?sslmode=require"
        )
    }

    @Test("six URL shapes hide their password: a space, no host, ?passwd=, ?password=, several @")
    func issue17Shapes() {
        let shapes: [(url: String, redacted: String)] = [
            ("postgres://root:S3cr3t Pw@host/dev", "postgres://***@host/dev"),
            ("postgres://root:S3cr3tPw", "postgres://***"),
            ("postgres://root@host/dev?passwd=S3cr3tPw", "postgres://***@host/dev?passwd=***"),
            ("postgres://root@host/dev?password=S3cr3tPw", "postgres://***@host/dev?password=***"),
            ("postgres://root:S3cr3t@Pw@host", "postgres://***@host"),
            ("root:S3cr3t@Pw@host", "root:***"),
        ]
        for (url, redacted) in shapes {
            #expect(ConnectionSecrets.redactURL(url) == redacted, "\(url)")
            // libpq's messages for these: the fragments it quotes are scrubbed.
            let secrets = ConnectionSecrets.secrets(in: url)
            for message in [
                #"invalid integer value "S3cr3tPw" for connection option "port""#,
                #"could not translate host name "Pw@host" to address"#,
                #"password authentication failed for user "root""#,
            ] {
                let shown = ConnectionSecrets.scrub(message, secrets: secrets)
                #expect(!shown.contains("S3cr3t") && !shown.contains("Pw@"), "\(url): \(shown)")
            }
        }
    }

    @Test("a libpq error carried or logged by the connection (reconnect warnings too) is scrubbed of the password")
    func libpqErrorsAreScrubbed() {
        let configuration = RisingWaveConnection.Configuration(url: "postgres://root:S3cr3t@Pw9q@127.0.0.1:1/dev")
        let raw = RisingWaveError(
            sqlState: nil,
            message: #"could not translate host name "Pw9q@127.0.0.1" to address"#,
            detail: "port S3cr3t",
            hint: #"user "root:S3cr3t""#,
            isConnectionError: true
        )
        let scrubbed = RisingWaveConnection.scrubbed(raw, configuration)
        for text in ["\(scrubbed)", scrubbed.message, scrubbed.detail ?? "", scrubbed.hint ?? ""] {
            #expect(!text.contains("S3cr3t") && !text.contains("Pw9q"), "\(text)")
        }
        let error = RisingWaveConnection.connectionError(configuration, raw)
        #expect(!"\(error)".contains("S3cr3t") && !"\(error)".contains("Pw9q"), "\(error)")
        #expect("\(error)".contains("127.0.0.1"), "the host stays visible: \(error)")
    }

    /// Secret texts every mistyped shape of ``mistypedURLsNeverLeak(url:)`` hides somewhere.
    static let secretMarkers = ["S3cr3t", "Pw9q"]

    @Test(
        "no mistyped URL shape prints its password: the configuration, libpq's parse error or libpq's connect error",
        arguments: [
            // Spaces, tabs and quotes in the password.
            "postgres://root:S3cr3t Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t  Pw9q more@127.0.0.1:1/dev",
            "postgres://root:S3cr3t\tPw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t\"Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t'Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t Pw9q@127.0.0.1:1/dev?sslmode=disable",
            // No host, or no @.
            "postgres://root:S3cr3tPw9q", "postgres://root:S3cr3t Pw9q", "postgres://root:S3cr3tPw9q/dev",
            "postgres://root:S3cr3tPw9q@/dev?host=/nonexistent-deltakit", "postgres://root:S3cr3tPw9q@:Pw9q/dev",
            // Several @, and other URL punctuation in the password.
            "postgres://root:S3cr3t@Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t@Pw9q@127.0.0.1:1",
            "postgres://root:S3cr3tPw9q@@127.0.0.1:1/dev", "postgres://root:S3cr3t/Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t?Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t#Pw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3t:Pw9q@127.0.0.1:1/dev", "postgres://root:[S3cr3tPw9q]@127.0.0.1:1/dev",
            "postgres://root:S3cr3t,Pw9q@127.0.0.1:1/dev", "postgres://root:S3cr3tPw9q@127.0.0.1:1/dev@",
            // Percent-encoding, valid and not.
            "postgres://root:S3cr3t%zzPw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t%20Pw9q@127.0.0.1:1/dev",
            "postgresql://root%3AS3cr3tPw9q@127.0.0.1:1/dev", "postgres://root:S3cr3t%Pw9q@127.0.0.1:1/dev",
            // The password where the user name goes.
            "postgres://S3cr3tPw9q@127.0.0.1:1/dev", "postgres://:S3cr3tPw9q@127.0.0.1:1/dev",
            "postgres://S3cr3tPw9q:@127.0.0.1:1/dev",
            // Password parameters in the query.
            "postgres://root@127.0.0.1:1/dev?passwd=S3cr3tPw9q", "postgres://root@127.0.0.1:1/dev?password=S3cr3tPw9q",
            "postgres://root@127.0.0.1:1/dev?PASSWORD=S3cr3tPw9q", "postgres://root@127.0.0.1:1/dev?pwd=S3cr3tPw9q",
            "postgres://root@127.0.0.1:1/dev?pass=S3cr3tPw9q", "postgres://root@127.0.0.1:1/dev?sslpassword=S3cr3tPw9q",
            "postgres://root@127.0.0.1:1/dev?application_name=x&password=S3cr3t Pw9q",
            "postgres://root@127.0.0.1:1/dev?password=S3cr3t&Pw9q",
            "postgres:///dev?user=root&password=S3cr3tPw9q&host=127.0.0.1&port=1",
            // Mistyped schemes (refused before libpq) and extra words after the URL.
            "postgres//root:S3cr3tPw9q@127.0.0.1:1/dev", "postgres:/root:S3cr3tPw9q@127.0.0.1:1/dev",
            "postgresql+psycopg://root:S3cr3tPw9q@127.0.0.1:1/dev", "root:S3cr3tPw9q@127.0.0.1:1/dev",
            "POSTGRES://root:S3cr3tPw9q@127.0.0.1:1/dev", " postgres://root:S3cr3tPw9q@127.0.0.1:1/dev",
            "postgres://root:S3cr3tPw9q@127.0.0.1:1/dev sslmode=disable",
            "postgres://root:S3cr3tPw9q@127.0.0.1,127.0.0.1:1/dev", "postgres://root:S3cr3tPw9q@[::1]:1/dev",
            // libpq's key=value form.
            "host=127.0.0.1 port=1 password=S3cr3tPw9q user=x", "host=127.0.0.1 port=1 password='S3cr3t Pw9q' user=x",
            "host=127.0.0.1 port=1 password=S3cr3t Pw9q user=x", "host=127.0.0.1 port=1 password='S3cr3t Pw9q",
            "host=127.0.0.1 port=1 password = S3cr3tPw9q", "host=127.0.0.1 port=1 PASSWORD=S3cr3tPw9q",
            "host=127.0.0.1 port=1 passwd=S3cr3tPw9q", "host=127.0.0.1 port=1 password S3cr3tPw9q",
            "host=127.0.0.1 port=1 sslpassword=S3cr3tPw9q", "host=127.0.0.1 port=1 password=S3cr3t\\'Pw9q",
        ]
    )
    func mistypedURLsNeverLeak(url: String) async throws {
        let configuration = RisingWaveConnection.Configuration(url: url, connectTimeout: .seconds(1))
        var shown = [configuration.redactedURL, configuration.description]
        do {
            _ = try await RisingWaveConnection(configuration: configuration)
            Issue.record("connecting to \(configuration.redactedURL) must fail (port 1 is closed)")
        } catch let error as DeltaKitError {
            shown += ["\(error)", error.message, String(reflecting: error)]
            if let underlying = error.underlying { shown += ["\(underlying)", String(reflecting: underlying)] }
        }
        for text in shown {
            for secret in Self.secretMarkers {
                #expect(!text.contains(secret), "\(url) → \(text)")
            }
        }
    }

    @Test(
        "a password never appears in a message, whatever the URL's shape",
        arguments: [
            "postgres//user:SECRET@host/db", "postgresql+psycopg://user:SECRET@host/db", "mysql://user:SECRET@host/db",
            "postgres:/user:SECRET@host/db", "user:SECRET@host", "postgres://user:SEC@RET@host/db",
            "host=h password=SECRET user=u", "host=h password='SECRET' user=u", "postgres://:SECRET@h/db",
            // Fuzz/Redaction's findings:
            "postgres://u:SEC//RET@h/db", "qh:/SECRET@", "postgresql+x:/SECRET@h",
            "po8\u{0}\u{0}t:pwSECRET://@ralhost:4566/dev",
            "u:\u{34E}SECRET@h", "host= password='\u{365}SECRET' user=u", "host=h password='ab'SECRET user=u",
        ]
    )
    func passwordsNeverLeak(url: String) async throws {
        let configuration = RisingWaveConnection.Configuration(url: url, connectTimeout: .seconds(1))
        #expect(!configuration.redactedURL.contains("SECRET") && !configuration.redactedURL.contains("SEC@RET"))
        #expect(!configuration.description.contains("SECRET"))
        var message = ""
        do {
            _ = try await RisingWaveConnection(configuration: configuration)
        } catch {
            message = "\(error)"
        }
        #expect(!message.isEmpty, "connecting must fail")
        #expect(!message.contains("SECRET") && !message.contains("RET@"), "\(message)")
        if url.contains("//"), !url.lowercased().hasPrefix("postgres://") {
            #expect(message.contains("must start with postgres:// or postgresql://"), "\(message)")
        }
    }

    @Test("an empty URL is refused instead of silently using the local socket")
    func emptyURL() async {
        await #expect {
            _ = try await RisingWaveConnection(configuration: .init(url: "  "))
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration && "\(error)".contains("url is empty")
        }
    }

    @Test("credentials are redacted")
    func redaction() {
        typealias Settings = RisingWaveConnection.Configuration
        #expect(Settings(url: "postgres://root:s3cret@db:4566/dev").redactedURL == "postgres://***@db:4566/dev")
        #expect(Settings(url: "postgres://db:4566/dev").redactedURL == "postgres://db:4566/dev")
        #expect(Settings(url: "host=db password=s3cret user=x").redactedURL == "host=db password=*** user=x")
        #expect(!"\(Settings(url: "postgres://u:s3cret@h/d"))".contains("s3cret"))
    }
}
