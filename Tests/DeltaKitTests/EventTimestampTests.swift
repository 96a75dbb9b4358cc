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
}
