import DeltaKit
import Foundation
import Synchronization

/// Progress on stderr: one line rewritten in place while stderr is a terminal, ended (with the final count and
/// rate) by ``finish()``; nothing when stderr is not a terminal (the command prints its summary on stdout).
final class ProgressReporter: Sendable {
    private let total: Int?
    private let unit: String
    private let verb: String
    private let enabled = isatty(STDERR_FILENO) == 1
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private let state = Mutex<(last: ContinuousClock.Instant?, count: Int, shown: Bool, detail: String?)>(
        (nil, 0, false, nil)
    )

    init(total: Int?, unit: String, verb: String) {
        self.total = total
        self.unit = unit
        self.verb = verb
        self.start = ContinuousClock().now
    }

    /// Records progress (and an extra `detail`, such as a lag); redraws at most once a second.
    func update(_ count: Int, detail: String? = nil) {
        guard enabled else { return }
        let now = clock.now
        let line: String? = state.withLock { state in
            state.count = count
            state.detail = detail
            if let last = state.last, now - last < .seconds(1) { return nil }
            state.last = now
            state.shown = true
            return "\r" + text(count, now, detail)
        }
        if let line { Console.error.reportRaw(line) }
    }

    /// Ends the progress line with the final count, so nothing printed afterwards is glued to it.
    func finish() {
        guard enabled else { return }
        let (count, shown, detail) = state.withLock { ($0.count, $0.shown, $0.detail) }
        guard shown else { return }
        Console.error.reportRaw("\r" + text(count, clock.now, detail) + "\n")
    }

    /// Writes a line of its own (a warning) without gluing it to the progress line.
    func interrupt(_ write: () -> Void) {
        if enabled, state.withLock({ $0.shown }) { Console.error.reportRaw("\n") }
        write()
    }

    private func text(_ count: Int, _ now: ContinuousClock.Instant, _ detail: String? = nil) -> String {
        let of = total.map { "/\($0)" } ?? ""
        return
            "\(verb) \(count)\(of) \(unit) (\(Self.rate(count, now - start)) \(unit)/s)\(detail.map { ", \($0)" } ?? "")"
    }

    /// An elapsed time as the summaries print it: `1s 308ms`.
    static func text(_ elapsed: Duration) -> String {
        elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow))
    }

    static func rate(_ count: Int, _ elapsed: Duration) -> Int {
        let seconds = elapsed.secondsAsDouble
        return seconds > 0 ? Int(Double(count) / seconds) : count
    }
}
