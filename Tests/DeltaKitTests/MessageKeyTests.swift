import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKit

/// The consumer refuses an event whose Kafka message key is not its record's key: the check
/// compares the message key with the bytes the sink writes (`keyBytes`), exactly.
@Suite("Message keys")
struct MessageKeyTests {
    static func keyed(_ event: ChangeEvent<some ChangeRecord>, by text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { event.isKeyed(by: $0) }
    }

    @Test("an integer key matches only its canonical decimal text")
    func integerKeys() throws {
        for id in [0, 1, -1, 7, 42, -42, 1_000_000, Int.max, Int.min] {
            let event = ChangeEvent<DemoUser>.insert(DemoUser(id: id, name: "A", age: 1), order: 1)
            let canonical = String(decoding: try event.keyBytes, as: UTF8.self)
            #expect(Self.keyed(event, by: canonical), "\(canonical)")
            for other in [
                "0" + canonical, " " + canonical, canonical + " ", "+" + canonical, canonical + "0", "\"\(canonical)\"",
                "", "x", "\(id == 0 ? 1 : 0)",
            ] {
                #expect(!Self.keyed(event, by: other), "\(id) keyed by '\(other)'")
            }
        }
        let zero = ChangeEvent<DemoUser>.delete(key: 0, order: 1)
        #expect(!Self.keyed(zero, by: "-0"))
        #expect(!Self.keyed(ChangeEvent<DemoUser>.delete(key: 1, order: 1), by: "2"))
        #expect(!Self.keyed(ChangeEvent<DemoUser>.delete(key: 1, order: 1), by: "99999999999999999999999"))
    }

    @Test("a string key matches its UTF-8 bytes exactly")
    func stringKeys() throws {
        let order = Order(order_id: "o-é1", amount: 1, paid: true, note: nil, placedAt: Date(timeIntervalSince1970: 0))
        let event = ChangeEvent<Order>.insert(order, order: 1)
        #expect(Self.keyed(event, by: "o-é1"))
        #expect(Self.keyed(event, by: "o-e\u{301}1") == false, "bytes, not canonical equivalence: another partition")
        #expect(!Self.keyed(event, by: "\"o-é1\""))
        #expect(!Self.keyed(event, by: "o-é"))
    }

    @Test("the mis-key error names the field and both keys")
    func misKeyedError() {
        let event = ChangeEvent<DemoUser>.insert(DemoUser(id: 2, name: "EVIL", age: 1), order: 1)
        let error = event.misKeyedError(kafkaKey: Array("1".utf8))
        #expect(error.field == "id")
        #expect(error.reason.contains("Kafka key is `1`"))
        #expect(error.reason.contains("record's key is `2`"))
    }
}
