import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

/// The wire decoder is DeltaKit's own (no JSONDecoder): it must accept exactly JSON, and exactly what a column
/// can hold.
@Suite("Wire decoder")
struct WireDecoderTests {
    static let base =
        #"{"id":1,"name":"Alice","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00.000001+00:00"}"#

    func decode(_ text: String) throws -> ChangeEvent<DemoUser> {
        try ChangeEvent<DemoUser>(jsonData: Array(text.utf8))
    }

    @Test(
        "JSON that is not valid is refused with the offending input",
        arguments: [
            #"{"id":1,}"#, #"{"id":01,"name":"A","age":1,"op":"insert","event_order":1,"ts":"2024-01-01T00:00:00Z"}"#,
            #"{"id":1 "name":"A"}"#, "{'id':1}", #"{"id":NaN}"#, #"{"id":1}x"#, #"{"name":"\x"}"#,
            #"{"name":"\ud800"}"#,
            #"{"a":[1,]}"#, #"{"a":{"b":1,}}"#, #"{"a":[1 2]}"#, #"{"a":-}"#, #"{"a":1.}"#, #"{"a":1e}"#,
            "{\"a\":\"\u{1}\"}",
            String(repeating: "[", count: 70),
        ]
    )
    func invalidJSON(text: String) {
        // Stricter than Foundation on Linux, which accepts trailing commas: RFC 8259 does not.
        let error = #expect(throws: ChangeEventDecodingError.self) { try decode(text) }
        #expect(error?.value != nil, "the message quotes the input")
    }

    @Test("invalid UTF-8 in a string is refused")
    func invalidUTF8() {
        var bytes = Array(Self.base.utf8)
        let at = bytes.firstIndex(of: UInt8(ascii: "A"))!
        bytes[at] = 0xFF
        #expect(throws: ChangeEventDecodingError.self) { try ChangeEvent<DemoUser>(jsonData: bytes) }
    }

    @Test("escapes, surrogate pairs, whitespace, unknown and nested extra fields are read like JSONSerialization")
    func lenientWhereJSONIs() throws {
        let text = """
             { "id" : 1 , "name" : "Al\\u00e9 \\ud83d\\ude80 \\"q\\" \\\\ \\/ \\n", "extra": {"deep": [1, {"x": [true, null]}], "s": "}"},
              "age":25,"op":"update","event_order":7,"ts":"2024-01-01T00:00:00Z", "more": [] }\t
            """
        let event = try decode(text)
        let reference = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        #expect(event.record?.name == reference["name"] as? String)
        #expect(event.record?.name == "Alé 🚀 \"q\" \\ / \n")
        #expect(event.operation == .update)
    }

    @Test(
        "a value its column cannot hold is refused, naming the field",
        arguments: [
            ("age", "25.0"), ("age", "2.5e1"), ("age", "\"25\""), ("age", "true"), ("age", "99999999999999999999"),
            ("age", "[25]"), ("name", "5"), ("name", "{\"first\":\"A\"}"), ("id", "\"1\""), ("event_order", "7.5"),
            ("ts", "1704067200"),
        ]
    )
    func strictTypes(field: String, value: String) throws {
        let original = try #require(Self.base.firstRange(of: try Regex("\"\(field)\":(\"[^\"]*\"|[0-9]+)")))
        let text = Self.base.replacingCharacters(in: original, with: "\"\(field)\":\(value)")
        #expect(text != Self.base)
        let error = #expect(throws: ChangeEventDecodingError.self) { try decode(text) }
        #expect(error?.field == field, "\(String(describing: error))")
    }

    @Test("a float column takes any finite JSON number and refuses one that overflows")
    func floats() throws {
        let ok = try ChangeEvent<ScalarSample>(
            jsonData: try ChangeEvent.insert(ScalarSample(id: 1), order: 1).jsonData()
        )
        var text = String(decoding: try ok.jsonData(), as: UTF8.self)
        text = text.replacingOccurrences(of: #""score":1.5"#, with: #""score":2"#)
        #expect(try ChangeEvent<ScalarSample>(jsonData: Array(text.utf8)).record?.score == 2)
        text = text.replacingOccurrences(of: #""score":2"#, with: #""score":1e400"#)
        #expect(throws: ChangeEventDecodingError.self) { try ChangeEvent<ScalarSample>(jsonData: Array(text.utf8)) }
    }

    @Test("fuzz finding: an ignored field may hold any valid JSON number, even one beyond a Double (like RisingWave)")
    func hugeNumberInIgnoredField() throws {
        let text = Self.base.replacingOccurrences(of: #""age":25"#, with: #""age":25,"3core":1.5e713"#)
        #expect(try decode(text).record?.age == 25)
    }

    /// Objects with a name twice (were the last one to win, a message keyed `1` could rewrite user 2 and a doubled
    /// `event_order` would apply with the larger one), and the name at fault.
    static let repeatedNames: [(text: String, field: String)] = [
        (
            #"{"id":1,"name":"EVIL","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z","id":2}"#,
            "id"
        ),
        (
            #"{"id":1,"name":"A","age":25,"op":"update","event_order":7,"ts":"2024-01-01T00:00:00Z","event_order":9223372036854775807}"#,
            "event_order"
        ),
        (
            #"{"id":1,"name":"A","age":25,"op":"insert","op":"delete","event_order":7,"ts":"2024-01-01T00:00:00Z"}"#,
            "op"
        ),
        (
            #"{"id":1,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z","ts":"2030-01-01T00:00:00Z"}"#,
            "ts"
        ),
        (
            #"{"id":1,"name":"Alice","name":"EVIL","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z"}"#,
            "name"
        ),
        // The same value twice, and a name the record does not have: still one meaning too many.
        (#"{"id":1,"id":1,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z"}"#, "id"),
        (#"{"id":1,"x":1,"name":"A","age":25,"x":[2],"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z"}"#, "x"),
        // Spelled differently: whitespace around the name, escapes in it (compared after decoding).
        (
            #"{ "id" : 1 ,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z",  "id"  :2 }"#,
            "id"
        ),
        (#"{"id":1,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z","id":2}"#, "id"),
        (#"{"id":1,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z","id":2}"#, "id"),
        (
            #"{"id":1,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z","event_order":8}"#,
            "event_order"
        ),
        (
            #"{"id":1,"name":"A","age":25,"op":"insert","op":"delete","event_order":7,"ts":"2024-01-01T00:00:00Z"}"#,
            "op"
        ),
        // A delete with its key twice.
        (#"{"id":1,"op":"delete","event_order":7,"ts":"2024-01-01T00:00:00Z","id":2}"#, "id"),
        // Wider than the linear scan: the set path.
        (
            "{" + (0..<20).map { #""x\#($0)":\#($0),"# }.joined()
                + #""id":1,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z","id":2}"#,
            "id"
        ),
        ("{" + (0..<20).map { #""x\#($0)":\#($0),"# }.joined() + #""x3":1}"#, "x3"),
    ]

    @Test(
        "a name that appears twice is refused and named, however it is spelled",
        arguments: Self.repeatedNames.indices
    )
    func repeatedName(case index: Int) {
        let (text, field) = Self.repeatedNames[index]
        let error = #expect(throws: ChangeEventDecodingError.self) { try decode(text) }
        #expect(error?.field == field, "\(text)")
        #expect(error?.reason.contains("appears twice") == true)
    }

    @Test("an object whose names are unique is read, escaped names included")
    func uniqueNames() throws {
        let text =
            #"{"id":1,"name":"A","age":25,"op":"insert","event_order":7,"ts":"2024-01-01T00:00:00Z","x":{"x":1}}"#
        #expect(
            try decode(text)
                == .insert(
                    DemoUser(id: 1, name: "A", age: 25),
                    order: 7,
                    timestamp: Date(timeIntervalSince1970: 1_704_067_200)
                )
        )
    }

    @Test("every seeded event and every scalar kind round-trips byte for byte")
    func roundTrip() throws {
        var generator = DemoEventGenerator(seed: 99, users: 50)
        for event in generator.next(2_000) {
            let bytes = try event.jsonData()
            let decoded = try ChangeEvent<DemoUser>(jsonData: bytes)
            #expect(decoded == event)
            #expect(try decoded.jsonData() == bytes)
        }
        let sample = ChangeEvent.update(ScalarSample(id: 3, ratio: nil, status: .suspended, big: nil), order: 5)
        let decoded = try ChangeEvent<ScalarSample>(jsonData: try sample.jsonData())
        #expect(decoded == (try sample.canonicalized()))
        #expect(try decoded.jsonData() == (try sample.jsonData()))
    }
}
