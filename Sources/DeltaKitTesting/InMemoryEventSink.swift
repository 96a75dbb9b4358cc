public import DeltaKit
import Synchronization

/// An `EventSink` that keeps every event in memory: the fake to swap in for `KafkaEventSink`
/// in unit tests.
///
/// It fails where production fails: every event goes through the same wire encoding a Kafka sink uses
/// and is decoded again, as a consumer would read it. So an invalid event (a non-finite number, a value no
/// column can hold, an unsupported field type) is refused with the same `DeltaKitError`, and what
/// ``events`` holds is what a consumer reads back (timestamps truncated to microseconds).
///
/// It records what was sent (``events``), and can be told to fail on demand so that tests can
/// exercise their error paths (``failNextSends(_:with:)``). A failed event is not recorded: like a
/// real sink, nothing is silently kept or dropped.
public final class InMemoryEventSink<Record: ChangeRecord>: EventSink, EncodedEventSending {
    private struct State {
        var events: [ChangeEvent<Record>] = []
        /// The trace headers each event of `events` was sent with (at the same index).
        var traceHeaders: [[TraceHeader]] = []
        var failuresLeft = 0
        var failForever = false
        var failure = DeltaKitError(code: .deliveryFailed, message: "delivery failed (injected by InMemoryEventSink)")
        var flushCount = 0
        var refused: (@Sendable (ChangeEvent<Record>) -> Bool)?
        /// The next offset: events ever recorded (not reset by `popEvents`).
        var offset: Int64 = 0
    }
    private let state = Mutex(State())
    private let onDurable: (@Sendable (ChangeEvent<Record>) async throws -> Void)?

    /// Creates an empty sink.
    ///
    /// - Parameter onDurable: Called with each event once it is recorded, before `send` returns;
    ///   ``InMemoryPipeline`` uses it to apply events to a store. Default: `nil`.
    public init(onDurable: (@Sendable (ChangeEvent<Record>) async throws -> Void)? = nil) {
        self.onDurable = onDurable
    }

    /// Records `event` as a consumer would read it back, or throws the injected failure.
    ///
    /// - Throws: `DeltaKitError` with code `serializationFailed` for an invalid event (exactly as
    ///   `KafkaEventSink` does), or the injected failure.
    /// - Returns: A receipt on partition 0 whose offset is the event's index in ``events``.
    @discardableResult
    public func send(_ event: ChangeEvent<Record>) async throws -> EventReceipt {
        // As `KafkaEventSink` does: the current trace context's headers, none without a span.
        try await record(event, trace: TraceHeaders.current())
    }

    private func record(_ event: ChangeEvent<Record>, trace: [TraceHeader]) async throws -> EventReceipt {
        let wire = try event.jsonData()
        let durable: ChangeEvent<Record>
        do {
            durable = try ChangeEvent<Record>(jsonData: wire)
        } catch {
            throw DeltaKitError(
                code: .serializationFailed,
                message: "\(Record.self) with key \(event.key) does not read back from its own wire form: \(error)",
                underlying: error
            )
        }
        let offset = try state.withLock { state in
            if let refused = state.refused, refused(event) {
                throw DeltaKitError(
                    code: .serializationFailed,
                    message: "\(Record.self) with key \(event.key) refused (injected by InMemoryEventSink)"
                )
            }
            if state.failForever { throw state.failure }
            if state.failuresLeft > 0 {
                state.failuresLeft -= 1
                throw state.failure
            }
            state.events.append(durable)
            state.traceHeaders.append(trace)
            state.offset += 1
            return state.offset - 1
        }
        try await onDurable?(durable)
        return EventReceipt(partition: 0, offset: offset)
    }

    /// Records the events in order; stops at and throws the first injected failure (the events before it
    /// stay recorded, those after it are not sent).
    @discardableResult
    public func send(contentsOf events: [ChangeEvent<Record>]) async throws -> EventReceipt {
        var receipt = EventReceipt()
        let trace = TraceHeaders.current()
        for event in events { receipt = receipt.merging(try await record(event, trace: trace)) }
        return receipt
    }

    /// Records the events in order, `traceHeaders[i]` with `events[i]` (the outbox relay's send, forwarding the
    /// context each event was enqueued in), as ``send(contentsOf:)`` does.
    @discardableResult
    package func send(
        contentsOf events: [ChangeEvent<Record>],
        traceHeaders: [[TraceHeader]]
    ) async throws -> EventReceipt {
        var receipt = EventReceipt()
        for (index, event) in events.enumerated() {
            let trace = index < traceHeaders.count ? traceHeaders[index] : []
            receipt = receipt.merging(try await record(event, trace: trace))
        }
        return receipt
    }

    /// Sends `events` in order, each with its own trace headers; an event already encoded is read back from its
    /// JSON and recorded as the event it holds (JSON that does not decode is refused as unserializable, as
    /// `KafkaEventSink` refuses an event it cannot encode). Package API: the outbox relay's send.
    @discardableResult
    package func send(_ events: [OutgoingEvent<Record>]) async throws -> EventReceipt {
        var receipt = EventReceipt()
        for event in events {
            switch event {
            case .event(let event, let trace):
                receipt = receipt.merging(try await record(event, trace: trace))
            case .encoded(let encoded):
                let decoded: ChangeEvent<Record>
                do {
                    decoded = try ChangeEvent<Record>(jsonData: Array(encoded.json.utf8))
                } catch {
                    throw DeltaKitError(
                        code: .serializationFailed,
                        message: "an encoded \(Record.self) with key \(encoded.key) does not decode: \(error)",
                        underlying: error
                    )
                }
                receipt = receipt.merging(try await record(decoded, trace: encoded.trace))
            }
        }
        return receipt
    }

    /// Sends `events`, all already encoded, as ``send(_:)`` does. Package API: the outbox relay's send.
    @discardableResult
    package func send(encoded events: [EncodedEvent]) async throws -> EventReceipt {
        try await send(events.map { OutgoingEvent<Record>.encoded($0) })
    }

    /// Returns at once: recorded events are already durable.
    public func flush() async throws {
        state.withLock { $0.flushCount += 1 }
    }

    /// Every event recorded so far, in send order.
    public var events: [ChangeEvent<Record>] { state.withLock { $0.events } }

    /// The trace headers each event of ``events`` was sent with, at the same index (none for an event sent
    /// without a trace context).
    package var traceHeaders: [[TraceHeader]] { state.withLock { $0.traceHeaders } }

    /// How many times ``flush()`` was called.
    public var flushCount: Int { state.withLock { $0.flushCount } }

    /// Returns the recorded events and forgets them.
    public func popEvents() -> [ChangeEvent<Record>] {
        state.withLock { state in
            defer {
                state.events.removeAll()
                state.traceHeaders.removeAll()
            }
            return state.events
        }
    }

    /// Forgets recorded events and any pending failure.
    public func clear() {
        state.withLock { $0 = State() }
    }

    /// Makes the next `count` events fail with `error` (default: a `DeltaKitError` with code
    /// `deliveryFailed`, what a sink throws when the broker does not acknowledge an event).
    public func failNextSends(_ count: Int = 1, with error: DeltaKitError? = nil) {
        state.withLock { state in
            state.failuresLeft = count
            if let error { state.failure = error }
        }
    }

    /// Makes every send fail until ``stopFailing()`` — a broker that is down.
    public func failAllSends(with error: DeltaKitError? = nil) {
        state.withLock { state in
            state.failForever = true
            if let error { state.failure = error }
        }
    }

    /// Refuses every event for which `isPoisoned` returns `true` with a `DeltaKitError` of code
    /// `serializationFailed`, as a sink refuses an event it cannot encode (a poisoned event), until
    /// ``stopFailing()``.
    public func refuse(where isPoisoned: @escaping @Sendable (ChangeEvent<Record>) -> Bool) {
        state.withLock { $0.refused = isPoisoned }
    }

    /// Ends injected failures and refusals.
    public func stopFailing() {
        state.withLock { state in
            state.failForever = false
            state.failuresLeft = 0
            state.refused = nil
        }
    }
}
