import DeltaKit
import Synchronization

/// "Caught up": every assigned partition reached its end and the application has taken every item before that
/// point (the marker's place in the items).
extension SourceCore {
    /// ``KafkaEventSource/isCaughtUp``.
    var isCaughtUp: Bool { machine.withLock { $0.isCaughtUp } }

    /// The reader took the marker and applied what came before it: caught up, unless items arrived behind it.
    func markCaughtUp() {
        perform(machine.withLock { $0.markCaughtUp() })
    }

    func waitUntilCaughtUp() async {
        await withCheckedContinuation { continuation in
            perform(machine.withLock { $0.waitUntilCaughtUp(continuation) })
        }
    }
}
