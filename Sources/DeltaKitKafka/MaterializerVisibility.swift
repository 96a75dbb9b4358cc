import DeltaKit

/// What has been applied per partition, and who waits for what: a state machine whose methods return the
/// continuations to resume (outside the lock).
struct Visibility {
    private var applied: [Int32: Int64] = [:]
    private var waiters: [Int: (receipt: EventReceipt, continuation: CheckedContinuation<Void, any Error>)] = [:]
    private var cancelled: Set<Int> = []
    private var nextID = 0

    enum WaitAction { case resume, cancel, wait }

    mutating func newID() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    func isVisible(_ receipt: EventReceipt) -> Bool {
        receipt.offsets.allSatisfy { partition, offset in (applied[partition] ?? 0) > offset }
    }

    /// The partitions of `receipt` not applied yet, as `partition@offset (applied up to n)`.
    func behind(_ receipt: EventReceipt) -> String {
        receipt.offsets.sorted { $0.key < $1.key }.filter { (applied[$0.key] ?? 0) <= $0.value }
            .map { "partition \($0.key) needs offset \($0.value), applied before \(applied[$0.key] ?? 0)" }
            .joined(separator: "; ")
    }

    mutating func wait(_ id: Int, _ receipt: EventReceipt, _ continuation: CheckedContinuation<Void, any Error>)
        -> WaitAction
    {
        if cancelled.remove(id) != nil { return .cancel }
        if isVisible(receipt) { return .resume }
        waiters[id] = (receipt, continuation)
        return .wait
    }

    mutating func cancel(_ id: Int) -> CheckedContinuation<Void, any Error>? {
        guard let waiter = waiters.removeValue(forKey: id) else {
            cancelled.insert(id)
            return nil
        }
        return waiter.continuation
    }

    mutating func advance(_ offsets: [Int32: Int64]) -> [CheckedContinuation<Void, any Error>] {
        for (partition, next) in offsets { applied[partition] = max(applied[partition] ?? 0, next) }
        var ready: [CheckedContinuation<Void, any Error>] = []
        for (id, waiter) in waiters where isVisible(waiter.receipt) {
            ready.append(waiter.continuation)
            waiters[id] = nil
        }
        return ready
    }
}
