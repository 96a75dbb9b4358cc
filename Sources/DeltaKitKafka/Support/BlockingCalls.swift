import Foundation
import Synchronization

/// Where every blocking librdkafka call (metadata, topic creation, commits, closing a consumer) runs: one
/// concurrent Dispatch queue shared by every client, so that no call blocks Swift's cooperative pool and no call
/// starts a thread of its own (Dispatch reuses its worker threads). The poll loops are long-lived and keep
/// their own threads (``PollLoop``).
enum BlockingCalls {
    static let queue = DispatchQueue(label: "deltakit.kafka.blocking", qos: .utility, attributes: .concurrent)

    /// Runs `body` on the shared queue and returns its result.
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}

/// A thread that calls `body` in a loop until stopped: one per librdkafka client.
final class PollLoop: Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Starts the loop. `body` should block briefly (e.g. `rd_kafka_poll(rk, 100)`).
    init(name: String, body: @escaping @Sendable () -> Void) {
        let thread = Thread { self.loop(body) }
        thread.name = name
        thread.start()
    }

    private func loop(_ body: @Sendable () -> Void) {
        while running.load(ordering: .acquiring) { body() }
        let waiters = finished.withLock { state in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Asks the loop to stop after its current iteration.
    func requestStop() { running.store(false, ordering: .releasing) }

    /// Stops the loop and waits until its thread has finished.
    func stop() async {
        requestStop()
        await withCheckedContinuation { continuation in
            let done = finished.withLock { state in
                if !state.done { state.waiters.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }
}
