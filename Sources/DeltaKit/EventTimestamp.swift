public import Foundation

/// The `ts` wire format: ISO-8601 with microseconds and an explicit `+00:00` offset.
///
/// RisingWave turns a trailing `Z` into NULL in a TIMESTAMP column, and Python's
/// `datetime.now(timezone.utc).isoformat()` (the demo producer) writes `+00:00`, so DeltaKit
/// writes `2024-05-01T12:30:45.123456+00:00` and accepts any RFC 3339 form when reading.
public enum EventTimestamp {
    /// Rounds a date to the nearest whole microsecond, the precision of the wire format and of SQL timestamps.
    ///
    /// A `Date` is a `Double` of seconds since 2001, so it holds every whole microsecond from about 1865 to 2137
    /// (2³² seconds around 2001, where a `Double`'s step passes half a microsecond); outside, a timestamp may
    /// move by a microsecond once — its text then reads back to the same `Date`.
    package static func roundedToMicroseconds(_ date: Date) -> Date {
        Self.date(fromMicroseconds: microseconds(date))
    }

    /// Microseconds since 1970-01-01T00:00:00Z, rounded to the nearest microsecond.
    package static func microseconds(_ date: Date) -> Int64 {
        // From the `Double` a `Date` stores (seconds since 2001), whole seconds and the fraction apart: the
        // difference is exact, so only the fraction is rounded. Converting through `timeIntervalSince1970` would
        // round once more, and scaling all of it by 10⁶ rounds the product to half a microsecond after 2038:
        // either moves a timestamp read back from its own text by a microsecond.
        let seconds = date.timeIntervalSinceReferenceDate
        let whole = seconds.rounded(.down)
        return (Int64(whole) + referenceDateOffset) * 1_000_000 + Int64(((seconds - whole) * 1_000_000).rounded())
    }

    /// The `Date` nearest to `micros` microseconds since 1970.
    package static func date(fromMicroseconds micros: Int64) -> Date {
        // Integer arithmetic down to the seconds since 2001, then one rounding into the `Double`.
        let sinceReference = micros - referenceDateOffset * 1_000_000
        let seconds = sinceReference.floorDiv(1_000_000)
        return Date(
            timeIntervalSinceReferenceDate: Double(seconds) + Double(sinceReference - seconds * 1_000_000) / 1_000_000
        )
    }

    /// The microseconds a text's `micros` (``parseMicroseconds(_:)``) stand for once read back from their own
    /// text: the same outside the edges of a `Date`'s microsecond precision (see ``roundedToMicroseconds(_:)``).
    @inline(__always)
    package static func canonicalMicroseconds(_ micros: Int64) -> Int64 {
        // Within 2³¹ seconds of 2001 (1932–2069) a `Date` holds every microsecond: nothing to compute.
        let sinceReference = micros &- referenceDateOffset &* 1_000_000
        if sinceReference > -exactRange, sinceReference < exactRange { return micros }
        return microseconds(date(fromMicroseconds: micros))
    }

    /// 2³¹ seconds in microseconds.
    private static let exactRange: Int64 = (1 << 31) * 1_000_000

    /// Seconds from 1970-01-01 to 2001-01-01, `Date`'s reference date.
    private static let referenceDateOffset: Int64 = 978_307_200

    /// Formats a date as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
    public static func format(_ date: Date) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        format(date, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` form of `date` to `buffer` (no allocation).
    package static func format(_ date: Date, into buffer: inout [UInt8]) {
        let micros = microseconds(date)
        var seconds = micros.floorDiv(1_000_000)
        let fraction = micros - seconds * 1_000_000
        let days = seconds.floorDiv(86_400)
        seconds -= days * 86_400
        let (y, m, d) = civil(fromDays: days)
        guard (0...9_999).contains(y) else {
            formatAnyYear(y, m, d, seconds, fraction, into: &buffer)
            return
        }
        // Years 0…9999, every event's: 32 fixed-width characters, two digits at a time.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { out in
            FlatJSONWriter.digitPairs.withUnsafeBufferPointer { pairs in
                func two(_ value: Int64, at index: Int) {
                    let pair = Int(value) &* 2
                    out[index] = pairs[pair]
                    out[index + 1] = pairs[pair + 1]
                }
                two(y / 100, at: 0)
                two(y % 100, at: 2)
                out[4] = UInt8(ascii: "-")
                two(m, at: 5)
                out[7] = UInt8(ascii: "-")
                two(d, at: 8)
                out[10] = UInt8(ascii: "T")
                two(seconds / 3600, at: 11)
                out[13] = UInt8(ascii: ":")
                two(seconds / 60 % 60, at: 14)
                out[16] = UInt8(ascii: ":")
                two(seconds % 60, at: 17)
                out[19] = UInt8(ascii: ".")
                two(fraction / 10_000, at: 20)
                two(fraction / 100 % 100, at: 22)
                two(fraction % 100, at: 24)
                out[26] = UInt8(ascii: "+")
                out[27] = UInt8(ascii: "0")
                out[28] = UInt8(ascii: "0")
                out[29] = UInt8(ascii: ":")
                out[30] = UInt8(ascii: "0")
                out[31] = UInt8(ascii: "0")
            }
            buffer.append(contentsOf: UnsafeBufferPointer(out))
        }
    }

    /// ``format(_:into:)`` for any year: a sign and more than four digits where needed.
    private static func formatAnyYear(
        _ y: Int64,
        _ m: Int64,
        _ d: Int64,
        _ seconds: Int64,
        _ fraction: Int64,
        into buffer: inout [UInt8]
    ) {
        // Fixed-width fields written straight into a stack buffer, then appended at once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { out in
            var i = 0
            func put(_ byte: UInt8) {
                out[i] = byte
                i += 1
            }
            func digits(_ value: Int64, _ width: Int) {
                var v = value
                if v < 0 {
                    put(UInt8(ascii: "-"))
                    v = -v
                }
                var count = width
                var probe = v
                var needed = 0
                repeat {
                    needed += 1
                    probe /= 10
                } while probe > 0
                count = max(count, needed)
                for position in stride(from: count - 1, through: 0, by: -1) {
                    out[i + position] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
                i += count
            }
            digits(y, 4)
            put(UInt8(ascii: "-"))
            digits(m, 2)
            put(UInt8(ascii: "-"))
            digits(d, 2)
            put(UInt8(ascii: "T"))
            digits(seconds / 3600, 2)
            put(UInt8(ascii: ":"))
            digits(seconds / 60 % 60, 2)
            put(UInt8(ascii: ":"))
            digits(seconds % 60, 2)
            put(UInt8(ascii: "."))
            digits(fraction, 6)
            for byte in "+00:00".utf8 { put(byte) }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: out[0..<i]))
        }
    }

    /// Parses an RFC 3339 / ISO-8601 timestamp: `T` or space separator, 0–9 fractional digits
    /// (rounded to microseconds), and `Z`, `+hh:mm`, `-hh:mm`, `+hhmm` or no offset (read as UTC).
    /// Returns `nil` when the text is not such a timestamp.
    public static func parse(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { parseMicroseconds(UnsafeRawBufferPointer($0)) }.map(date(fromMicroseconds:))
    }

    /// ``parse(_:)`` on the text's UTF-8 bytes, without a copy: the microseconds since 1970 of the `Date` it returns
    /// (`date(fromMicroseconds:)` of the result), or `nil` when the bytes are not such a timestamp.
    package static func parseMicroseconds(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        if bytes.count == 32, let micros = microsecondsOfCanonicalForm(at: bytes.baseAddress!) { return micros }
        return parseAnyForm(bytes)
    }

    /// ``parseMicroseconds(_:)`` byte by byte, for every form ``parse(_:)`` accepts.
    package static func parseAnyForm(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        // A cursor over the bytes (no slices: this runs for every event read).
        let count = bytes.count
        var i = 0
        @inline(__always) func number(_ n: Int) -> Int64? {
            guard count &- i >= n else { return nil }
            var v: Int64 = 0
            for k in i..<i &+ n {
                let c = bytes[k]
                guard c >= 48, c <= 57 else { return nil }
                v = v &* 10 &+ Int64(c &- 48)
            }
            i &+= n
            return v
        }
        @inline(__always) func expect(_ c: UInt8) -> Bool {
            guard i < count, bytes[i] == c else { return false }
            i &+= 1
            return true
        }
        guard let y = number(4), expect(0x2D), let mo = number(2), expect(0x2D), let d = number(2) else { return nil }
        guard i < count, bytes[i] == 0x54 || bytes[i] == 0x74 || bytes[i] == 0x20 else { return nil }
        i &+= 1
        guard let h = number(2), expect(0x3A), let mi = number(2), expect(0x3A), let s = number(2) else { return nil }
        guard (1...12).contains(mo), d >= 1, d <= daysInMonth(y, mo), h < 24, mi < 60, s < 61 else { return nil }
        var micros: Int64 = 0
        if expect(0x2E) {
            var digits = 0
            var frac: Int64 = 0
            var roundUp = false
            while i < count, bytes[i] >= 48, bytes[i] <= 57 {
                let c = bytes[i]
                if digits < 6 {
                    frac = frac * 10 + Int64(c - 48)
                } else if digits == 6 {
                    roundUp = c >= 53
                }
                digits += 1
                i &+= 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 6) { frac *= 10 }
            micros = frac + (roundUp ? 1 : 0)
        }
        var offsetSeconds: Int64 = 0
        if i < count {
            let c = bytes[i]
            if c == 0x5A || c == 0x7A {
                i &+= 1
            } else if c == 0x2B || c == 0x2D {
                i &+= 1
                guard let oh = number(2), oh < 24 else { return nil }
                _ = expect(0x3A)
                let om = number(2) ?? 0
                guard om < 60 else { return nil }
                offsetSeconds = (oh * 3600 + om * 60) * (c == 0x2D ? -1 : 1)
            } else {
                return nil
            }
        }
        guard i == count else { return nil }
        let days = days(fromCivil: y, mo, d)
        let total = (days * 86_400 + h * 3600 + mi * 60 + s - offsetSeconds) * 1_000_000 + micros
        // Years 0001–9999 in UTC, as `format` writes them (and SQL timestamps hold); rounding or an offset can push
        // an edge value outside.
        guard (minimumMicroseconds...maximumMicroseconds).contains(total) else { return nil }
        // Near the edges a Date cannot hold the microsecond: refuse what would format outside years 1–9999.
        guard (minimumMicroseconds...maximumMicroseconds).contains(canonicalMicroseconds(total)) else { return nil }
        return total
    }

    /// The 32 bytes at `p` read as the form ``format(_:into:)`` writes, `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` — every
    /// event's timestamp — a word at a time; `nil` when they are not in that form or not a valid time of years
    /// 0001–9999 (then the general parser decides, with the same answer for what it accepts).
    @inline(__always)
    package static func microsecondsOfCanonicalForm(at p: UnsafeRawPointer) -> Int64? {
        // Little-endian words: byte k of a word is bits 8k..<8k+8.
        let w0 = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))  // YYYY-MM-
        let w1 = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))  // DDTHH:MM
        let w2 = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))  // :SS.ffff
        let w3 = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))  // ff+00:00
        // The separators, exactly ("+00:00" whole).
        guard w0 & 0xFF00_00FF_0000_0000 == 0x2D00_002D_0000_0000,  // '-' at 4 and 7
            w1 & 0x0000_FF00_00FF_0000 == 0x0000_3A00_0054_0000,  // 'T' at 10, ':' at 13
            w2 & 0x0000_0000_FF00_00FF == 0x0000_0000_2E00_003A,  // ':' at 16, '.' at 19
            w3 & 0xFFFF_FFFF_FFFF_0000 == 0x3030_3A30_302B_0000  // "+00:00" at 26
        else { return nil }
        // Every other byte a digit: its high nibble 3 and, with 6 added, still 3 (no byte can carry into the
        // next: a digit is at most 0x39 and each separator byte was checked).
        @inline(__always) func digits(_ word: UInt64, _ mask: UInt64) -> Bool {
            let high = 0xF0F0_F0F0_F0F0_F0F0 & mask
            let three = 0x3030_3030_3030_3030 & mask
            return word & high == three && (word &+ 0x0606_0606_0606_0606) & high == three
        }
        guard digits(w0, 0x00FF_FF00_FFFF_FFFF), digits(w1, 0xFFFF_00FF_FF00_FFFF),
            digits(w2, 0xFFFF_FFFF_00FF_FF00), digits(w3, 0x0000_0000_0000_FFFF)
        else { return nil }
        @inline(__always) func digit(_ word: UInt64, _ byte: UInt64) -> Int64 {
            Int64(truncatingIfNeeded: (word >> (byte &* 8)) & 0x0F)
        }
        @inline(__always) func two(_ word: UInt64, _ byte: UInt64) -> Int64 {
            digit(word, byte) &* 10 &+ digit(word, byte &+ 1)
        }
        let y = two(w0, 0) &* 100 &+ two(w0, 2)
        let mo = two(w0, 5)
        let d = two(w1, 0)
        let h = two(w1, 3)
        let mi = two(w1, 6)
        let s = two(w2, 1)
        let micros = (two(w2, 4) &* 100 &+ two(w2, 6)) &* 100 &+ two(w3, 0)
        guard y >= 1, (1...12).contains(mo), d >= 1, d <= daysInMonth(y, mo), h < 24, mi < 60, s < 61 else {
            return nil
        }
        let total = (days(fromCivil: y, mo, d) &* 86_400 &+ h &* 3600 &+ mi &* 60 &+ s) &* 1_000_000 &+ micros
        let range = minimumMicroseconds...maximumMicroseconds
        guard range.contains(total), range.contains(canonicalMicroseconds(total)) else { return nil }
        return total
    }

    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in microseconds since 1970.
    private static let minimumMicroseconds: Int64 = days(fromCivil: 1, 1, 1) * 86_400 * 1_000_000
    private static let maximumMicroseconds: Int64 = (days(fromCivil: 10_000, 1, 1) * 86_400 * 1_000_000) - 1

    private static func daysInMonth(_ year: Int64, _ month: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's civil-from-days / days-from-civil algorithms (proleptic Gregorian calendar).
    private static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = z.floorDiv(146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    private static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = y.floorDiv(400)
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

extension Int64 {
    fileprivate func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
