import Foundation
import Synchronization

/// A serial executor on one dedicated thread: the executor of a ``RisingWaveConnection``.
///
/// libpq blocks and a `PGconn` is not thread-safe, so every job of one connection runs here, in order, never
/// on Swift's cooperative pool.
final class ConnectionExecutor: SerialExecutor, Sendable {
    private struct State {
        var jobs: [Job] = []
        var stopped = false
        /// The dedicated thread's `pthread_self()`, once it runs.
        var thread: UInt?
    }
    private enum Job: @unchecked Sendable {
        // An UnownedJob is run once, on this executor's thread, which is what makes handing it over safe.
        case task(UnownedJob)
        case closure(@Sendable () -> Void)
    }
    private let state = Mutex(State())
    /// Wakes the thread when a job arrives (the thread's own sleep, not a hand-off between tasks).
    private let wake = DispatchSemaphore(value: 0)

    init(name: String) {
        // The name is set from the thread itself: on Linux, Foundation names only the running thread.
        let thread = Thread { [self] in
            Thread.current.name = name
            state.withLock {
                $0.thread = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(bitPattern: UInt(pthread_self()))))
            }
            loop()
        }
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        push(.task(UnownedJob(job)))
    }

    /// Runs `body` on the thread without waiting for it.
    func submit(_ body: @escaping @Sendable () -> Void) { push(.closure(body)) }

    /// Ends the thread after the queued jobs.
    func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    /// `true` when called on this executor's dedicated thread.
    var isCurrentThread: Bool {
        let current = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(bitPattern: UInt(pthread_self()))))
        return state.withLock { $0.thread } == current
    }

    private func push(_ job: Job) {
        state.withLock { $0.jobs.append(job) }
        wake.signal()
    }

    private func loop() {
        while true {
            wake.wait()
            while let job = state.withLock({ $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }) {
                switch job {
                case .task(let task): task.runSynchronously(on: asUnownedSerialExecutor())
                case .closure(let body): body()
                }
            }
            if state.withLock({ $0.stopped && $0.jobs.isEmpty }) { return }
        }
    }
}
