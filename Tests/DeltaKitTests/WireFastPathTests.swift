import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKit

/// The wire decoder reads a valid event through a fast path (envelope and common scalars read from the tokens) and
/// falls back to the `Codable` path for everything else; both must accept exactly the same events and agree on
/// them (the `EventDecoder` fuzz target checks the same on random inputs).
@Suite("Wire decoder fast path")
struct WireFastPathTests {
    /// A record with every fast-path type and a few that take the table's path.
    struct Wide: ChangeRecord {
        static let keyField = "id"
        var id: Int64
        var small: Int8
        var unsigned: UInt32
        var flag: Bool
        var text: String
        var ratio: Double
        var at: Date?
        var key: Int64 { id }
    }

    static let envelope = #""op":"insert","event_order":7,"ts":"2024-01-01T00:00:00.000001+00:00""#

    static let inputs: [String] = [
        #"{"id":1,"small":-128,"unsigned":4294967295,"flag":true,"text":"a","ratio":0.5,"at":null,\#(envelope)}"#,
        #"{"id":-0,"small":0,"unsigned":-0,"flag":false,"text":"é🚀","ratio":1,"at":"2024-01-01T00:00:00Z",\#(envelope)}"#,
        #"{"id":9223372036854775807,"small":127,"unsigned":0,"flag":true,"text":"","ratio":-1e3,\#(envelope)}"#,
        #"{"id":-9223372036854775808,"small":1,"unsigned":1,"flag":true,"text":"\n","ratio":2,\#(envelope)}"#,
        // Values the fast path must leave to the table, which refuses them.
        #"{"id":9223372036854775808,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,\#(envelope)}"#,
        #"{"id":1,"small":128,"unsigned":1,"flag":true,"text":"x","ratio":2,\#(envelope)}"#,
        #"{"id":1,"small":1,"unsigned":-1,"flag":true,"text":"x","ratio":2,\#(envelope)}"#,
        #"{"id":1,"small":1,"unsigned":4294967296,"flag":true,"text":"x","ratio":2,\#(envelope)}"#,
        #"{"id":1.0,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,\#(envelope)}"#,
        #"{"id":"1","small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,\#(envelope)}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":1,"text":"x","ratio":2,\#(envelope)}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":5,"ratio":2,\#(envelope)}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":null,"ratio":2,\#(envelope)}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"ratio":2,\#(envelope)}"#,
        // The envelope.
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,"op":"upsert","event_order":7,"ts":"2024-01-01T00:00:00Z"}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,"op":"insert","event_order":7.0,"ts":"2024-01-01T00:00:00Z"}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,"op":"insert","event_order":99999999999999999999,"ts":"2024-01-01T00:00:00Z"}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,"op":"insert","event_order":7,"ts":"yesterday"}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,"op":"insert","event_order":7}"#,
        #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"x","ratio":2,"op":null,"event_order":7,"ts":"2024-01-01T00:00:00Z"}"#,
        // Deletes.
        #"{"id":3,"small":null,"unsigned":null,"flag":null,"text":null,"ratio":null,"at":null,"op":"delete","event_order":8,"ts":"2024-01-01T00:00:00Z"}"#,
        #"{"id":3,"op":"delete","event_order":8,"ts":"2024-01-01T00:00:00Z"}"#,
        #"{"id":3,"text":"x","op":"delete","event_order":8,"ts":"2024-01-01T00:00:00Z"}"#,
        #"{"id":null,"op":"delete","event_order":8,"ts":"2024-01-01T00:00:00Z"}"#,
        #"{"id":3.5,"op":"delete","event_order":8,"ts":"2024-01-01T00:00:00Z"}"#,
    ]

    @Test("the fast path and the Codable path accept the same events and decode them equally", arguments: inputs)
    func pathsAgree(text: String) throws {
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBytes { raw in
            let decoder = WireDecoder(fields: WireFields(try FlatJSONReader.fields(of: raw)), bytes: raw)
            let fast = ChangeEvent<Wide>.decodeValid(decoder, schema: try Wide.schema)
            let general = try? ChangeEvent<Wide>.decodeGeneral(decoder)
            #expect(fast == general, "\(text)")
        }
    }

    @Test(
        "a repeated name is refused on the fast path and on the Codable path alike",
        arguments: WireDecoderTests.repeatedNames.indices
    )
    func repeatedNameOnBothPaths(case index: Int) throws {
        let (text, field) = WireDecoderTests.repeatedNames[index]
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            // With the schema the fast path runs first; without it only the Codable path can decode.
            let fast = #expect(throws: ChangeEventDecodingError.self) {
                try ChangeEvent<DemoUser>.decodeWire(raw, schema: try DemoUser.schema)
            }
            let general = #expect(throws: ChangeEventDecodingError.self) {
                try ChangeEvent<DemoUser>.decodeWire(raw, schema: nil)
            }
            #expect(fast == general)
            #expect(fast?.field == field, "\(text)")
        }
    }

    @Test("the fast path takes the common events (not only the fallback)")
    func fastPathIsTaken() throws {
        for text in Self.inputs.prefix(4) {
            let bytes = Array(text.utf8)
            try bytes.withUnsafeBytes { raw in
                let decoder = WireDecoder(fields: WireFields(try FlatJSONReader.fields(of: raw)), bytes: raw)
                #expect(ChangeEvent<Wide>.decodeValid(decoder, schema: try Wide.schema) != nil, "\(text)")
            }
        }
    }

    @Test("an object with more fields than the scan threshold is looked up through its index")
    func manyFields() throws {
        let extra = (0..<(WireFields.indexThreshold + 4)).map { #""x\#($0)":\#($0)"# }.joined(separator: ",")
        let text =
            #"{\#(extra),"id":1,"name":"A","age":2,"op":"insert","event_order":1,"ts":"2024-01-01T00:00:00Z"}"#
        let event = try ChangeEvent<DemoUser>(jsonData: Array(text.utf8))
        #expect(event.record == DemoUser(id: 1, name: "A", age: 2))
    }

    @Test("integers read in place equal Int64's parser, overflow included")
    func integers() {
        for text in [
            "0", "-0", "7", "-7", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
            "-9223372036854775809", "12345678901234567890123",
        ] {
            let bytes = Array(text.utf8)
            let inPlace = bytes.withUnsafeBytes { FlatJSONReader.integer(0..<bytes.count, in: $0) }
            #expect(inPlace == Int64(text), "\(text)")
        }
    }
}
