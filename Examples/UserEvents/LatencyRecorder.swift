import Metrics
import Synchronization

/// A `MetricsFactory` that keeps every value of one timer (the outbox relay's commit → acknowledged latency) and
/// drops everything else, for `outbox relay --latency`: the example has no metrics backend to read it from.
final class LatencyRecorder: MetricsFactory, Sendable {
    private let label: String
    private let timer = Timer()

    /// Records the timer labelled `label`.
    init(timer label: String) {
        self.label = label
    }

    /// The recorded values' p50, p99 and maximum in milliseconds, and how many there were; `nil` when none.
    func summary() -> (p50: Double, p99: Double, max: Double, count: Int)? {
        let sorted = timer.values.withLock { $0 }.sorted()
        guard let last = sorted.last else { return nil }
        func percentile(_ p: Double) -> Double {
            let rank = Int((p * Double(sorted.count)).rounded(.up))
            return Double(sorted[min(sorted.count, max(1, rank)) - 1]) / 1e6
        }
        return (percentile(0.5), percentile(0.99), Double(last) / 1e6, sorted.count)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        NOOPMetricsHandler.instance
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        NOOPMetricsHandler.instance
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        NOOPMetricsHandler.instance
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        label == self.label ? timer : NOOPMetricsHandler.instance
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private final class Timer: TimerHandler, Sendable {
        let values = Mutex<[Int64]>([])
        func recordNanoseconds(_ duration: Int64) { values.withLock { $0.append(duration) } }
    }
}
