// libFuzzer target: SQL quoting (`SQLText`). Any text → a quoted identifier or literal (or a refusal); the quoted
// form, read back by a reference unquoter, is the original, and the quote never closes before the last character.
import Foundation

/// Reads a quoted token: the content between the opening and the closing quote, with doubled quotes undone;
/// `nil` if the quote closes before the end. Works on Unicode scalars, as SQL does: a combining mark after the
/// opening quote would make one `Character` of both.
func unquote(_ quoted: String, quote: Unicode.Scalar) -> String? {
    var characters = Array(quoted.unicodeScalars)
    guard characters.count >= 2, characters.first == quote, characters.last == quote else { return nil }
    characters = Array(characters.dropFirst().dropLast())
    var out = String.UnicodeScalarView()
    var index = 0
    while index < characters.count {
        if characters[index] == quote {
            guard index + 1 < characters.count, characters[index + 1] == quote else { return nil }  // closed early
            out.append(quote)
            index += 2
        } else {
            out.append(characters[index])
            index += 1
        }
    }
    return String(out)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let quoted = try? SQLText.identifier(text) {
        guard unquote(quoted, quote: "\"")?.unicodeScalars.elementsEqual(text.unicodeScalars) == true else { fatalError("identifier \(text.debugDescription) → \(quoted)") }
    }
    if let quoted = try? SQLText.literal(text) {
        guard unquote(quoted, quote: "'")?.unicodeScalars.elementsEqual(text.unicodeScalars) == true,
            !quoted.contains("\\")
        else {
            fatalError("literal \(text.debugDescription) → \(quoted)")
        }
    }
    if (try? SQLText.validateRelationName(text, what: "fuzz")) != nil {
        guard text.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }),
            (1...63).contains(text.utf8.count)
        else { fatalError("relation name accepted: \(text.debugDescription)") }
    }
    return 0
}
