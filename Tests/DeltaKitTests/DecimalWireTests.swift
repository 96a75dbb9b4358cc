import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

/// Decimals travel as a JSON string of their exact text: a reader that parses JSON numbers through a binary float
/// (RisingWave's does) would round them past ~15 significant digits. Both forms are read.
@Suite("Decimal on the wire")
struct DecimalWireTests {
    /// 30 significant digits: more than a `Double` holds, fewer than `Decimal`'s 38.
    static let wide = Decimal(string: "123456789012345.678901234567891")!

    @Test("a decimal is written as a JSON string of its exact text")
    func writtenAsString() throws {
        let event = ChangeEvent.insert(ScalarSample(id: 1, amount: Self.wide), order: 1)
        let json = String(decoding: try event.jsonData(), as: UTF8.self)
        #expect(json.contains(#""amount":"123456789012345.678901234567891""#))
        #expect(try ScalarType.of(Decimal.self)!.textForm(of: Self.wide, field: "amount") == Self.wide.description)
    }

    @Test("30 significant digits round-trip exactly through the wire (fast path and Codable path)")
    func wideRoundTrip() throws {
        let event = ChangeEvent.insert(ScalarSample(id: 1, amount: Self.wide), order: 1)
        let decoded = try ChangeEvent<ScalarSample>(jsonData: try event.jsonData())
        #expect(decoded.record?.amount == Self.wide)
        #expect(decoded == (try event.canonicalized()))
        // The `Codable` path over the same bytes (the fast path's fallback) reads it too.
        let general = try Array(try event.jsonData()).withUnsafeBytes { bytes in
            try ChangeEvent<ScalarSample>.decodeWire(bytes, schema: nil)
        }
        #expect(general.record?.amount == Self.wide)
    }

    @Test(
        "a decimal is read from a JSON number or from a string holding one",
        arguments: [
            (#""12.34""#, "12.34"), ("12.34", "12.34"), (#""-0.000001""#, "-0.000001"), (#""1e3""#, "1000"),
            (#""1E-3""#, "0.001"), ("7", "7"), (#""0""#, "0"),
            (#""-123456789012345.678901234567891""#, "-123456789012345.678901234567891"),
        ]
    )
    func readsBothForms(json: String, expected: String) throws {
        let event = try ChangeEvent<ScalarSample>(jsonData: Data(try Self.sample(amount: json).utf8))
        #expect(event.record?.amount == Decimal(string: expected)!)
    }

    @Test(
        "a string that is not exactly a JSON number is refused, naming the field",
        arguments: [
            #""12abc""#, #""""#, #"" 1""#, #""1 ""#, #""+1""#, #""01""#, #""1.""#, #"".5""#, #""1e""#, #""NaN""#,
            #""nan""#, #""Infinity""#, #""1_000""#, #""0x10""#, #""-""#, "true", #""1e999""#,
        ]
    )
    func refusesOtherStrings(json: String) {
        #expect {
            try ChangeEvent<ScalarSample>(jsonData: Data(try Self.sample(amount: json).utf8))
        } throws: { error in
            (error as? ChangeEventDecodingError)?.field == "amount"
        }
    }

    @Test("the tie rule orders a decimal by value whether it came as a number or a string")
    func tieAcrossForms() {
        let decimal = RecordSchema.FieldType.decimal
        #expect(decimal.precedes(.number("9.5", isInteger: false), .string("10.25")))
        #expect(decimal.precedes(.string("9.5"), .number("10.25", isInteger: false)))
        #expect(!decimal.precedes(.string("10.25"), .string("9.5")))
        #expect(
            decimal.precedes(.string("123456789012345.678901234567890"), .string("123456789012345.678901234567891"))
        )
    }

    @Test("JSON's number grammar, as the RisingWave view's pattern spells it")
    func grammar() {
        for valid in ["0", "-0", "12", "1.5", "-1.5e+3", "1E9", "0.000", "9" + String(repeating: "9", count: 60)] {
            #expect(ScalarType.isJSONNumber(valid), "\(valid)")
        }
        for invalid in ["", "-", "+1", "01", "1.", ".1", "1e", "1e+", "1.5.1", " 1", "1 ", "١", "1\u{0}"] {
            #expect(!ScalarType.isJSONNumber(invalid), "\(invalid.debugDescription)")
        }
    }

    /// A valid `ScalarSample` insert whose `amount` is the JSON text `amount`.
    static func sample(amount: String) throws -> String {
        let json = String(decoding: try ChangeEvent.insert(ScalarSample(id: 1), order: 1).jsonData(), as: UTF8.self)
        return json.replacingOccurrences(of: #""amount":"12.34""#, with: #""amount":\#(amount)"#)
    }
}
