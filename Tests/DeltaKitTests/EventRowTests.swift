import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKit

/// Event rows: the schema-compiled wire decoder accepts only what the `Codable` path accepts and decodes it to the
/// same (canonical) event, and the in-memory store's row core merges exactly as ``LatestState`` does, ties included.
@Suite("Event rows")
struct EventRowTests {
    struct Rich: ChangeRecord {
        enum Tier: String, Codable, Hashable, Sendable, CaseIterable { case free, paid }
        enum Level: Int16, Codable, Hashable, Sendable, CaseIterable { case low = 1, high = 300 }
        static let keyField = "id"
        var id: Int64
        var small: Int8
        var unsigned: UInt32
        var wide: UInt64?
        var flag: Bool
        var text: String
        var ratio: Double
        var single: Float?
        var at: Date?
        var uid: UUID?
        var tier: Tier?
        var level: Level?
        var amount: Decimal?
        var link: URL?
        var key: Int64 { id }
    }

    static let envelope = #""op":"insert","event_order":7,"ts":"2024-01-01T00:00:00.000001+00:00""#
    static let base = #""small":1,"unsigned":1,"flag":true,"text":"x","ratio":2"#

    static let inputs: [String] =
        WireFastPathTests.inputs + [
            #"{"id":1,\#(base),\#(envelope)}"#,
            #"{"id":1,\#(base),"wide":9223372036854775807,\#(envelope)}"#,
            #"{"id":1,\#(base),"wide":9223372036854775808,\#(envelope)}"#,
            #"{"id":1,\#(base),"single":0.1,"at":"1700-01-01T00:00:00.1234567Z",\#(envelope)}"#,
            #"{"id":1,\#(base),"single":1e39,\#(envelope)}"#,
            #"{"id":1,\#(base),"uid":"0123ABCD-89ab-cdef-0123-456789abcdef",\#(envelope)}"#,
            #"{"id":1,\#(base),"uid":"0123ABCD89ab-cdef-0123-456789abcdef0",\#(envelope)}"#,
            #"{"id":1,\#(base),"tier":"paid","level":300,\#(envelope)}"#,
            #"{"id":1,\#(base),"tier":"Paid",\#(envelope)}"#,
            #"{"id":1,\#(base),"level":2,\#(envelope)}"#,
            #"{"id":1,\#(base),"amount":12.50,"link":"https://example.com/a",\#(envelope)}"#,
            #"{"id":1,\#(base),"amount":"12.5",\#(envelope)}"#,
            // Escapes and non-ASCII, in values and names.
            #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"a\"b\u00e9\ud83d\ude80","ratio":2,\#(envelope)}"#,
            #"{"id":1,"small":1,"unsigned":1,"flag":true,"text":"\ud83d","ratio":2,\#(envelope)}"#,
            #"{"\u0069d":1,\#(base),\#(envelope)}"#,
            #"{"id":1,\#(base),"op":"\u0069nsert","event_order":7,"ts":"2024-01-01T00:00:00Z"}"#,
            // Names not in the schema: ignored once each, refused twice.
            #"{"id":1,\#(base),"extra":[1,2],"more":"é",\#(envelope)}"#,
            #"{"id":1,\#(base),"extra":1,"extra":2,\#(envelope)}"#,
            #"{"id":1,\#(base),"id":2,\#(envelope)}"#,
            #"{"id":1,\#(base),"ts":"2024-01-01T00:00:00Z",\#(envelope)}"#,
            // Whitespace and syntax.
            " {\n\"id\" : 1 ,\t\(base) , \(envelope) } \n",
            #"{"id":1,\#(base),\#(envelope)} x"#,
            #"{"id":01,\#(base),\#(envelope)}"#,
            #"{"id":1,\#(base),\#(envelope),}"#,
            #"{"id":3,"op":"delete","event_order":8,"ts":"2024-01-01T00:00:00Z","more":null}"#,
        ]

    /// Decodes `bytes` both ways — the one-pass row decoder (with the slow path behind it) and the `Codable` path —
    /// and records an issue unless they agree: the same canonical event, or the same error. Returns whether the
    /// one-pass decoder took the event itself and whether the `Codable` path accepted it.
    @discardableResult
    static func pathsAgree(_ bytes: [UInt8], layout: RowLayout) throws -> (fast: Bool, accepted: Bool) {
        let shown = String(decoding: bytes, as: UTF8.self)
        return try bytes.withUnsafeBytes { raw in
            let codable = Result { try ChangeEvent<Rich>.decodeWire(raw, schema: try Rich.schema) }
            var rows = layout.makeRows()
            let fast = layout.decode(raw, into: &rows)
            if fast {
                let event = try codable.get()
                #expect(try ChangeEvent<Rich>(row: 0, of: rows, layout: layout) == event.canonicalized(), "\(shown)")
            }
            // With the slow path behind it: the same outcome, the same error.
            var all = layout.makeRows()
            let rowOutcome = Result { try layout.appendRow(decoding: raw, Rich.self, into: &all) }
            switch (codable, rowOutcome) {
            case (.success(let event), .success):
                #expect(try ChangeEvent<Rich>(row: 0, of: all, layout: layout) == event.canonicalized(), "\(shown)")
            case (.failure(let expected), .failure(let error)):
                #expect("\(error)" == "\(expected)", "\(shown)")
            default:
                Issue.record("\(shown): Codable: \(codable), rows: \(rowOutcome)")
            }
            if case .success = codable { return (fast, true) }
            return (fast, false)
        }
    }

    @Test("the row decoder accepts what the Codable path accepts, as the same canonical event", arguments: inputs)
    func decoderAgrees(text: String) throws {
        try Self.pathsAgree(Array(text.utf8), layout: try #require(RowLayout.of(Rich.self)))
    }

    @Test("strings read eight bytes at a time end, escape and refuse where the Codable path does, at any position")
    func stringsAtEveryPosition() throws {
        let layout = try #require(RowLayout.of(Rich.self))
        // Each special byte sequence at each position of texts up to three words long.
        let specials: [[UInt8]] = [
            Array(#"\""#.utf8), Array(#"\\"#.utf8), Array(#"\u00e9"#.utf8), [0x0A], [0x1F], [0x7F], [0xC3, 0xA9],
            [0xFF], [0xE2, 0x82], [0x22],
        ]
        var decodedFast = 0
        for length in 0...24 {
            for position in 0...length {
                for special in specials {
                    var text = Array(repeating: UInt8(ascii: "a"), count: length)
                    text.insert(contentsOf: special, at: position)
                    let bytes =
                        Array(#"{"id":1,"small":1,"unsigned":1,"flag":true,"text":""#.utf8) + text
                        + Array(#"","ratio":2,\#(Self.envelope)}"#.utf8)
                    if try Self.pathsAgree(bytes, layout: layout).fast { decodedFast += 1 }
                }
            }
        }
        #expect(decodedFast > 0, "the one-pass decoder read some")
    }

    @Test("integers read eight digits at a time equal the Codable path's, at every length, sign and stray byte")
    func integersAtEveryLength() throws {
        let layout = try #require(RowLayout.of(Rich.self))
        var generator = SystemRandomNumberGenerator()
        var numbers: [String] = ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "-0", "00"]
        for length in 1...21 {
            for _ in 0..<6 {
                var digits = (0..<length).map { _ in Character(String(Int.random(in: 0...9, using: &generator))) }
                if length > 1, digits[0] == "0" { digits[0] = "1" }
                numbers.append(String(digits))
                numbers.append("-" + String(digits))
                // A stray byte at any position: a letter, a point, an exponent, a byte above 0xF9.
                var stray = digits
                stray[Int.random(in: 0..<length, using: &generator)] = ["a", ".", "e", "/", ":", "ÿ"].randomElement()!
                numbers.append(String(stray))
            }
        }
        var decodedFast = 0
        for number in numbers {
            for text in [
                #"{"id":\#(number),\#(Self.base),"op":"insert","event_order":1,"ts":"2024-01-01T00:00:00Z"}"#,
                #"{"id":1,\#(Self.base),"op":"insert","event_order":\#(number),"ts":"2024-01-01T00:00:00Z"}"#,
            ] {
                let (fast, accepted) = try Self.pathsAgree(Array(text.utf8), layout: layout)
                if fast {
                    decodedFast += 1
                } else if accepted, !number.hasPrefix("-0"), !number.hasPrefix("0") {
                    Issue.record("an integer the one-pass decoder should read: \(text)")
                }
            }
        }
        #expect(decodedFast > numbers.count, "the one-pass decoder read most")
    }

    @Test("plain events take the one-pass decoder")
    func plainEventsAreFast() throws {
        let layout = try #require(RowLayout.of(Rich.self))
        for text in Self.inputs.prefix(4) + [Self.inputs[WireFastPathTests.inputs.count]] {
            var rows = layout.makeRows()
            let decoded = Array(text.utf8).withUnsafeBytes { layout.decode($0, into: &rows) }
            #expect(decoded, "\(text)")
        }
        let demo = try #require(RowLayout.of(DemoUser.self))
        var rows = demo.makeRows()
        let event = ChangeEvent.insert(DemoUser(id: 7, name: "Ada", age: 36), order: 1)
        #expect(try event.jsonData().withUnsafeBytes { demo.decode($0, into: &rows) })
        #expect(rows.values == [.integer(7), .string("Ada"), .integer(36)])
    }

    /// A record whose `init(from:)` changes what it reads: rows could not stand for its values.
    struct Normalizing: ChangeRecord {
        static let keyField = "id"
        var id: Int
        var name: String
        var key: Int { id }
        init(id: Int, name: String) {
            self.id = id
            self.name = name
        }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decode(Int.self, forKey: .id)
            name = try container.decode(String.self, forKey: .name).lowercased()
        }
    }

    /// A record with a declared schema that differs from what discovery finds.
    struct Declared: ChangeRecord {
        static let keyField = "id"
        var id: Int
        var name: String
        var key: Int { id }
        static var schema: RecordSchema {
            get throws { try RecordSchema(keyField: "id", fields: [.init(name: "id", type: .int64)]) }
        }
    }

    @Test(
        "a record whose Codable conformance is not faithful, or whose schema is declared otherwise, keeps typed events"
    )
    func layoutOnlyWhenFaithful() async throws {
        #expect(RowLayout.of(DemoUser.self) != nil)
        #expect(RowLayout.of(Normalizing.self) == nil)
        #expect(RowLayout.of(Declared.self) == nil)
        let store = try InMemoryStateStore<Normalizing>()
        try await store.apply(.insert(Normalizing(id: 1, name: "x"), order: 1))
        #expect(try await store.value(forKey: 1)?.name == "x")
    }

    /// Random events over few keys, orders, timestamps and values, so that ties of every step of the rule occur.
    static func randomEvents(seed: UInt64, count: Int) -> [ChangeEvent<Rich>] {
        var random = SeededRandomNumberGenerator(seed: seed)
        let texts = ["a", "b", "é", "e\u{301}", "a longer text than fifteen bytes"]
        let stamps = [0, 1, 2].map { Date(timeIntervalSince1970: 1_700_000_000 + Double($0) / 1_000) }
        return (0..<count).map { _ in
            let id = Int64.random(in: 1...4, using: &random)
            let order = Int64.random(in: 1...4, using: &random)
            let timestamp = stamps.randomElement(using: &random)!
            if Int.random(in: 0..<5, using: &random) == 0 {
                return .delete(key: id, order: order, timestamp: timestamp)
            }
            let record = Rich(
                id: id,
                small: Int8.random(in: -1...1, using: &random),
                unsigned: 1,
                wide: Bool.random(using: &random) ? nil : 5,
                flag: Bool.random(using: &random),
                text: texts.randomElement(using: &random)!,
                ratio: [-0.0, 0.0, 0.5].randomElement(using: &random)!,
                single: Bool.random(using: &random) ? 0.1 : nil,
                at: Bool.random(using: &random) ? stamps[1] : nil,
                uid: Bool.random(using: &random)
                    ? UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)) : nil,
                tier: [nil, .free, .paid].randomElement(using: &random)!,
                level: [nil, .low, .high].randomElement(using: &random)!,
                amount: [nil, Decimal(string: "1.5"), Decimal(string: "1.50"), Decimal(2)].randomElement(
                    using: &random
                )!,
                link: nil
            )
            return Bool.random(using: &random)
                ? .insert(record, order: order, timestamp: timestamp)
                : .update(record, order: order, timestamp: timestamp)
        }
    }

    @Test("the row core merges as LatestState does: the same changes, the same state", arguments: 0..<20)
    func rowCoreAgreesWithReference(seed: UInt64) async throws {
        let store = try InMemoryStateStore<Rich>(historyLimit: 5)
        #expect(store.rowLayout != nil)
        var reference = LatestState<Rich>()
        var history: [ChangeEvent<Rich>] = []
        for event in Self.randomEvents(seed: seed, count: 300) {
            let canonical = try event.canonicalized()
            let expected = reference.apply(canonical)
            #expect(try store.applyNow(event) == expected, "\(event)")
            history.append(canonical)
        }
        #expect(try await store.snapshot() == reference.snapshot())
        #expect(try await store.count() == reference.liveCount)
        #expect(store.tombstoneCount == reference.tombstoneCount)
        #expect(store.maxOrder == reference.maxOrder)
        for key in Int64(0)...5 {
            #expect(try await store.value(forKey: key) == reference.value(forKey: key))
        }
        let newest = history.enumerated().sorted { ($0.element.order, $0.offset) > ($1.element.order, $1.offset) }
        #expect(try await store.history(limit: 5).map(\.order) == newest.prefix(5).map(\.element.order))
    }

    @Test("rows applied in a batch give what typed events give")
    func rowsAgreeWithTypedEvents() async throws {
        let events = Self.randomEvents(seed: 99, count: 500)
        let layout = try #require(RowLayout.of(Rich.self))
        var rows = layout.makeRows()
        for event in events {
            try event.jsonData().withUnsafeBytes { try layout.appendRow(decoding: $0, Rich.self, into: &rows) }
        }
        let byRows = try InMemoryStateStore<Rich>()
        byRows.apply(rows: rows, 0..<rows.count)
        let typed = try InMemoryStateStore<Rich>()
        try await typed.apply(contentsOf: events)
        var reference = LatestState<Rich>()
        for event in events { reference.apply(try event.canonicalized()) }
        #expect(try await byRows.snapshot() == reference.snapshot())
        #expect(try await typed.snapshot() == reference.snapshot())
    }
}
