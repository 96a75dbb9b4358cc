// libFuzzer target: password redaction (`ConnectionSecrets`). The input shapes a connection string around a
// password that contains a marker, in every shape a mistyped connection string takes: a URL with any scheme or
// none, the password with spaces, '/', ':', '@' (several), '%' (percent-encoding, valid or not); a URL without a
// host (`postgres://user:PASSWORD`); a password query parameter (`?password=`, `passwd`, `pass`, `pwd`,
// `sslpassword`, any case); libpq's key=value form, quoted and unquoted. Neither the redacted connection string,
// nor a message quoting it, nor a libpq-like message quoting a fragment of the password may contain the marker.
import Foundation

let marker = "Zq9SECRETq9Z"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let shape = data[0]
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    // Five fuzzer-chosen parts: prefix (scheme…), user, the password around the marker, the rest (host…).
    // The marker (which starts and ends with 'Z') must appear only in the password: no 'Z' elsewhere.
    var parts = text.filter { $0 != "Z" }.split(separator: "\u{1}", maxSplits: 4, omittingEmptySubsequences: false)
        .map(String.init)
    while parts.count < 5 { parts.append("") }
    func scalars(_ s: String, dropping extra: Set<Unicode.Scalar>) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter { !extra.contains($0) }))
    }
    let quotes: Set<Unicode.Scalar> = ["'", "\"", "\\"]
    /// Outside the password: no '@', no quote, no whitespace, no '=' (a first word followed by '=' makes libpq's
    /// key=value form, where only `password=` holds a password).
    func clean(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter {
            !$0.properties.isWhitespace && !quotes.contains($0) && $0 != "@" && $0 != "="
        }))
    }
    let user = clean(parts[1]).replacingOccurrences(of: ":", with: "")
    // The password may hold anything but a NUL (libpq strings end there).
    var password = scalars(parts[2], dropping: ["\u{0}"]) + marker + scalars(parts[3], dropping: ["\u{0}"])
    let rest = clean(parts[4])
    let parameter = ["password", "passwd", "pass", "pwd", "sslpassword", "PassWord"][Int(shape >> 4) % 6]
    let candidate: String
    // `password` becomes the password as the candidate holds it (libpq's messages quote parts of it).
    switch shape % 6 {
    case 0:  // user:password@rest after any prefix
        candidate = "\(clean(parts[0]))\(user):\(password)@\(rest)"
    case 1:  // no host: postgres://user:password. `postgres://host:123/MARKER` is a well-formed URL (database
        // MARKER; `host:1,MARKER` a second host), so only a password that makes the port non-numeric is
        // recognizable: no '/', '?', '#', ',' before the
        // marker, nor in the user name (`postgres://host/db:MARKER` names a database); after it anything but '@'.
        let before = scalars(parts[2], dropping: ["\u{0}", "@", "/", "?", "#", ","])
        password = before + marker + scalars(parts[3], dropping: ["\u{0}", "@"])
        candidate = "postgres://\(scalars(user, dropping: ["/", "?", "#", ","])):\(password)"
    case 2:  // a password query parameter
        candidate = "postgres://\(user)@\(rest.filter { $0 != "?" })?\(parameter)=\(password)"
    case 3:  // key=value, quoted (quote and backslash escaped as libpq wants)
        // Escaped per Unicode scalar: `replacingOccurrences` compares Characters, and a backslash followed by a
        // combining mark is one Character that is not a backslash (it stayed unescaped).
        var escaped = String.UnicodeScalarView()
        for scalar in password.unicodeScalars {
            if scalar == "\\" || scalar == "'" { escaped.append("\\") }
            escaped.append(scalar)
        }
        candidate = "host=\(rest) \(parameter)='\(String(escaped))' user=\(user)"
    case 4:  // key=value, unquoted: words that are not key=value (no '=', no quote)
        password = scalars(password, dropping: quotes.union(["="]))
        candidate = "host=\(rest) password=\(password) user=\(user)"
    default:  // the password where the user name goes
        password = scalars(password, dropping: ["@"])
        candidate = "postgres://\(password)@\(rest)"
    }
    guard candidate.contains(marker) else { return 0 }
    let secrets = ConnectionSecrets.secrets(in: candidate)
    // A message may quote the whole candidate only when it is one token: a password with spaces is then cut into
    // words that only the configured URL's own redaction (and scrub, which knows its secrets) can recognize.
    let oneToken = !candidate.unicodeScalars.contains { $0.properties.isWhitespace || quotes.contains($0) }
    var shown = [
        ConnectionSecrets.redactURL(candidate),
        ConnectionSecrets.scrub("invalid URI \"\(candidate)\"", secrets: secrets),
        ConnectionSecrets.scrub("host \"\(rest)\" and \(password.split(separator: "@").last ?? "")", secrets: secrets),
        ConnectionSecrets.scrub("invalid integer value \"\(password)\" for option \"port\"", secrets: secrets),
        ConnectionSecrets.scrub("missing \"=\" after \"\(password.split(separator: " ").last ?? "")\"", secrets: secrets),
    ]
    if let decoded = password.removingPercentEncoding {
        shown.append(ConnectionSecrets.scrub("user \"\(decoded)\"", secrets: secrets))
    }
    if oneToken {
        shown += [
            ConnectionSecrets.redact(candidate), ConnectionSecrets.redact("could not connect to \"\(candidate)\": refused"),
        ]
    }
    for text in shown where text.contains(marker) {
        fatalError("the password leaked: \(candidate) → \(text)")
    }
    return 0
}
