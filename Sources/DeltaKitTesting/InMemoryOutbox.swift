public import DeltaKit
import Synchronization

/// A `TransactionalOutbox` in memory: the fake to swap in for the PostgreSQL outbox in unit tests. It keeps the
/// outbox's guarantees (``OutboxConformance`` checks it as it checks the PostgreSQL outbox): events enqueued in a
/// transaction become pending when it commits and are discarded when it rolls back; per key they get an order that
/// grows in commit order; ``publishPending(into:)`` publishes pending events into an `EventSink` (an
/// ``InMemoryEventSink``, say) and forgets each once the sink acknowledged it; an event the sink refuses as
/// unserializable stays pending and holds back only its own key. Like the PostgreSQL outbox it keeps the trace
/// context current at each enqueue (the propagation headers the active instrument writes for it) and sends each
/// event with it when the sink takes per-event headers (an ``InMemoryEventSink``, a `KafkaEventSink`).
///
/// ```swift
/// let outbox = InMemoryOutbox<DemoUser>()
/// try await outbox.withTransaction { transaction in
///     try await transaction.enqueue(.update(DemoUser(id: 1, name: "Ada", age: 36), order: 0))
/// }
/// let sink = InMemoryEventSink<DemoUser>()
/// try await outbox.publishPending(into: sink)   // deterministic; or run `relay(into:)` in a task
/// ```
public final class InMemoryOutbox<Record: ChangeRecord>: TransactionalOutbox {
    private struct State {
        /// Committed events not yet published, in commit order.
        var pending: [ChangeEvent<Record>] = []
        /// The trace headers each pending event was enqueued with (at the same index).
        var pendingTrace: [[TraceHeader]] = []
        var lastOrder: [Record.Key: Int64] = [:]
        var blocked: Set<Record.Key> = []
        /// Bumped at every commit, so that a relay that found nothing to do knows whether to look again.
        var commits = 0
    }

    private let state = Mutex(State())

    /// An empty outbox.
    public init() {}

    /// A transaction of an ``InMemoryOutbox``: it holds its events until it commits.
    public final class Transaction: OutboxTransaction {
        private let events = Mutex<[(event: ChangeEvent<Record>, trace: [TraceHeader])]?>([])

        fileprivate init() {}

        /// Adds `event` to the transaction, with the current trace context (none without a span).
        ///
        /// - Throws: `DeltaKitError` with code `serializationFailed` when the event cannot be encoded (as the
        ///   PostgreSQL outbox does); `invalidConfiguration` when the transaction already ended.
        public func enqueue(_ event: ChangeEvent<Record>) async throws {
            _ = try event.jsonData()
            let trace = TraceHeaders.current()
            try events.withLock { events in
                guard events != nil else {
                    throw DeltaKitError(
                        code: .invalidConfiguration,
                        message: "enqueue on an InMemoryOutbox transaction that already ended"
                    )
                }
                events!.append((event, trace))
            }
        }

        fileprivate func end() -> [(event: ChangeEvent<Record>, trace: [TraceHeader])] {
            events.withLock { events in
                defer { events = nil }
                return events ?? []
            }
        }
    }

    /// Runs `body` in a transaction; when it returns, its events become pending at once (with per key an order
    /// above every earlier commit's), when it throws they are discarded.
    public func withTransaction<Result: Sendable>(
        _ body: (Transaction) async throws -> Result
    ) async throws -> Result {
        let transaction = Transaction()
        let result: Result
        do {
            result = try await body(transaction)
        } catch {
            _ = transaction.end()
            throw error
        }
        let events = transaction.end()
        state.withLock { state in
            for (event, trace) in events {
                let order = max(event.order, (state.lastOrder[event.key] ?? 0) + 1)
                state.lastOrder[event.key] = order
                state.pending.append(Self.reordered(event, order: order))
                state.pendingTrace.append(trace)
            }
            state.commits += 1
        }
        return result
    }

    /// The committed events not yet published, in commit order, with the order each is published with.
    public var pending: [ChangeEvent<Record>] { state.withLock { $0.pending } }

    /// The keys held back behind an event the sink refused (in the last ``publishPending(into:)``).
    public var blockedKeys: Set<Record.Key> { state.withLock { $0.blocked } }

    /// Publishes the pending events into `sink`, in commit order, forgetting each once the sink acknowledged it.
    ///
    /// An event the sink refuses with `serializationFailed` stays pending, and so do the later events of its key
    /// (its key is held back, ``blockedKeys``); the other keys' events are published. Each call tries held-back
    /// keys again.
    ///
    /// - Returns: How many events were published.
    /// - Throws: Any other error of the sink; the events acknowledged before it are forgotten, the rest stay.
    @discardableResult
    public func publishPending<Sink: EventSink>(into sink: Sink) async throws -> Int where Sink.Record == Record {
        let (batch, traces) = state.withLock { ($0.pending, $0.pendingTrace) }
        let traced = sink as? any TraceHeaderSending<Record>
        var blocked: Set<Record.Key> = []
        var published = 0
        defer { state.withLock { $0.blocked = blocked } }
        for (index, event) in batch.enumerated() where !blocked.contains(event.key) {
            do {
                if let traced, !traces[index].isEmpty {
                    _ = try await traced.send(contentsOf: [event], traceHeaders: [traces[index]])
                } else {
                    try await sink.send(event)
                }
            } catch let error as DeltaKitError where error.code == .serializationFailed {
                blocked.insert(event.key)
                continue
            }
            published += 1
            // Only this relay removes pending events and commits only append, so the event is still at `index`
            // less the events removed before it.
            state.withLock { state in
                state.pending.remove(at: index - (published - 1))
                state.pendingTrace.remove(at: index - (published - 1))
            }
        }
        return published
    }

    /// Publishes pending events into `sink` until the task is cancelled: ``publishPending(into:)`` whenever a
    /// transaction commits (and every `retryInterval` while keys are held back or the sink failed).
    ///
    /// - Throws: `CancellationError` when cancelled.
    public func relay<Sink: EventSink>(
        into sink: Sink,
        retryInterval: Duration = .milliseconds(50)
    ) async throws where Sink.Record == Record {
        while true {
            try Task.checkCancellation()
            let commits = state.withLock { $0.commits }
            do {
                try await publishPending(into: sink)
            } catch let error where !(error is CancellationError) {
                try await Task.sleep(for: retryInterval)
                continue
            }
            // A fake may poll: wait in short steps until a commit arrives or the held-back keys are due again.
            let clock = ContinuousClock()
            let retryAt = clock.now + retryInterval
            while state.withLock({ $0.commits == commits && ($0.blocked.isEmpty || clock.now < retryAt) }) {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    private static func reordered(_ event: ChangeEvent<Record>, order: Int64) -> ChangeEvent<Record> {
        if let record = event.record {
            return ChangeEvent(operation: event.operation, record: record, order: order, timestamp: event.timestamp)
        }
        return .delete(key: event.key, order: order, timestamp: event.timestamp)
    }
}
