public import DeltaKit
import InMemoryTracing
import Synchronization
import Tracing

/// A reusable conformance suite for `TransactionalOutbox` implementations and their relays.
///
/// Give it a fresh outbox and a way to run the outbox's relay into a sink until cancelled:
///
/// ```swift
/// try await OutboxConformance(
///     makeOutbox: { InMemoryOutbox<DemoUser>() },
///     relay: { outbox, sink in try await outbox.relay(into: sink) }
/// ).run()   // throws ConformanceFailure listing every failed check
/// ```
///
/// It checks that committed events are published and rolled-back ones never are; that per key events are
/// published in commit order with orders that grow in that order; that an event the sink refuses as unserializable
/// holds back only its own key; that a relay restarted part-way loses nothing; that an event committed after
/// an event enqueued later than it is not skipped; and that an event enqueued inside a span reaches the sink with
/// that span's trace context (an event enqueued outside any span with none). The trace check binds
/// swift-distributed-tracing's `InMemoryTracer` with `withTracer` around the enqueue and the relay; a relay that
/// forwards per-event context does so through the sink's per-event headers (see ``InMemoryEventSink``). The sink is an ``InMemoryEventSink`` (poisoned events are
/// refused with ``InMemoryEventSink/refuse(where:)``), so a relay generic over `EventSink` runs as in production.
///
/// It is framework-neutral: it throws instead of calling `#expect` or `XCTAssert`. Each check waits for the relay
/// at most `timeout`.
public struct OutboxConformance<Outbox: TransactionalOutbox>: Sendable where Outbox.Record == DemoUser {
    private let makeOutbox: @Sendable () async throws -> Outbox
    private let relay: @Sendable (Outbox, InMemoryEventSink<DemoUser>) async throws -> Void
    private let timeout: Duration

    /// Creates the suite.
    ///
    /// - Parameters:
    ///   - makeOutbox: Returns a fresh, empty outbox; called once per check.
    ///   - relay: Publishes the outbox's committed events into the sink until the task is cancelled (a relay whose
    ///     held-back keys are retried at most every few seconds is fine: the suite never waits for a retry).
    ///   - timeout: How long a check waits for the relay to publish what it expects. Default: 60 seconds.
    public init(
        makeOutbox: @escaping @Sendable () async throws -> Outbox,
        relay: @escaping @Sendable (Outbox, InMemoryEventSink<DemoUser>) async throws -> Void,
        timeout: Duration = .seconds(60)
    ) {
        self.makeOutbox = makeOutbox
        self.relay = relay
        self.timeout = timeout
    }

    private struct Rollback: Error {}

    private static func user(_ id: Int, _ name: String) -> ChangeEvent<DemoUser> {
        .update(DemoUser(id: id, name: name, age: 30), order: 0)
    }

    /// Runs every check and returns the names of those that passed.
    ///
    /// - Throws: ``ConformanceFailure`` naming each failed check.
    @discardableResult
    public func run() async throws -> [String] {
        var runner = CheckRunner(suite: "OutboxConformance<\(Outbox.self)>")
        await runner.check("committed events are published, rolled-back ones never") {
            let outbox = try await makeOutbox()
            for id in 1...12 {
                do {
                    try await outbox.withTransaction { transaction in
                        try await transaction.enqueue(Self.user(id, "n\(id)"))
                        if id.isMultiple(of: 3) { throw Rollback() }
                    }
                } catch is Rollback {}
            }
            // A marker committed last: once it is published, everything committed before it was considered.
            try await outbox.withTransaction { try await $0.enqueue(Self.user(99, "marker")) }
            let sink = InMemoryEventSink<DemoUser>()
            return try await relaying(outbox, into: sink) {
                guard try await waitUntil({ sink.events.contains { $0.key == 99 } }) else {
                    return "the marker was not published; published \(sink.events.map(\.key))"
                }
                try await waitUntil({ sink.events.count >= 9 })
                let expected = Set((1...12).filter { !$0.isMultiple(of: 3) } + [99])
                let got = Set(sink.events.map(\.key))
                return got == expected ? nil : "expected keys \(expected.sorted()), published \(got.sorted())"
            }
        }
        await runner.check("per key, events are published in commit order with growing orders") {
            let outbox = try await makeOutbox()
            var expected: [Int: [String]] = [:]
            var random = SeededRandomNumberGenerator(seed: 11)
            for n in 0..<30 {
                let key = Int.random(in: 1...3, using: &random)
                let name = "c\(n)"
                expected[key, default: []].append(name)
                // The event's own order falls, so only the outbox can make the orders grow.
                try await outbox.withTransaction { transaction in
                    try await transaction.enqueue(
                        .update(DemoUser(id: key, name: name, age: 30), order: 100 - Int64(n))
                    )
                }
            }
            let sink = InMemoryEventSink<DemoUser>()
            return try await relaying(outbox, into: sink) {
                guard try await waitUntil({ sink.events.count >= 30 }) else {
                    return "published \(sink.events.count) of 30 events"
                }
                var got: [Int: [String]] = [:]
                for event in sink.events { got[event.key, default: []].append(event.record?.name ?? "") }
                if got != expected { return "per key, expected \(expected), published \(got)" }
                for key in 1...3 {
                    let orders = sink.events.filter { $0.key == key }.map(\.order)
                    if orders != orders.sorted() || Set(orders).count != orders.count {
                        return "key \(key)'s orders do not grow: \(orders)"
                    }
                }
                return nil
            }
        }
        await runner.check("a poisoned event holds back only its own key") {
            let outbox = try await makeOutbox()
            for (id, name) in [(6, "before"), (7, "poison"), (7, "behind the poison"), (8, "after"), (6, "after")] {
                try await outbox.withTransaction { try await $0.enqueue(Self.user(id, name)) }
            }
            let sink = InMemoryEventSink<DemoUser>()
            sink.refuse { $0.record?.name == "poison" }
            return try await relaying(outbox, into: sink) {
                guard try await waitUntil({ sink.events.count >= 3 }) else {
                    return "the other keys were not published: \(sink.events.map(\.key))"
                }
                // A marker committed after the poison is published too, and key 7 still is not.
                try await outbox.withTransaction { try await $0.enqueue(Self.user(9, "marker")) }
                guard try await waitUntil({ sink.events.contains { $0.key == 9 } }) else {
                    return "a key committed after the poison was not published"
                }
                // At least once: a relay may publish an event again (the merge ignores the replay), so compare the
                // first publication of each.
                var got: [String] = []
                for event in sink.events {
                    let item = "\(event.key):\(event.record?.name ?? "")"
                    if !got.contains(item) { got.append(item) }
                }
                let expected = ["6:before", "8:after", "6:after", "9:marker"]
                return got == expected ? nil : "expected \(expected), published \(got)"
            }
        }
        await runner.check("a relay restarted part-way loses nothing") {
            let outbox = try await makeOutbox()
            var committed: Set<String> = []
            for n in 0..<40 {
                try await outbox.withTransaction { try await $0.enqueue(Self.user(n % 8, "r\(n)")) }
                committed.insert("r\(n)")
            }
            let first = InMemoryEventSink<DemoUser>()
            // The first relay is stopped once it published something: part-way or at the end, whichever it reached.
            let stopped = try await relaying(outbox, into: first) {
                try await waitUntil({ !first.events.isEmpty }) ? nil : "the first relay published nothing"
            }
            if let stopped { return stopped }
            for n in 40..<60 {
                try await outbox.withTransaction { try await $0.enqueue(Self.user(n % 8, "r\(n)")) }
                committed.insert("r\(n)")
            }
            let second = InMemoryEventSink<DemoUser>()
            return try await relaying(outbox, into: second) {
                let published = { Set((first.events + second.events).compactMap { $0.record?.name }) }
                guard try await waitUntil({ published().isSuperset(of: committed) }) else {
                    return "lost across the restart: \(committed.subtracting(published()).sorted())"
                }
                for key in 0..<8 {
                    let orders = second.events.filter { $0.key == key }.map(\.order)
                    if orders != orders.sorted() { return "after the restart key \(key)'s orders fall: \(orders)" }
                }
                return nil
            }
        }
        await runner.check("an event committed after a later-enqueued one is not skipped") {
            let outbox = try await makeOutbox()
            let (enqueued, enqueuedContinuation) = AsyncStream<Void>.makeStream()
            let (commit, commitContinuation) = AsyncStream<Void>.makeStream()
            let late = Task {
                // Also when the transaction fails before enqueueing: the check then goes on and reports it.
                defer { enqueuedContinuation.finish() }
                try await outbox.withTransaction { transaction in
                    try await transaction.enqueue(Self.user(1, "late"))
                    enqueuedContinuation.yield()
                    for await _ in commit { break }
                }
            }
            defer { late.cancel() }
            for await _ in enqueued { break }
            try await outbox.withTransaction { try await $0.enqueue(Self.user(2, "early")) }
            let sink = InMemoryEventSink<DemoUser>()
            return try await relaying(outbox, into: sink) {
                guard try await waitUntil({ sink.events.contains { $0.key == 2 } }) else {
                    commitContinuation.finish()
                    return "the early commit was not published"
                }
                commitContinuation.yield()
                try await late.value
                guard try await waitUntil({ sink.events.contains { $0.key == 1 } }) else {
                    return "the late commit was skipped; published \(sink.events.map(\.key))"
                }
                let got = sink.events.map(\.key)
                return got == [2, 1] ? nil : "expected keys [2, 1], published \(got)"
            }
        }
        await runner.check("an event enqueued in a span is published with that span's trace context") {
            let outbox = try await makeOutbox()
            // Bound to these tasks only (task-local): a process can bootstrap one tracer, and tests run in parallel.
            let tracer = InMemoryTracer()
            let traceID = try await withTracer(tracer) {
                try await withSpan("write user 1") { span in
                    try await outbox.withTransaction { try await $0.enqueue(Self.user(1, "traced")) }
                    return span.context.inMemorySpanContext?.traceID ?? ""
                }
            }
            try await outbox.withTransaction { try await $0.enqueue(Self.user(2, "untraced")) }
            let sink = InMemoryEventSink<DemoUser>()
            return try await withTracer(tracer) {
                try await relaying(outbox, into: sink) {
                    guard try await waitUntil({ Set(sink.events.map(\.key)).isSuperset(of: [1, 2]) }) else {
                        return "published \(sink.events.map(\.key)), expected keys 1 and 2"
                    }
                    let events = sink.events
                    let headers = sink.traceHeaders
                    let traced = events.indices.filter { events[$0].key == 1 }
                    let untraced = events.indices.filter { events[$0].key == 2 }
                    if let index = traced.first(where: { !headers[$0].contains { $0.value.contains(traceID) } }) {
                        return "the event enqueued in the span (trace \(traceID)) was published with \(headers[index])"
                    }
                    if let index = untraced.first(where: { !headers[$0].isEmpty }) {
                        return "the event enqueued outside any span was published with \(headers[index])"
                    }
                    return nil
                }
            }
        }
        return try runner.finish()
    }

    /// Runs the relay into `sink` while `body` runs, then cancels it and waits for it to end.
    private func relaying(
        _ outbox: Outbox,
        into sink: InMemoryEventSink<DemoUser>,
        _ body: () async throws -> String?
    ) async throws -> String? {
        let running = Task { try await relay(outbox, sink) }
        let outcome: Result<String?, any Error>
        do {
            outcome = .success(try await body())
        } catch {
            outcome = .failure(error)
        }
        running.cancel()
        _ = await running.result
        return try outcome.get()
    }

    /// Polls `condition` until it holds (`true`) or the suite's timeout passes (`false`).
    @discardableResult
    private func waitUntil(_ condition: () async throws -> Bool) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !(try await condition()) {
            guard clock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }
}
