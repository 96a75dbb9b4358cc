import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

struct Order: ChangeRecord {
    static let keyField = "order_id"
    var order_id: String
    var amount: Double
    var paid: Bool
    var note: String?
    var placedAt: Date
    var quantity: Int32?
    var key: String { order_id }
}

struct Nested: ChangeRecord {
    struct Address: Codable, Hashable, Sendable { var city: String }
    static let keyField = "id"
    var id: Int
    var address: Address
    var key: Int { id }
}

struct WrongKey: ChangeRecord {
    static let keyField = "userId"
    var id: Int
    var key: Int { id }
}

struct Reading: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var ts: Date
    var key: Int { id }
}

@Suite("RecordSchema")
struct RecordSchemaTests {
    @Test("a field named like an envelope field is refused: the wire object would carry the name twice")
    func envelopeNames() throws {
        #expect {
            _ = try Reading.schema
        } throws: { error in
            (error as? DeltaKitError)?.code == .invalidConfiguration && "\(error)".contains("'ts'")
                && "\(error)".contains("CodingKeys")
        }
        for name in ["op", "event_order", "ts"] {
            #expect(throws: DeltaKitError.self) {
                try RecordSchema(
                    keyField: "id",
                    fields: [.init(name: "id", type: .int64), .init(name: name, type: .string)]
                )
            }
        }
    }

    @Test("the demo user's fields come from its Codable conformance")
    func demoUser() throws {
        let schema = try DemoUser.schema
        #expect(schema.keyField == "id")
        #expect(
            schema.fields == [
                .init(name: "id", type: .int64), .init(name: "name", type: .string), .init(name: "age", type: .int64),
            ]
        )
        #expect(schema.valueFields.map(\.name) == ["name", "age"])
    }

    @Test("optionals, dates and other scalars")
    func scalars() throws {
        let schema = try Order.schema
        #expect(
            schema.fields == [
                .init(name: "order_id", type: .string), .init(name: "amount", type: .double),
                .init(name: "paid", type: .bool), .init(name: "note", type: .string, isOptional: true),
                .init(name: "placedAt", type: .timestamp), .init(name: "quantity", type: .int32, isOptional: true),
            ]
        )
        let order = Order(
            order_id: "o-1",
            amount: 9.5,
            paid: true,
            note: nil,
            placedAt: Date(timeIntervalSince1970: 0),
            quantity: nil
        )
        let json = String(
            decoding: try ChangeEvent.insert(order, order: 1, timestamp: Date(timeIntervalSince1970: 0)).jsonData(),
            as: UTF8.self
        )
        #expect(
            json
                == #"{"order_id":"o-1","amount":9.5,"paid":true,"note":null,"placedAt":"1970-01-01T00:00:00.000000+00:00","quantity":null,"op":"insert","event_order":1,"ts":"1970-01-01T00:00:00.000000+00:00"}"#
        )
        #expect(try ChangeEvent<Order>(jsonData: Data(json.utf8)).record == order)
    }

    @Test("a nested field is refused with its name")
    func nested() {
        #expect {
            _ = try Nested.schema
        } throws: { error in
            "\(error)".contains("'address'") && "\(error)".contains("not a supported scalar")
        }
    }

    @Test("a key field that is not a field is refused with the fix")
    func wrongKey() {
        #expect {
            _ = try WrongKey.schema
        } throws: { error in
            "\(error)".contains("'userId'") && "\(error)".contains("[\"id\"]")
        }
    }
}
