// libFuzzer target: the `ts` parser (`EventTimestamp.parse`). Any string → a date or nil, never a trap; an
// accepted string round-trips through `format` to the same instant at microsecond precision; and every string
// that Foundation's ISO8601DateFormatter (RFC 3339, the reference) accepts is accepted with the same instant.
import Foundation

nonisolated(unsafe) let plain: ISO8601DateFormatter = {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f
}()
nonisolated(unsafe) let fractional: ISO8601DateFormatter = {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f
}()

nonisolated(unsafe) let rfc3339 = try! Regex(
    #"(19|20)[0-9][0-9]-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"#
)

/// RFC 3339's date-mday rule (Foundation normalizes 2024-02-30 to March 1 instead of refusing it).
func realDay(_ text: String) -> Bool {
    let parts = text.prefix(10).split(separator: "-").compactMap { Int($0) }
    guard parts.count == 3 else { return false }
    let (y, m, d) = (parts[0], parts[1], parts[2])
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return (1...12).contains(m) && d >= 1 && d <= days[m - 1]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let parsed = EventTimestamp.parse(text)
    // A Date holds every whole microsecond only within 2^31 s of 1970 (1902–2038): check the round trip there.
    if let parsed, abs(parsed.timeIntervalSince1970) < 2_147_483_648 {
        let formatted = EventTimestamp.format(parsed)
        guard let again = EventTimestamp.parse(formatted),
            EventTimestamp.microseconds(again) == EventTimestamp.microseconds(parsed)
        else { fatalError("round trip changed \(text) → \(formatted)") }
    }
    // The reference is ISO 8601, which also allows 24:00, and Foundation's reads other scripts' digits ("۰");
    // compare only on RFC 3339's grammar (ASCII digits: Regex's \d would match any script's), and only
    // for years 1900–2099: Foundation switches to the Julian calendar before 1582 (DeltaKit, like PostgreSQL and
    // RisingWave, stays proleptic Gregorian), and a `Date` (a Double of seconds since 2001) holds microseconds
    // only within about 140 years of 2001 — beyond that both sides round, differently.
    if text.wholeMatch(of: rfc3339) != nil, realDay(text), let reference = plain.date(from: text) ?? fractional.date(from: text) {
        guard let parsed else { fatalError("RFC 3339 text refused: \(text)") }
        // The reference keeps milliseconds; DeltaKit keeps microseconds: they agree to the millisecond.
        let difference = abs(parsed.timeIntervalSince1970 - reference.timeIntervalSince1970)
        guard difference < 0.001 else { fatalError("\(text): \(parsed) vs reference \(reference)") }
    }
    return 0
}
