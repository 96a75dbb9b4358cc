import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@Suite("Wire format")
struct WireFormatTests {
    let ts = Date(timeIntervalSince1970: 1_714_566_645.123456)

    @Test("an insert encodes to the demo's exact JSON")
    func goldenInsert() throws {
        let event = ChangeEvent.insert(DemoUser(id: 1, name: "Alice", age: 25), order: 7, timestamp: ts)
        let json = String(decoding: try event.jsonData(), as: UTF8.self)
        #expect(
            json
                == #"{"id":1,"name":"Alice","age":25,"op":"insert","event_order":7,"ts":"2024-05-01T12:30:45.123456+00:00"}"#
        )
    }

    @Test("a delete carries explicit nulls")
    func goldenDelete() throws {
        let event = ChangeEvent<DemoUser>.delete(key: 3, order: 1_732_499_305_123_456, timestamp: ts)
        let json = String(decoding: try event.jsonData(), as: UTF8.self)
        #expect(
            json
                == #"{"id":3,"name":null,"age":null,"op":"delete","event_order":1732499305123456,"ts":"2024-05-01T12:30:45.123456+00:00"}"#
        )
    }

    @Test("every event has exactly the demo's keys", arguments: ChangeOperation.allCases)
    func exactKeys(op: ChangeOperation) throws {
        let user = DemoUser(id: 2, name: "Bob", age: 30)
        let event: ChangeEvent<DemoUser> =
            op == .delete ? .delete(key: 2, order: 1) : ChangeEvent(operation: op, record: user, order: 1)
        let object = try #require(try JSONSerialization.jsonObject(with: event.jsonData()) as? [String: Any])
        #expect(Set(object.keys) == ["id", "name", "age", "op", "event_order", "ts"])
        #expect(object["op"] as? String == op.rawValue)
        let tsText = try #require(object["ts"] as? String)
        #expect(tsText.hasSuffix("+00:00"))
        #expect(tsText.count == "2024-05-01T12:30:45.123456+00:00".count)
    }

    @Test("decodes the Python demo producer's own output")
    func decodesDemoOutput() throws {
        // json.dumps(event) with datetime.now(timezone.utc).isoformat(): spaces after separators,
        // microseconds present or absent.
        let lines = [
            #"{"id": 1, "name": "Alice", "age": 25, "op": "insert", "event_order": 1, "ts": "2024-05-01T12:30:45.123456+00:00"}"#,
            #"{"id": 2, "name": "Bob", "age": 33, "op": "update", "event_order": 2, "ts": "2024-05-01T12:30:46+00:00"}"#,
            #"{"id": 3, "name": null, "age": null, "op": "delete", "event_order": 3, "ts": "2024-05-01T12:30:47.000001+00:00"}"#,
        ]
        let events = try lines.map { try ChangeEvent<DemoUser>(jsonData: Data($0.utf8)) }
        #expect(events[0] == .insert(DemoUser(id: 1, name: "Alice", age: 25), order: 1, timestamp: ts))
        #expect(events[1].record == DemoUser(id: 2, name: "Bob", age: 33))
        #expect(events[1].operation == .update)
        #expect(events[1].timestamp == Date(timeIntervalSince1970: 1_714_566_646))
        #expect(events[2] == .delete(key: 3, order: 3, timestamp: Date(timeIntervalSince1970: 1_714_566_647.000001)))
    }

    @Test("a delete may omit the value fields entirely")
    func deleteWithoutFields() throws {
        let event = try ChangeEvent<DemoUser>(
            jsonData: Data(#"{"id":3,"op":"delete","event_order":9,"ts":"2024-05-01T12:30:45Z"}"#.utf8)
        )
        #expect(event.key == 3 && event.record == nil)
    }

    @Test("fast encoding and Codable agree and round-trip")
    func roundTrip() throws {
        var generator = DemoEventGenerator(seed: 99, users: 7)
        for event in generator.next(500) {
            let wire = try event.jsonData()
            #expect(try ChangeEvent<DemoUser>(jsonData: wire) == event)
            let viaCodable = try JSONEncoder().encode(event)
            #expect(try JSONDecoder().decode(ChangeEvent<DemoUser>.self, from: viaCodable) == event)
            let a = try JSONSerialization.jsonObject(with: wire) as? NSDictionary
            let b = try JSONSerialization.jsonObject(with: viaCodable) as? NSDictionary
            #expect(a == b)
        }
    }

    @Test("strings are escaped")
    func escaping() throws {
        let name = "Zoë \"Q\" \\ \n\t\u{01} 🚀"
        let event = ChangeEvent.insert(DemoUser(id: 5, name: name, age: 1), order: 1)
        #expect(try ChangeEvent<DemoUser>(jsonData: event.jsonData()).record?.name == name)
    }

    // MARK: Bad input: one test per class, each naming the field and the value.

    func decodeError(_ json: String) -> ChangeEventDecodingError? {
        do {
            _ = try ChangeEvent<DemoUser>(jsonData: Data(json.utf8))
            return nil
        } catch let error as ChangeEventDecodingError {
            return error
        } catch {
            Issue.record("unexpected error type \(type(of: error)): \(error)")
            return nil
        }
    }

    @Test("not JSON")
    func notJSON() throws {
        let error = try #require(decodeError("id=1,name=Alice"))
        #expect(error.field == nil)
        #expect(error.value == "\"id=1,name=Alice\"")
        #expect(error.description.contains("not valid JSON"))
        let array = try #require(decodeError("[1,2]"))
        #expect(array.reason.contains("JSON object"))
    }

    @Test("unknown op")
    func unknownOp() throws {
        let error = try #require(
            decodeError(#"{"id":1,"name":"A","age":1,"op":"upsert","event_order":1,"ts":"2024-05-01T12:30:45+00:00"}"#)
        )
        #expect(error.field == "op")
        #expect(error.value == "\"upsert\"")
        #expect(error.description.contains("insert, update, delete"))
    }

    @Test("missing key", arguments: ["id", "op", "event_order", "ts", "name"])
    func missingKey(field: String) throws {
        var object: [String: Any] = [
            "id": 1, "name": "A", "age": 1, "op": "insert", "event_order": 1, "ts": "2024-05-01T12:30:45+00:00",
        ]
        object[field] = nil
        let json = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        let error = try #require(decodeError(json))
        #expect(error.field == field)
        #expect(error.value == nil)
        #expect(error.description.contains("'\(field)'"))
    }

    @Test("wrong type")
    func wrongType() throws {
        let age = try #require(
            decodeError(
                #"{"id":1,"name":"A","age":"old","op":"insert","event_order":1,"ts":"2024-05-01T12:30:45+00:00"}"#
            )
        )
        #expect(age.field == "age")
        #expect(age.value == "\"old\"")
        #expect(age.reason == "expected an integer")
        let order = try #require(
            decodeError(
                #"{"id":1,"name":"A","age":1,"op":"insert","event_order":1.5,"ts":"2024-05-01T12:30:45+00:00"}"#
            )
        )
        #expect(order.field == "event_order")
        #expect(order.value == "1.5")
        let ts = try #require(
            decodeError(#"{"id":1,"name":"A","age":1,"op":"insert","event_order":1,"ts":"yesterday"}"#)
        )
        #expect(ts.field == "ts")
        #expect(ts.value == "\"yesterday\"")
        let nullName = try #require(
            decodeError(#"{"id":1,"name":null,"age":1,"op":"update","event_order":1,"ts":"2024-05-01T12:30:45+00:00"}"#)
        )
        #expect(nullName.field == "name")
        #expect(nullName.value == "null")
    }

    @Test("a delete carrying values")
    func deleteWithValues() throws {
        let error = try #require(
            decodeError(
                #"{"id":1,"name":"Alice","age":null,"op":"delete","event_order":1,"ts":"2024-05-01T12:30:45+00:00"}"#
            )
        )
        #expect(error.field == "name")
        #expect(error.value == "\"Alice\"")
        #expect(error.reason.contains("delete"))
    }
}
