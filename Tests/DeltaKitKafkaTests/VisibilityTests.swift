import DeltaKit
import Testing

@testable import DeltaKitKafka

@Suite("Read-your-writes bookkeeping (KafkaMaterializer's Visibility)")
struct VisibilityTests {
    @Test("a receipt is visible once every partition in it is applied past its offset")
    func receipts() {
        var visibility = Visibility()
        let receipt = EventReceipt(offsets: [0: 4, 1: 0])
        #expect(!visibility.isVisible(receipt))
        #expect(visibility.advance([0: 5]).isEmpty)
        #expect(!visibility.isVisible(receipt), "partition 1 is still behind")
        #expect(visibility.behind(receipt) == "partition 1 needs offset 0, applied before 0")
        #expect(visibility.advance([1: 1]).isEmpty)
        #expect(visibility.isVisible(receipt))
        // Positions never go back: an older batch (replayed) does not hide what was applied.
        _ = visibility.advance([0: 2])
        #expect(visibility.isVisible(EventReceipt(partition: 0, offset: 4)))
    }

    @Test("a waiter is handed back by the advance that covers it; one cancelled before it waits is refused")
    func waiters() async throws {
        var visibility = Visibility()
        let receipt = EventReceipt(partition: 3, offset: 9)
        let id = visibility.newID()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            #expect(visibility.wait(id, receipt, continuation) == .wait)
            #expect(visibility.advance([3: 9]).isEmpty, "offset 9 is applied only once the next offset is 10")
            let ready = visibility.advance([3: 10])
            #expect(ready.count == 1)
            (ready.first ?? continuation).resume()
        }
        let cancelled = visibility.newID()
        #expect(visibility.cancel(cancelled) == nil)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            #expect(visibility.wait(cancelled, EventReceipt(partition: 4, offset: 0), continuation) == .cancel)
            continuation.resume()
        }
    }
}
