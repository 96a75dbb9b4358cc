// libFuzzer target: the wire decoder (`ChangeEvent(jsonData:)`). Built by scripts/fuzz together with the core's
// sources (one module, so internals are visible), never part of a library product.
//
// For every input: no trap, hang or leak (AddressSanitizer); the decoder's fast path and its `Codable` path accept
// the same events and decode them equally; an accepted event re-encodes to bytes that decode to an
// equal event (round trip); and where Foundation's JSONSerialization (a slow, independent reader) also reads the
// input, it finds the same id, op and event_order — the decoder never invents data.
import Foundation

struct FuzzUser: ChangeRecord {
    enum Tier: String, Codable, Hashable, Sendable, CaseIterable { case free, paid }
    static let keyField = "id"
    var id: Int
    var name: String
    var age: Int
    var score: Double?
    var at: Date?
    var tier: Tier?
    var key: Int { id }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // The fast path (envelope read from the tokens) and the `Codable` path accept exactly the same events.
    if let decoder = try? WireDecoder(
        fields: WireFields(FlatJSONReader.fields(of: UnsafeRawBufferPointer(bytes))),
        bytes: UnsafeRawBufferPointer(bytes)
    ) {
        let general = try? ChangeEvent<FuzzUser>.decodeGeneral(decoder)
        if let fast = ChangeEvent<FuzzUser>.decodeValid(decoder, schema: try! FuzzUser.schema), fast != general {
            fatalError("the fast path decoded \(fast), the Codable path \(String(describing: general))")
        } else if ChangeEvent<FuzzUser>.decodeValid(decoder, schema: try! FuzzUser.schema) == nil, let general {
            fatalError("the Codable path accepted \(general), the fast path did not")
        }
    }
    guard let event = try? ChangeEvent<FuzzUser>(jsonData: bytes) else { return 0 }
    // Round trip.
    guard let encoded = try? event.jsonData() else { fatalError("accepted but cannot re-encode: \(event)") }
    guard let again = try? ChangeEvent<FuzzUser>(jsonData: encoded), again == event else {
        fatalError("round trip changed the event: \(event) → \(String(decoding: encoded, as: UTF8.self))")
    }
    // Where JSONSerialization reads the input too, it agrees on the envelope. (It refuses some valid JSON that
    // DeltaKit accepts in fields the record ignores, such as 1.5e713, which overflows a Double: RFC 8259 allows
    // it, and RisingWave ignores undeclared fields as well — found by this target.)
    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return 0 }
    guard (object["op"] as? String) == event.operation.rawValue,
        (object["event_order"] as? NSNumber)?.int64Value == event.order,
        (object["id"] as? NSNumber)?.intValue == event.key
    else {
        fatalError("envelope disagrees with JSONSerialization: \(object) vs \(event)")
    }
    return 0
}
