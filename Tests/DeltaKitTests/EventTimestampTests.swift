import DeltaKit
import Foundation
import Testing

@Suite("EventTimestamp")
struct EventTimestampTests {
    @Test("formats with microseconds and +00:00")
    func format() {
        #expect(EventTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000000+00:00")
        #expect(EventTimestamp.format(Date(timeIntervalSince1970: 951_782_400.5)) == "2000-02-29T00:00:00.500000+00:00")
        #expect(EventTimestamp.format(Date(timeIntervalSince1970: -1.25)) == "1969-12-31T23:59:58.750000+00:00")
        #expect(
            EventTimestamp.format(Date(timeIntervalSince1970: 4_102_444_799.999999))
                == "2099-12-31T23:59:59.999999+00:00"
        )
    }

    @Test("parses RFC 3339 variants")
    func parse() throws {
        let expected = Date(timeIntervalSince1970: 1_714_566_645.123456)
        for text in [
            "2024-05-01T12:30:45.123456+00:00", "2024-05-01T12:30:45.123456Z", "2024-05-01 12:30:45.123456",
            "2024-05-01T14:30:45.123456+02:00", "2024-05-01T10:30:45.123456-0200", "2024-05-01T12:30:45.1234564Z",
        ] {
            let date = try #require(EventTimestamp.parse(text), "\(text)")
            #expect(EventTimestamp.microseconds(date) == EventTimestamp.microseconds(expected), "\(text)")
        }
        #expect(EventTimestamp.parse("2024-05-01T12:30:45+00:00") == Date(timeIntervalSince1970: 1_714_566_645))
        for bad in ["", "2024-05-01", "2024-13-01T00:00:00Z", "2024-05-01T12:30:45.+00:00", "2024-05-01T12:30:45 junk"]
        {
            #expect(EventTimestamp.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("format and parse round-trip at microsecond precision")
    func roundTrip() throws {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let micros = Int64.random(in: -2_000_000_000_000_000...4_000_000_000_000_000, using: &random)
            let date = Date(timeIntervalSince1970: Double(micros) / 1_000_000)
            let parsed = try #require(EventTimestamp.parse(EventTimestamp.format(date)))
            #expect(EventTimestamp.microseconds(parsed) == micros)
        }
    }

    // Regression tests for the fuzzer's findings (Fuzz/Timestamp; Documentation/reliability.md).

    @Test(
        "fuzz findings: impossible dates, offsets and out-of-range instants are refused, not normalized",
        arguments: [
            "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-11-25T24:00:00Z",
            "2024-11-25T01:00:00+24:00", "2024-11-25T01:00:00+05:60", "9999-12-31T23:59:59.9999991",
            "9999-12-31T23:59:59.999999-00:01", "0000-12-31T23:59:59Z", "0001-01-01T00:00:00+00:01",
        ]
    )
    func refused(text: String) {
        #expect(EventTimestamp.parse(text) == nil, "\(text)")
    }

    @Test("fuzz finding: the edges of the range are accepted and a leap day is a real day")
    func edges() throws {
        #expect(EventTimestamp.parse("2024-02-29T00:00:00Z") != nil)
        #expect(EventTimestamp.parse("2000-02-29T00:00:00Z") != nil)
        #expect(EventTimestamp.parse("0001-01-01T00:00:00Z") != nil)
        #expect(EventTimestamp.parse("9999-12-31T23:59:59Z") != nil)
        // A Date cannot hold this microsecond in year 9999: it would read back as year 10000, so it is refused.
        #expect(EventTimestamp.parse("9999-12-31T23:59:59.999999Z") == nil)
    }

    @Test("fuzz finding: microseconds survive a round trip between 1902 and 2038")
    func farFuture() throws {
        for text in [
            "2037-11-25T03:48:24.1+00:00", "2038-01-18T01:48:21.100001+00:00", "1902-01-01T00:00:00.000001+00:00",
        ] {
            let parsed = try #require(EventTimestamp.parse(text))
            let again = try #require(EventTimestamp.parse(EventTimestamp.format(parsed)))
            #expect(EventTimestamp.microseconds(again) == EventTimestamp.microseconds(parsed), "\(text)")
            #expect(EventTimestamp.format(parsed) == text.replacingOccurrences(of: ".1+", with: ".100000+"))
        }
    }

    @Test("fuzz finding: a timestamp's text reads back to itself in every year; its microsecond is kept 1865–2137")
    func microsecondsAfter2038() throws {
        // The RowText fuzz target's finding: a Date of 2108 came back one microsecond later from its own text.
        let found = "2108-06-30T23:40:00.126001+00:00"
        #expect(EventTimestamp.parse(found).map(EventTimestamp.format) == found)
        var state: UInt64 = 2026  // SplitMix64: reproducible samples
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for _ in 0..<20_000 {
            // Anywhere in years 1–9999: one trip through the text may move the microsecond, the next never does.
            let anywhere = Date(timeIntervalSinceReferenceDate: Double(next() % 315_000_000_000) - 63_000_000_000)
            let text = EventTimestamp.format(anywhere)
            if let parsed = EventTimestamp.parse(text) { #expect(EventTimestamp.format(parsed) == text) }
            // Within 2³² seconds of 2001 every microsecond is kept exactly.
            let near = Date(
                timeIntervalSinceReferenceDate: Double(Int64(next() % 8_589_934_592) - 4_294_967_296) / 1.0
                    + Double(next() % 1_000_000) / 1_000_000
            )
            let exact = try #require(EventTimestamp.parse(EventTimestamp.format(near)))
            #expect(EventTimestamp.microseconds(exact) == EventTimestamp.microseconds(near))
        }
    }

    @Test("the word-at-a-time reading of the canonical form answers as the general parser, for any byte changed")
    func canonicalFormFastPath() {
        var generator = SystemRandomNumberGenerator()
        // Years 0001–9999 (and beyond, to the edges), every month length, leap days, second 60.
        var texts = [
            "0001-01-01T00:00:00.000000+00:00", "9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:60.000000+00:00",
            "0000-12-31T23:59:59.999999+00:00", "2024-02-29T12:00:00.000001+00:00", "2023-02-29T12:00:00.000001+00:00",
            "2100-02-29T00:00:00.000000+00:00", "2000-02-29T00:00:00.000000+00:00", "2024-04-31T00:00:00.000000+00:00",
            "2024-12-31T24:00:00.000000+00:00", "2024-12-31T23:60:00.000000+00:00", "1969-12-31T23:59:59.999999+00:00",
            "2024-00-10T00:00:00.000000+00:00", "2024-05-00T00:00:00.000000+00:00", "2024-05-01t12:30:45.123456+00:00",
            "2024-05-01 12:30:45.123456+00:00", "2024-05-01T12:30:45.123456-00:00", "2024-05-01T12:30:45.123456+00:01",
        ]
        for _ in 0..<2_000 {
            let micros = Int64.random(in: -62_135_596_800_000_000...253_402_300_799_999_999, using: &generator)
            texts.append(EventTimestamp.format(EventTimestamp.date(fromMicroseconds: micros)))
        }
        let replacements: [UInt8] = Array("0123456789:-.+TZ /\u{7F}\u{FF}".utf8) + [0x29, 0x3A, 0x40, 0xF9, 0xFA]
        var checked = 0
        for text in texts {
            var bytes = Array(text.utf8)
            #expect(bytes.count == 32, "\(text)")
            if text.hasSuffix("+00:00"), let general = bytes.withUnsafeBytes({ EventTimestamp.parseAnyForm($0) }),
                text.utf8.dropFirst(10).first == UInt8(ascii: "T")
            {
                // The canonical form is read by the word-at-a-time path, not only by the general one.
                #expect(
                    bytes.withUnsafeBytes { EventTimestamp.microsecondsOfCanonicalForm(at: $0.baseAddress!) } == general
                )
            }
            for variant in 0...64 {
                var changed = bytes
                if variant > 0 {
                    changed[Int.random(in: 0..<32, using: &generator)] = replacements.randomElement(using: &generator)!
                }
                let fast = changed.withUnsafeBytes { EventTimestamp.parseMicroseconds($0) }
                let general = changed.withUnsafeBytes { EventTimestamp.parseAnyForm($0) }
                #expect(fast == general, "\(String(decoding: changed, as: UTF8.self))")
                checked += 1
            }
            bytes.removeAll()
        }
        #expect(checked == texts.count * 65)
    }
}
