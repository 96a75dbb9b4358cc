import DeltaKit
import Foundation
import Testing

/// Records whose `encode(to:)` is not the synthesized one: the schema-driven writer takes its prepared names only
/// while a record writes its schema's fields in order, and writes exactly what the general path writes otherwise.
struct Reordered: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String
    var age: Int
    var key: Int { id }

    private enum CodingKeys: String, CodingKey { case id, name, age }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(age, forKey: .age)
        try container.encode(name, forKey: .name)
        try container.encode(id, forKey: .id)
    }
}

/// Leaves out `nickname` when it is `nil` (`encodeIfPresent` would write `null`).
struct Skipping: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var nickname: String?
    var age: Int
    var key: Int { id }

    private enum CodingKeys: String, CodingKey { case id, nickname, age }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        if let nickname { try container.encode(nickname, forKey: .nickname) }
        try container.encode(age, forKey: .age)
    }
}

/// Names that need escaping, and a key that is not the first field.
struct Quoted: ChangeRecord {
    static let keyField = "k\u{e9}y"
    var value: Double
    var key: String

    private enum CodingKeys: String, CodingKey {
        case value = "va\"lue"
        case key = "k\u{e9}y"
    }
}

@Suite("The schema-driven wire writer")
struct WireWriterTests {
    static let ts = Date(timeIntervalSince1970: 1_714_566_645.123456)
    static let tsText = "2024-05-01T12:30:45.123456+00:00"

    func json(_ event: ChangeEvent<some ChangeRecord>) throws -> String {
        String(decoding: try event.jsonData(), as: UTF8.self)
    }

    @Test("a record that writes its fields out of its schema's order is written in its own order")
    func outOfOrder() throws {
        let event = ChangeEvent.insert(Reordered(id: 1, name: "A", age: 25), order: 7, timestamp: Self.ts)
        #expect(
            try json(event)
                == #"{"age":25,"name":"A","id":1,"op":"insert","event_order":7,"ts":"\#(Self.tsText)"}"#
        )
        let delete = ChangeEvent<Reordered>.delete(key: 1, order: 8, timestamp: Self.ts)
        #expect(
            try json(delete)
                == #"{"id":1,"name":null,"age":null,"op":"delete","event_order":8,"ts":"\#(Self.tsText)"}"#
        )
    }

    @Test("a record that leaves a field out gets it as null, after the fields it wrote")
    func skippedField() throws {
        let skipping = ChangeEvent.update(Skipping(id: 2, nickname: nil, age: 3), order: 9, timestamp: Self.ts)
        #expect(
            try json(skipping)
                == #"{"id":2,"age":3,"nickname":null,"op":"update","event_order":9,"ts":"\#(Self.tsText)"}"#
        )
        let full = ChangeEvent.update(Skipping(id: 2, nickname: "Bo", age: 3), order: 9, timestamp: Self.ts)
        #expect(
            try json(full)
                == #"{"id":2,"nickname":"Bo","age":3,"op":"update","event_order":9,"ts":"\#(Self.tsText)"}"#
        )
    }

    @Test("names are escaped as the general path escapes them; the key of a delete comes first")
    func escapedNames() throws {
        let insert = ChangeEvent.insert(Quoted(value: 1.5, key: "x\"y"), order: 1, timestamp: Self.ts)
        #expect(
            try json(insert)
                == #"{"va\"lue":1.5,"kéy":"x\"y","op":"insert","event_order":1,"ts":"\#(Self.tsText)"}"#
        )
        let delete = ChangeEvent<Quoted>.delete(key: "x", order: 2, timestamp: Self.ts)
        #expect(
            try json(delete) == #"{"kéy":"x","va\"lue":null,"op":"delete","event_order":2,"ts":"\#(Self.tsText)"}"#
        )
        #expect(try ChangeEvent<Quoted>(jsonData: insert.jsonData()) == insert)
    }

    @Test("timestamps outside years 0…9999 keep their sign and digits")
    func wideYears() throws {
        for (seconds, text) in [
            (-62_167_219_200.0, "0000-01-01T00:00:00.000000+00:00"),
            (253_402_300_799.5, "9999-12-31T23:59:59.500000+00:00"),
            (253_402_300_800.0, "10000-01-01T00:00:00.000000+00:00"),
            (-62_167_219_200.5, "-0001-12-31T23:59:59.500000+00:00"),
        ] {
            #expect(EventTimestamp.format(Date(timeIntervalSince1970: seconds)) == text)
        }
    }
}
