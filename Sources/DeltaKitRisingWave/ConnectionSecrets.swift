import Foundation

/// Finds and hides passwords in connection strings and in messages that quote them. No libpq here, so the
/// redaction fuzz target (Fuzz/Redaction) builds without it.
///
/// What counts as secret, in a URL: every character between the scheme (`postgres://`, a mistyped one such as
/// `postgres//` or `postgresql+psycopg:/`, or none) and the **last** `@` — the user name too, because a mistyped
/// URL can put a password where the user name goes (`postgres:` + `//pw@host`), and a password may contain `:`,
/// `/`, `@` or spaces; with no `@` at all, an authority whose port is empty or not a number (`postgres://root:S3cr3t`,
/// which libpq reads as host `root`, port `S3cr3t`); the value of any query parameter or `key=value` pair whose
/// name ends in `password`, `passwd`, `pass` or `pwd` (any case, quoted or not). Messages from libpq are
/// scrubbed with the configured URL's secrets (``scrub(_:secrets:)``): libpq quotes fragments of what it cannot
/// parse (`invalid integer value "S3cr3t" for connection option "port"`, `host name "Pw@db"`).
///
/// Everything works on Unicode scalars, never on `Character`s: a combining mark would otherwise glue a separator
/// or a quote to its neighbour, and Foundation's `replacingOccurrences` traps on Linux for some inputs.
enum ConnectionSecrets {
    /// Any text — a message, or a URL inside one — with every password-like part replaced by `***`. Knows
    /// nothing of the configured URL: a URL whose password contains spaces is only redacted whole by
    /// ``redactURL(_:)``, and fragments only by ``scrub(_:secrets:)``.
    static func redact(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        return hide(textRanges(scalars), in: scalars)
    }

    /// A connection string as given by the user (URL or libpq `key=value`), with everything that may be a
    /// secret replaced by `***`, also when the password contains spaces.
    static func redactURL(_ url: String) -> String {
        let scalars = Array(url.unicodeScalars)
        return hide(urlRanges(scalars), in: scalars)
    }

    /// Everything ``redactURL(_:)`` hides in `url`: each hidden part, its percent-decoded form, and its fragments
    /// (split at `@`, `:`, `/`, `,`, `&`, `=`, `?`, quotes and whitespace, which libpq may quote on their own);
    /// longest first.
    static func secrets(in url: String) -> [String] {
        let scalars = Array(url.unicodeScalars)
        var found: Set<String> = []
        for range in urlRanges(scalars) {
            let raw = String(String.UnicodeScalarView(scalars[range]))
            var forms = [raw]
            if raw.unicodeScalars.first == "'" { forms.append(unquoted(raw)) }
            forms += forms.map(percentDecoded)
            for form in forms {
                found.insert(form)
                for separators in [fragmentSeparators, ["@"], [":"], ["/"]] as [Set<Unicode.Scalar>] {
                    let parts = form.unicodeScalars.split { separators.contains($0) || isSeparator($0) }
                    for part in parts { found.insert(String(String.UnicodeScalarView(part))) }
                }
            }
        }
        return found.filter { !$0.isEmpty }.sorted { $0.unicodeScalars.count > $1.unicodeScalars.count }
    }

    /// `message` (libpq's text) with each of `secrets` of 3 or more scalars removed wherever it appears, every
    /// piece of a double-quoted string that occurs in a secret (2 or more scalars) removed, then ``redact(_:)``.
    static func scrub(_ message: String, secrets: [String]) -> String {
        var result = message
        for secret in secrets where secret.unicodeScalars.count >= 3 { result = replacing(secret, in: result) }
        result = hideQuotedPieces(of: result, secrets: secrets.map { Array($0.unicodeScalars) })
        return redact(result)
    }

    /// `text` with every occurrence of `secret` replaced by `***`, comparing Unicode scalars.
    static func replacing(_ secret: String, in text: String) -> String {
        let needle = Array(secret.unicodeScalars)
        let haystack = Array(text.unicodeScalars)
        guard !needle.isEmpty, haystack.count >= needle.count else { return text }
        var ranges: [Range<Int>] = []
        var index = 0
        while index + needle.count <= haystack.count {
            if haystack[index..<index + needle.count].elementsEqual(needle) {
                ranges.append(index..<index + needle.count)
                index += needle.count
            } else {
                index += 1
            }
        }
        return ranges.isEmpty ? text : hide(ranges, in: haystack)
    }

    /// `text` with each valid `%XX` decoded and any other `%` kept (libpq decodes the user name and password of a
    /// URL; one invalid escape must not keep the others from being recognized).
    private static func percentDecoded(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var index = 0
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count, let high = hex(bytes[index + 1]),
                let low = hex(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A libpq `key=value` value as libpq reads it: without its quotes, `\x` read as `x`.
    private static func unquoted(_ quoted: String) -> String {
        var out = String.UnicodeScalarView()
        var escaped = false
        for scalar in quoted.unicodeScalars.dropFirst() {
            if escaped {
                out.append(scalar)
                escaped = false
            } else if scalar == "\\" {
                escaped = true
            } else if scalar == "'" {
                break
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    // MARK: - Where the secrets are

    /// Ranges to hide in any text: per whitespace- or quote-separated token (a URL's user information or a
    /// non-numeric port), plus password parameters.
    private static func textRanges(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var tokenStart = 0
        for index in 0...scalars.count where index == scalars.count || isSeparator(scalars[index]) {
            if tokenStart < index { ranges += tokenRanges(scalars, tokenStart..<index) }
            tokenStart = index + 1
        }
        return ranges + passwordParameterRanges(scalars, parameterPattern)
    }

    /// Ranges to hide in a connection string: those of ``textRanges(_:)``; in libpq's `key=value` form, password
    /// values (also with spaces); in a `postgres://` URL everything from the scheme to the last `@` of the whole
    /// string (spaces included), an authority with a non-numeric port and what follows it, and password query
    /// parameters; in anything else (a mistyped scheme, refused before connecting) all after the scheme.
    private static func urlRanges(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        let ranges = textRanges(scalars)
        if isKeyValueForm(scalars) { return ranges + passwordParameterRanges(scalars, keyValueParameterPattern) }
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return ranges }
        let whole = first..<scalars.count
        let lowered = String(String.UnicodeScalarView(scalars[whole])).lowercased()
        guard lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://") else {
            // Not a URL libpq accepts (refused before connecting): nothing after its scheme is shown.
            return ranges + [(schemeEnd(scalars, whole)?.end ?? first)..<scalars.count]
        }
        return ranges + passwordParameterRanges(scalars, queryParameterPattern) + tokenRanges(scalars, whole)
    }

    /// The user information of a URL-ish token (from the end of its scheme, or its start, to its last `@`), and
    /// an authority whose port is empty or not a number (`postgres://root:S3cr3t`, `postgres://root:S3c@:r3t`: a
    /// password where the host should be).
    private static func tokenRanges(_ scalars: [Unicode.Scalar], _ token: Range<Int>) -> [Range<Int>] {
        let scheme = schemeEnd(scalars, token)
        var ranges: [Range<Int>] = []
        var authorityStart: Int
        if let at = scalars[token].lastIndex(of: "@") {
            let start = scheme?.end ?? token.lowerBound
            if start < at { ranges.append(start..<at) }
            authorityStart = at + 1
        } else {
            guard let scheme, scheme.slashes >= 2 else { return [] }
            authorityStart = scheme.end
        }
        let authorityEnd =
            scalars[authorityStart..<token.upperBound].firstIndex(where: { "/?#".unicodeScalars.contains($0) })
            ?? token.upperBound
        let authority = authorityStart..<authorityEnd
        // With a port that is not a number the URL is invalid anyway, and a password with `/`, `?` or `#` may go on
        // past the authority: everything to the end of the token goes.
        let hasWordPort = scalars[authority].split(separator: ",").contains { host in
            // An IPv6 literal's colons are not a port's.
            var rest = Array(host)
            // Whitespace: not a host name and port, so it may be a password.
            if rest.contains(where: { $0.properties.isWhitespace }) { return true }
            if rest.first == "[", let close = rest.firstIndex(of: "]") {
                // An IPv6 literal holds hex digits, colons, dots and a zone (`%eth0`), and is followed by nothing
                // or by `:port`.
                let literal = rest[1..<close]
                let address = literal.prefix { $0 != "%" }
                let zone = literal.dropFirst(address.count)
                if !address.allSatisfy({ $0.properties.isASCIIHexDigit || $0 == ":" || $0 == "." })
                    || !zone.allSatisfy({
                        isASCIILetter($0) || ("0"..."9").contains($0) || "%_.-".unicodeScalars.contains($0)
                    })
                {
                    return true
                }
                rest.removeSubrange(0...close)
                if !rest.isEmpty && rest.first != ":" { return true }
            }
            // A second colon (outside an IPv6 literal) or a stray bracket: not a host name and port either.
            if rest.filter({ $0 == ":" }).count > 1 || rest.contains("[") || rest.contains("]") { return true }
            guard let colon = rest.lastIndex(of: ":") else { return false }
            let port = rest[(colon + 1)...]
            return port.isEmpty || !port.allSatisfy { ("0"..."9").contains($0) }
        }
        if hasWordPort { ranges.append(authority.lowerBound..<token.upperBound) }
        return ranges
    }

    /// Where a scheme (`letters:`, `letters://`, `letters//`, any number of slashes) ends in `token`, and how many
    /// slashes it has.
    private static func schemeEnd(_ scalars: [Unicode.Scalar], _ token: Range<Int>) -> (end: Int, slashes: Int)? {
        var index = token.lowerBound
        guard index < token.upperBound, isASCIILetter(scalars[index]) else { return nil }
        while index < token.upperBound,
            isASCIILetter(scalars[index]) || ("0"..."9").contains(scalars[index])
                || "+.-".unicodeScalars.contains(scalars[index])
        {
            index += 1
        }
        let colon = index < token.upperBound && scalars[index] == ":"
        if colon { index += 1 }
        var slashes = 0
        while index < token.upperBound, scalars[index] == "/" {
            slashes += 1
            index += 1
        }
        return colon || slashes >= 2 ? (index, slashes) : nil
    }

    /// The values of password parameters: `password=…`, `?passwd=…`, `&sslpassword='…'`, `pwd = …` (any name
    /// ending in password, passwd, pass or pwd; any case). A quoted value ends at its closing quote; an unquoted one
    /// at whitespace (see the patterns for whole connection strings).
    private static func passwordParameterRanges(
        _ scalars: [Unicode.Scalar],
        _ pattern: Regex<(Substring, Substring)>
    ) -> [Range<Int>] {
        let text = String(String.UnicodeScalarView(scalars))
        return text.matches(of: pattern).map { match in
            let range = match.output.1.startIndex..<match.output.1.endIndex
            let lower = text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: range.lowerBound)
            return lower..<lower + text.unicodeScalars.distance(from: range.lowerBound, to: range.upperBound)
        }
    }

    /// `true` for libpq's `key=value` form (`host=db password=…`): its first word is followed by `=`.
    private static func isKeyValueForm(_ scalars: [Unicode.Scalar]) -> Bool {
        let text = String(String.UnicodeScalarView(scalars))
        return text.prefixMatch(of: keyValueFormPattern) != nil
    }

    // MARK: - Hiding

    /// `scalars` with each range replaced by `***` (overlapping or touching ranges by one `***`).
    private static func hide(_ ranges: [Range<Int>], in scalars: [Unicode.Scalar]) -> String {
        var out = String.UnicodeScalarView()
        var index = 0
        for range in ranges.filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if range.upperBound <= index { continue }
            if range.lowerBound > index || index == 0 {
                out.append(contentsOf: scalars[index..<max(index, range.lowerBound)])
                out.append(contentsOf: "***".unicodeScalars)
            }
            index = range.upperBound
        }
        if index < scalars.count { out.append(contentsOf: scalars[index...]) }
        return String(out)
    }

    /// Every piece of a double-quoted string in `text` (split at URL and `key=value` punctuation) of 2 or more
    /// scalars that occurs in one of `secrets`, replaced by `***`.
    private static func hideQuotedPieces(of text: String, secrets: [[Unicode.Scalar]]) -> String {
        let scalars = Array(text.unicodeScalars)
        var ranges: [Range<Int>] = []
        var open: Int?
        for (index, scalar) in scalars.enumerated() {
            if scalar == "\"" {
                if let start = open {
                    ranges += pieces(scalars, start..<index).filter { piece in
                        piece.count >= 2 && secrets.contains { occurs(scalars[piece], in: $0) }
                    }
                    open = nil
                } else {
                    open = index + 1
                }
            }
        }
        return ranges.isEmpty ? text : hide(ranges, in: scalars)
    }

    private static func pieces(_ scalars: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = range.lowerBound
        for index in range.lowerBound...range.upperBound
        where index == range.upperBound || fragmentSeparators.contains(scalars[index])
            || scalars[index].properties.isWhitespace
        {
            if start < index { result.append(start..<index) }
            start = index + 1
        }
        return result
    }

    private static func occurs(_ needle: ArraySlice<Unicode.Scalar>, in haystack: [Unicode.Scalar]) -> Bool {
        guard !needle.isEmpty, needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<start + needle.count].elementsEqual(needle) {
            return true
        }
        return false
    }

    private static func isSeparator(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || scalar == "\"" || scalar == "'"
    }

    private static func isASCIILetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    private static let fragmentSeparators: Set<Unicode.Scalar> = ["@", ":", "/", ",", "&", "=", "?", "#", "\"", "'"]

    /// A password parameter's value in any text: quoted (to its closing quote, and what sticks to it) or up to
    /// whitespace.
    nonisolated(unsafe) private static let parameterPattern = try! Regex<(Substring, Substring)>(
        #"(?i)\b\w*(?:password|passwd|pass|pwd)\s*=\s*('(?:[^'\\]|\\.)*'?\S*|\S+)"#
    ).matchingSemantics(.unicodeScalar)
    /// The same in a `key=value` connection string: the `=` may be missing (libpq then says `missing "="` but the
    /// next word was meant as the password), and an unquoted value also takes the following words that are not
    /// `key=value` (libpq reads `password=S3cr3t Pw` as a password and a stray word).
    nonisolated(unsafe) private static let keyValueParameterPattern = try! Regex<(Substring, Substring)>(
        #"(?i)\b\w*(?:password|passwd|pass|pwd)(?:\s*=\s*|\s+)('(?:[^'\\]|\\.)*'?\S*|[^\s=]\S*(?:\s+[^\s=]+(?=\s|$))*)"#
    ).matchingSemantics(.unicodeScalar)
    /// The same in a URL's query: the value runs to the end of the URL, spaces and later parameters included (an
    /// unencoded `&`, `=` or `#` may be part of the password).
    nonisolated(unsafe) private static let queryParameterPattern = try! Regex<(Substring, Substring)>(
        #"(?is)[?&]\s*\w*(?:password|passwd|pass|pwd)\s*=(.*)"#
    ).matchingSemantics(.unicodeScalar)
    nonisolated(unsafe) private static let keyValueFormPattern = try! Regex(#"\s*\w+\s*="#)
        .matchingSemantics(.unicodeScalar)
}
