import ArgumentParser
import Foundation

/// `--count`, `--seed` and `--interval`: the events `demo` and `produce` generate.
struct GeneratorOptions: ParsableArguments {
    // Numbers are parsed `.unconditional`ly, so `--count -5` is the value -5 (refused with the allowed range), not
    // an unknown option `-5` that leaves `--count` without a value.
    @Option(parsing: .unconditional, help: "How many events to send (0…100,000,000).")
    var count = 100

    @Option(parsing: .unconditional, help: "Random seed (the same seed gives the same events). Default: random.")
    var seed: UInt64?

    @Option(
        parsing: .unconditional,
        help:
            "Pause between events, in decimal seconds or with a unit: 0 (default), 0.5, 500ms, 1s (the original demo), 2m; at most 1 hour."
    )
    var interval: IntervalArgument = IntervalArgument(duration: .zero)

    var resolvedSeed: UInt64 { seed ?? UInt64.random(in: 0...UInt64(UInt32.max)) }

    func validate() throws {
        guard (0...100_000_000).contains(count) else {
            throw ValidationError("--count must be 0…100,000,000, got \(count)")
        }
        if let invalid = interval.invalid {
            throw ValidationError(
                "--interval must be a decimal number of seconds, optionally with a unit (0.5, 500ms, 2s, 2m), at most 1 hour; got '\(invalid)'"
            )
        }
    }
}

struct IntervalArgument: ExpressibleByArgument {
    var duration: Duration
    /// The argument as given when it is not an interval (``GeneratorOptions/validate()`` refuses it, naming it).
    var invalid: String?

    init(duration: Duration) { self.duration = duration }

    /// Plain decimal digits (`0`, `1.5`), optionally followed by a unit (`ms`, `s`, `m`); 0…1 hour. Anything else
    /// — hexadecimal `0x10`, an exponent `1e3`, `inf`, a sign — is kept as ``invalid``, for a usage error that
    /// says what is accepted (`Double(_:)` alone would read `0x10` as 16 seconds).
    init?(argument: String) {
        duration = .zero
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        var factor = 1.0
        var number = Substring(text)
        for (suffix, unit) in [("ms", 0.001), ("s", 1.0), ("m", 60.0)] where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            factor = unit
            break
        }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard !number.isEmpty, parts.count <= 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
            let value = Double(number), value * factor <= 3600
        else {
            invalid = argument
            return
        }
        duration = .milliseconds(Int64((value * factor * 1000).rounded()))
    }

    var defaultValueDescription: String { duration == .zero ? "0" : "\(duration)" }

    static var defaultCompletionKind: CompletionKind { .default }
}

extension Character {
    /// `0`…`9` only (`isNumber` also accepts other scripts' digits and fractions).
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
