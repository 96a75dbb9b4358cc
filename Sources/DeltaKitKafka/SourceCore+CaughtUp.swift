import DeltaKit
import Synchronization

/// "Caught up": every assigned partition reached its end and the application has taken every item before that
/// point (the marker's place in the items).
extension SourceCore {
    /// ``KafkaEventSource/isCaughtUp``.
    var isCaughtUp: Bool { state.withLock { $0.caughtUp } }

    /// The reader took the marker and applied what came before it: caught up, unless items arrived behind it.
    func markCaughtUp() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            // Only if nothing newer arrived behind the marker.
            guard state.handedOver == state.yielded else { return [] }
            state.caughtUp = true
            defer { state.caughtUpWaiters = [] }
            return state.caughtUpWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func waitUntilCaughtUp() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if !state.caughtUp { state.caughtUpWaiters.append(continuation) }
                return state.caughtUp
            }
            if now { continuation.resume() }
        }
    }
}
