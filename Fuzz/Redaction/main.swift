// libFuzzer target: password redaction (`ConnectionSecrets`). The input shapes a connection string around a
// password that contains a marker — URL form (any scheme or none, mistyped separators, '/', '@', ':' in the
// password) and libpq key=value form — and no redacted text, scrubbed message or quoted fragment may contain
// the marker.
import Foundation

let marker = "Zq9SECRETq9Z"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    // Four fuzzer-chosen parts: prefix (scheme…), user, the password around the marker, the rest (host…).
    // The marker (which starts and ends with 'Z') must appear only in the password: no 'Z' elsewhere.
    var parts = text.filter { $0 != "Z" }.split(separator: "\u{1}", maxSplits: 4, omittingEmptySubsequences: false)
        .map(String.init)
    while parts.count < 5 { parts.append("") }
    // Well-formed candidates: no whitespace or quote scalars inside a part (a combining mark after a quote makes a
    // Character that is not a quote, so filter scalars).
    func scalars(_ s: String, dropping extra: Set<Unicode.Scalar> = []) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter {
            !$0.properties.isWhitespace && $0 != "'" && $0 != "\"" && !extra.contains($0)
        }))
    }
    func clean(_ s: String) -> String { scalars(s, dropping: ["@"]) }
    let user = clean(parts[1]).replacingOccurrences(of: ":", with: "")
    let password = scalars(parts[2]) + marker + scalars(parts[3])
    let rest = clean(parts[4])
    let url = "\(clean(parts[0]))\(user):\(password)@\(rest)"
    let keyValue = "host=\(rest) password='\(password)' user=\(user)"
    // When the text before the colon is exactly a libpq scheme and the password starts with "//", the URL reads
    // `postgres://MARKER…@host`: by libpq's URI grammar the marker is then the user name, which redaction keeps by
    // design (passwords only; pinned by `ConnectionUnitTests.userNamesAreKept`). Such a URL is not a password case.
    let schemeAteTheSeparator =
        ["postgres", "postgresql"].contains((clean(parts[0]) + user).lowercased()) && password.hasPrefix("//")
    for candidate in schemeAteTheSeparator ? [keyValue] : [url, keyValue] {
        let secrets = ConnectionSecrets.secrets(in: candidate)
        for shown in [
            ConnectionSecrets.redact(candidate),
            ConnectionSecrets.redact("could not connect to \"\(candidate)\": refused"),
            ConnectionSecrets.scrub("invalid URI \"\(candidate)\"", secrets: secrets),
            ConnectionSecrets.scrub("host \"\(rest)\" and \(password.split(separator: "@").last ?? "")", secrets: secrets),
        ] where shown.contains(marker) {
            fatalError("the password leaked: \(candidate) → \(shown)")
        }
    }
    return 0
}
