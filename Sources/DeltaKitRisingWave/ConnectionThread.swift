import Foundation
import Synchronization

/// A thread that owns one libpq connection and runs jobs on it one at a time.
///
/// libpq blocks and a `PGconn` is not thread-safe, so every call for one connection runs here, never on
/// Swift's cooperative pool.
final class ConnectionThread: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }
    private let state = Mutex(State())
    private let signal = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Thread { self.loop() }
        thread.name = name
        thread.start()
    }

    private func loop() {
        while true {
            signal.wait()
            let job: (@Sendable () -> Void)? = state.withLock { state in
                state.jobs.isEmpty ? nil : state.jobs.removeFirst()
            }
            if let job {
                job()
            } else if state.withLock({ $0.stopped }) {
                return
            }
        }
    }

    /// Runs `body` on the connection's thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = state.withLock { state in
                guard !state.stopped else { return false }
                state.jobs.append { continuation.resume(with: Result { try body() }) }
                return true
            }
            if accepted {
                signal.signal()
            } else {
                continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Runs `body` on the thread without waiting for it.
    func submit(_ body: @escaping @Sendable () -> Void) {
        let accepted = state.withLock { state in
            guard !state.stopped else { return false }
            state.jobs.append(body)
            return true
        }
        if accepted { signal.signal() }
    }

    /// Ends the thread after the queued jobs.
    func stop() {
        state.withLock { $0.stopped = true }
        signal.signal()
    }
}
