// libFuzzer target: the text parsers of the scalar table (`ScalarType.parseText`), which read RisingWave's and
// PostgreSQL's result text for every column and key, and `textForm`, which writes keys as query parameters.
// The first byte picks a type, the rest is the text. Any text → a value or nil, never a trap; an accepted value
// writes JSON that the wire reader reads back to the same value (or a typed refusal for what JSON cannot hold),
// and its text form parses back to the same value. Integers and booleans are checked against a reference.
import Foundation

enum Color: String, CaseIterable { case red, green, odd = "o\"d\\d\n" }
enum Level: Int16, CaseIterable { case low = -1, high = 7 }

let types: [Any.Type] = [
    Bool.self, String.self, Int.self, Int64.self, Int32.self, Int16.self, Int8.self, UInt.self, UInt64.self,
    UInt32.self, UInt16.self, UInt8.self, Double.self, Float.self, Decimal.self, Date.self, UUID.self, URL.self,
    Color.self, Level.self,
]
let scalars = types.map { ScalarType.of($0)! }
let integerRanges: [Int: ClosedRange<Int128>] = [
    2: Int128(Int.min)...Int128(Int.max), 3: Int128(Int64.min)...Int128(Int64.max),
    4: Int128(Int32.min)...Int128(Int32.max), 5: Int128(Int16.min)...Int128(Int16.max),
    6: Int128(Int8.min)...Int128(Int8.max), 7: 0...Int128(UInt.max), 8: 0...Int128(UInt64.max),
    9: 0...Int128(UInt32.max), 10: 0...Int128(UInt16.max), 11: 0...Int128(UInt8.max),
]

/// The value's JSON, or nil when the table refuses to write it (with a DeltaKitError, never anything else).
func json(_ scalar: ScalarType, _ value: Any) -> [UInt8]? {
    var bytes: [UInt8] = []
    do {
        try scalar.writeJSON(value, &bytes, "f")
        return bytes
    } catch is DeltaKitError {
        return nil
    } catch {
        fatalError("writeJSON threw \(error)")
    }
}

/// What the wire decoder makes of a field whose JSON is `bytes`.
func readBack(_ scalar: ScalarType, _ bytes: [UInt8]) -> Any? {
    let value: JSONScalar?
    do {
        value = try FlatJSONReader.scalar(bytes)
    } catch {
        fatalError("the JSON the table wrote is not JSON: \(String(decoding: bytes, as: UTF8.self))")
    }
    return value.flatMap { scalar.readJSON($0) }
}

/// The reference integer parser: an optional sign and ASCII digits, in range.
func referenceInteger(_ text: String, _ range: ClosedRange<Int128>) -> Bool {
    var digits = Substring(text)
    var negative = false
    if let first = digits.first, first == "+" || first == "-" {
        negative = first == "-"
        digits = digits.dropFirst()
    }
    guard !digits.isEmpty, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return false }
    let significant = digits.drop { $0 == "0" }
    guard significant.count <= 38 else { return false }
    let magnitude = Int128(significant.isEmpty ? "0" : String(significant))!
    return range.contains(negative ? -magnitude : magnitude)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let index = Int(data[0]) % scalars.count
    let scalar = scalars[index]
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    let value = scalar.parseText(text)
    if let range = integerRanges[index], (value != nil) != referenceInteger(text, range) {
        fatalError("\(scalar.swiftName) parse of \(text.debugDescription): \(String(describing: value))")
    }
    if index == 0, (value != nil) != ["t", "true", "f", "false"].contains(text.lowercased()) {
        fatalError("Bool parse of \(text.debugDescription): \(String(describing: value))")
    }
    guard let value, let written = json(scalar, value) else { return 0 }
    guard let reread = readBack(scalar, written), json(scalar, reread) == written else {
        fatalError(
            "\(scalar.swiftName) \(text.debugDescription) → JSON \(String(decoding: written, as: UTF8.self)) does not read back"
        )
    }
    guard let form = try? scalar.textForm(of: value, field: "f"), let again = scalar.parseText(form),
        json(scalar, again) == written
    else {
        fatalError("\(scalar.swiftName) \(text.debugDescription): its text form does not parse back")
    }
    return 0
}
