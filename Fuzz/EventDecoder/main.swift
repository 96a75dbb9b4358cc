// libFuzzer target: the wire decoder (`ChangeEvent(jsonData:)`). Built by scripts/fuzz together with the core's
// sources (one module, so internals are visible), never part of a library product.
//
// For every input: no trap, hang or leak (AddressSanitizer); the decoder's fast path and its `Codable` path accept
// the same events and decode them equally (a decimal from a JSON number or a numeric string included); an accepted
// event re-encodes to bytes that decode to an equal event (round trip); and where Foundation's JSONSerialization
// (a slow, independent reader) also reads the input, it finds the same id, op and event_order — the decoder never
// invents data.
//
// Event rows: the schema-compiled row decoder (`RowLayout.decode`) accepts only what the `Codable` path accepts,
// as the same canonical event, and with the `Codable` path behind it exactly what that accepts (see checkRows).
//
// Repeated names (issue 17): an object the reader accepts has unique names (checked against JSONSerialization's
// dictionary, an independent reader); and the same object with one of its names written again — plainly or
// spelled with \u escapes, with the choice taken from the input — is refused by the reader, the fast path and
// the `Codable` path alike, with an error naming that field.
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
    var amount: Decimal?
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
    checkRepeatedNames(bytes)
    let accepted = try? ChangeEvent<FuzzUser>(jsonData: bytes)
    checkRows(bytes, accepted: accepted)
    guard let event = accepted else { return 0 }
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

/// The event-row properties: the one-pass row decoder accepts only events the `Codable` path accepts, as the same
/// canonical event; with the `Codable` path behind it, it accepts exactly what that accepts (and throws the same
/// error); and it takes every event DeltaKit itself writes without leaving it to the `Codable` path.
func checkRows(_ bytes: UnsafeBufferPointer<UInt8>, accepted: ChangeEvent<FuzzUser>?) {
    let layout = RowLayout.of(FuzzUser.self)!
    let raw = UnsafeRawBufferPointer(bytes)
    var rows = layout.makeRows()
    if layout.decode(raw, into: &rows) {
        guard let accepted else { fatalError("the row decoder accepted what the Codable path refuses") }
        guard let rebuilt = try? ChangeEvent<FuzzUser>(row: 0, of: rows, layout: layout),
            let canonical = try? accepted.canonicalized(), rebuilt == canonical
        else { fatalError("the row decoder read \(rows.values), the Codable path \(accepted)") }
    }
    var all = layout.makeRows()
    let outcome = Result { try layout.appendRow(decoding: raw, FuzzUser.self, into: &all) }
    switch (accepted, outcome) {
    case (nil, .success): fatalError("rows accepted what the Codable path refuses")
    case (.some(let event), .failure(let error)): fatalError("rows refused \(event): \(error)")
    case (nil, .failure(let error)):
        let expected = Result { try ChangeEvent<FuzzUser>(jsonData: bytes) }
        guard case .failure(let codable) = expected, "\(codable)" == "\(error)" else {
            fatalError("rows refused with \(error), the Codable path with \(expected)")
        }
    case (.some(let event), .success):
        guard let rebuilt = try? ChangeEvent<FuzzUser>(row: 0, of: all, layout: layout),
            rebuilt == (try? event.canonicalized())
        else { fatalError("rows read \(all.values) for \(event)") }
        guard let encoded = try? event.jsonData() else { return }
        var own = layout.makeRows()
        guard encoded.withUnsafeBytes({ layout.decode($0, into: &own) }) else {
            fatalError(
                "the row decoder left DeltaKit's own output to the Codable path: \(String(decoding: encoded, as: UTF8.self))"
            )
        }
    }
}

/// The repeated-name properties (see the top of the file).
func checkRepeatedNames(_ bytes: UnsafeBufferPointer<UInt8>) {
    let raw = UnsafeRawBufferPointer(bytes)
    guard let fields = try? FlatJSONReader.fields(of: raw), !fields.isEmpty,
        let close = bytes.lastIndex(of: UInt8(ascii: "}"))
    else { return }
    if let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], object.count != fields.count
    {
        fatalError("accepted \(fields.count) names, JSONSerialization found \(object.count) distinct: a repeated name")
    }
    // Which name to repeat, and how to spell it, follow from the input (deterministic for a reproducer).
    let seed = bytes.reduce(0) { ($0 &* 31) &+ Int($1) }
    let name = fields[abs(seed % fields.count)].key
    let escapeAll = seed & 1 == 1
    var repeated = Array(bytes[..<close])
    repeated += Array(",\(quoted(name, escapeAll: escapeAll)):0".utf8)
    repeated += Array(bytes[close...])
    let schema = try! FuzzUser.schema
    repeated.withUnsafeBytes { raw in
        var errors: [ChangeEventDecodingError?] = []
        for attempt in 0..<3 {
            do {
                switch attempt {
                case 0: _ = try FlatJSONReader.fields(of: raw)
                case 1: _ = try ChangeEvent<FuzzUser>.decodeWire(raw, schema: schema)  // the fast path first
                default: _ = try ChangeEvent<FuzzUser>.decodeWire(raw, schema: nil)  // the Codable path only
                }
                fatalError(
                    "a repeated '\(name)' was accepted (attempt \(attempt)): \(String(decoding: repeated, as: UTF8.self))"
                )
            } catch {
                errors.append(error as? ChangeEventDecodingError)
            }
        }
        guard errors[0]?.field == name, errors[1] == errors[0], errors[2] == errors[0] else {
            fatalError("a repeated '\(name)' was refused differently: \(errors)")
        }
    }
}

/// `name` as a JSON string: minimal escapes, or every scalar as `\uXXXX` (surrogate pairs beyond the BMP).
func quoted(_ name: String, escapeAll: Bool) -> String {
    var out = "\""
    for scalar in name.unicodeScalars {
        if escapeAll || scalar.value < 0x20 || scalar == "\"" || scalar == "\\" {
            if scalar.value > 0xFFFF {
                let v = scalar.value - 0x10000
                out += String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
            } else {
                out += String(format: "\\u%04x", scalar.value)
            }
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
