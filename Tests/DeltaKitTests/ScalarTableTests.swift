import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

enum Color: String, Codable, Hashable, Sendable { case red, green }
enum Shade: Int8, Codable, CaseIterable, Sendable {
    case light = -1
    case dark = 0
}

struct Paint: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var color: Color
    var key: Int { id }
}

struct KeyReadsOtherField: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var parent: Int
    var key: Int { parent }
}

struct UUIDKeyed: ChangeRecord {
    static let keyField = "id"
    var id: UUID
    var name: String
    var key: UUID { id }
}

@Suite("One table of scalar types")
struct ScalarTableTests {
    @Test("every scalar kind, enums included, is discovered with its column type")
    func discovery() throws {
        let schema = try ScalarSample.schema
        let types = Dictionary(uniqueKeysWithValues: schema.fields.map { ($0.name, $0.type) })
        #expect(
            types == [
                "id": .int64, "label": .string, "score": .double, "ratio": .float, "amount": .decimal,
                "at": .timestamp, "token": .uuid, "status": .string, "tier": .int64, "flag": .bool, "small": .int32,
                "big": .int64, "link": .string,
            ]
        )
        #expect(schema.fields.filter(\.isOptional).map(\.name) == ["ratio", "big", "link"])
    }

    @Test("enums and URLs travel as their raw values and decode back")
    func enumWire() throws {
        let sample = ScalarSample(id: 5, status: .suspended, tier: .free)
        let json = String(decoding: try ChangeEvent.insert(sample, order: 1).jsonData(), as: UTF8.self)
        #expect(json.contains(#""status":"suspended""#))
        #expect(json.contains(#""tier":0"#))
        #expect(json.contains(#""link":"https://example.com/a?b=c""#))
        let decoded = try ChangeEvent<ScalarSample>(jsonData: Data(json.utf8))
        #expect(decoded.record?.status == .suspended)
        #expect(decoded.record?.tier == .free)
        #expect(decoded.record?.link == URL(string: "https://example.com/a?b=c"))
    }

    @Test("an enum that cannot list its values is refused with the fix")
    func nonCaseIterableEnum() {
        #expect {
            _ = try Paint.schema
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration && "\(error)".contains("'color'")
                && "\(error)".contains("CaseIterable")
        }
    }

    @Test("a key that reads another field than keyField is refused at discovery")
    func keyDisagreement() {
        #expect {
            _ = try KeyReadsOtherField.schema
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration && "\(error)".contains("disagrees")
                && "\(error)".contains("'id'")
        }
    }

    @Test(
        "a decimal's result text is read only when all of it is a number",
        arguments: [".050e", "12abc", "1.", "", " 1"]
    )
    func decimalTextIsWhole(text: String) throws {
        let scalar = try #require(ScalarType.of(Decimal.self))
        #expect(scalar.parseText(text) == nil)
        #expect(scalar.parseText("-0.050") as? Decimal == Decimal(string: "-0.05"))
    }

    @Test("every type's text form parses back to the same value (the key parameter a backend sends)")
    func textForms() throws {
        func roundTrip<T: Equatable>(_ value: T, _ expected: String) throws {
            let scalar = try #require(ScalarType.of(T.self))
            let text = try scalar.textForm(of: value, field: "f")
            #expect(text == expected)
            #expect(scalar.parseText(text) as? T == value)
        }
        try roundTrip("a\"b\\c\n🚀", "a\"b\\c\n🚀")
        try roundTrip(Int64.min, "-9223372036854775808")
        try roundTrip(UInt8(255), "255")
        try roundTrip(true, "true")
        try roundTrip(1.5e-7, "1.5e-07")
        try roundTrip(Decimal(string: "12.345")!, "12.345")
        try roundTrip(Date(timeIntervalSince1970: 1_714_566_645.123456), "2024-05-01T12:30:45.123456+00:00")
        try roundTrip(UUID(uuidString: "E621E1F8-C36C-495A-93FC-0C247A3E6E5F")!, "e621e1f8-c36c-495a-93fc-0c247a3e6e5f")
        try roundTrip(URL(string: "https://example.com/a?b=\"c\"")!, "https://example.com/a?b=%22c%22")
        try roundTrip(Shade.dark, "0")
        try roundTrip(Shade.light, "-1")
        #expect(throws: DeltaKitError.self) { try ScalarType.of(Double.self)!.textForm(of: Double.nan, field: "f") }
    }

    @Test("a UUID key is written the same way in an insert, a delete and a message key")
    func uuidKey() throws {
        let id = UUID(uuidString: "E621E1F8-C36C-495A-93FC-0C247A3E6E5F")!
        let insert = String(
            decoding: try ChangeEvent.insert(UUIDKeyed(id: id, name: "n"), order: 1).jsonData(),
            as: UTF8.self
        )
        let delete = String(decoding: try ChangeEvent<UUIDKeyed>.delete(key: id, order: 2).jsonData(), as: UTF8.self)
        #expect(insert.hasPrefix(#"{"id":"e621e1f8-c36c-495a-93fc-0c247a3e6e5f""#))
        #expect(delete.hasPrefix(#"{"id":"e621e1f8-c36c-495a-93fc-0c247a3e6e5f""#))
        #expect(
            try ChangeEvent<UUIDKeyed>.delete(key: id, order: 2).keyBytes
                == Array(#""e621e1f8-c36c-495a-93fc-0c247a3e6e5f""#.utf8)
        )
    }

    @Test("an unsigned value above BIGINT is refused when encoding and when decoding")
    func unsignedRange() throws {
        let event = ChangeEvent.insert(ScalarSample(id: 1, big: .max), order: 1)
        #expect {
            try event.validate()
        } throws: { error in
            (error as? DeltaKitError)?.code == .serializationFailed && "\(error)".contains("'big'")
        }
        var json = String(
            decoding: try ChangeEvent.insert(ScalarSample(id: 1, big: 7), order: 1).jsonData(),
            as: UTF8.self
        )
        json = json.replacingOccurrences(of: #""big":7"#, with: #""big":18446744073709551615"#)
        #expect(throws: ChangeEventDecodingError.self) { try ChangeEvent<ScalarSample>(jsonData: Data(json.utf8)) }
    }
}

@Suite("One meaning of a valid event")
struct ValidityTests {
    @Test("canonicalized() is what a consumer reads back: dates truncated to microseconds")
    func canonical() throws {
        let event = ChangeEvent.insert(ScalarSample(id: 1, at: Date(timeIntervalSince1970: 1.0000004)), order: 1)
        let canonical = try event.canonicalized()
        #expect(canonical != event)
        #expect(canonical.record?.at == Date(timeIntervalSince1970: 1.0))
        #expect(try ChangeEvent<ScalarSample>(jsonData: try event.jsonData()) == canonical)
        #expect(try canonical.canonicalized() == canonical)
    }

    @Test("the in-memory store refuses an invalid event with the sink's error and keeps its state")
    func storeRefusesInvalid() async throws {
        let store = try InMemoryStateStore<ScalarSample>()
        try await store.apply(.insert(ScalarSample(id: 1), order: 1))
        for bad in [
            ScalarSample(id: 1, score: .nan), ScalarSample(id: 1, ratio: -.infinity), ScalarSample(id: 1, big: .max),
        ] {
            await #expect {
                try await store.apply(.update(bad, order: 2))
            } throws: { error in
                (error as? DeltaKitError)?.code == .serializationFailed
            }
        }
        #expect(try await store.value(forKey: 1) == ScalarSample(id: 1).canonicalRecord)
        #expect(try await store.history(limit: 10).count == 1)
    }

    @Test("the in-memory store and the in-memory sink hold records exactly as Kafka gives them back")
    func storeCanonical() async throws {
        let store = try InMemoryStateStore<ScalarSample>()
        let sink = InMemoryEventSink<ScalarSample>()
        let event = ChangeEvent.insert(ScalarSample(id: 1, at: Date(timeIntervalSince1970: 5.1234567)), order: 1)
        try await store.apply(event)
        try await sink.send(event)
        let expected = try event.canonicalized()
        #expect(try await store.value(forKey: 1) == expected.record)
        #expect(sink.events == [expected])
    }

    @Test("negative limits and sizes are configuration errors, not traps")
    func negativeLimits() async throws {
        #expect {
            _ = try InMemoryStateStore<DemoUser>(historyLimit: -1)
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration && "\(error)".contains("historyLimit")
                && "\(error)".contains("-1")
        }
        #expect(throws: DeltaKitError.self) { try InMemoryStateStore<DemoUser>(changeBufferLimit: 0) }
        let store = try InMemoryStateStore<DemoUser>()
        await #expect {
            _ = try await store.history(limit: -1)
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration && "\(error)".contains("-1")
        }
    }
}

extension ScalarSample {
    var canonicalRecord: ScalarSample? { try? ChangeEvent.insert(self, order: 1).canonicalized().record }
}
