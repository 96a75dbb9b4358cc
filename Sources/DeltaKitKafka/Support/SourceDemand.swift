import DeltaKit
import Foundation
import NIOCore
import Synchronization

/// The application's demand for a source's items, as swift-nio's `NIOAsyncSequenceProducer` signals it, read by
/// the poll thread.
///
/// A yield told to stop records the ``epoch`` read just before it; every `produceMore()` advances the epoch, so
/// the poll thread wants more once the epoch moved past the recorded one — a `produceMore()` that lands between
/// the yield and the recording is not lost.
final class SourceDemand: NIOAsyncSequenceProducerDelegate {
    private let produceMoreCalls = Atomic<Int>(0)
    private let ended = Atomic<Bool>(false)
    /// Wakes a poll thread that waits for demand.
    private let wake = DispatchSemaphore(value: 0)

    /// The number of `produceMore()` calls so far.
    var epoch: Int { produceMoreCalls.load(ordering: .acquiring) }

    /// `true` when the application asked for more after the yield that recorded `stoppedAt`.
    func wantsMore(since stoppedAt: Int) -> Bool { epoch > stoppedAt }

    /// `true` once the reader is gone (its loop ended, its task was cancelled, or the source finished).
    var hasEnded: Bool { ended.load(ordering: .acquiring) }

    /// Blocks the poll thread until demand returns or `timeout` passes.
    func waitForDemand(timeout: Duration) {
        _ = wake.wait(timeout: .now() + .milliseconds(Int(timeout.milliseconds())))
    }

    func produceMore() {
        produceMoreCalls.add(1, ordering: .releasing)
        wake.signal()
    }

    func didTerminate() {
        ended.store(true, ordering: .releasing)
        wake.signal()
    }
}
