public import DeltaKit

/// A reusable conformance suite for `EventSink` implementations.
///
/// Every backend runs it against its own instance, with a way to read back what became durable:
///
/// ```swift
/// let suite = EventSinkConformance(
///     makeSink: { try await KafkaEventSink<DemoUser>(configuration: .init(topic: uniqueTopic())) },
///     readBack: { sink in try await readTopic(sink.topic) }
/// )
/// let passed = try await suite.run()   // throws ConformanceFailure listing every failed check
/// ```
///
/// It is framework-neutral: it throws instead of calling `#expect` or `XCTAssert`.
public struct EventSinkConformance<Sink: EventSink>: Sendable where Sink.Record == DemoUser {
    private let makeSink: @Sendable () async throws -> Sink
    private let readBack: @Sendable (Sink) async throws -> [ChangeEvent<DemoUser>]

    /// Creates the suite.
    ///
    /// - Parameters:
    ///   - makeSink: Returns a fresh, empty sink (a new topic, say); called once per check.
    ///   - readBack: Returns every event durable in the sink, in any order across keys but in per-key order.
    public init(
        makeSink: @escaping @Sendable () async throws -> Sink,
        readBack: @escaping @Sendable (Sink) async throws -> [ChangeEvent<DemoUser>]
    ) {
        self.makeSink = makeSink
        self.readBack = readBack
    }

    /// Runs every check and returns the names of those that passed.
    ///
    /// - Throws: ``ConformanceFailure`` naming each failed check.
    @discardableResult
    public func run() async throws -> [String] {
        var runner = CheckRunner(suite: "EventSinkConformance<\(Sink.self)>")
        await runner.check("send one event") {
            let sink = try await makeSink()
            var generator = DemoEventGenerator(seed: 1)
            let event = generator.next()
            try await sink.send(event)
            try await sink.flush()
            let got = try await readBack(sink)
            return got == [event] ? nil : "expected [\(event)], read back \(got)"
        }
        await runner.check("send a delete") {
            let sink = try await makeSink()
            let event = ChangeEvent<DemoUser>.delete(key: 7, order: 42)
            try await sink.send(event)
            try await sink.flush()
            let got = try await readBack(sink)
            return got == [event] ? nil : "expected [\(event)], read back \(got)"
        }
        await runner.check("batch keeps every event and per-key order") {
            let sink = try await makeSink()
            var generator = DemoEventGenerator(seed: 2, users: 10)
            let events = generator.next(500)
            try await sink.send(contentsOf: events)
            try await sink.flush()
            return Self.compare(sent: events, got: try await readBack(sink))
        }
        await runner.check("single sends and batches interleave") {
            let sink = try await makeSink()
            var generator = DemoEventGenerator(seed: 3, users: 4)
            let events = generator.next(40)
            try await sink.send(events[0])
            try await sink.send(contentsOf: Array(events[1..<20]))
            try await sink.send(events[20])
            try await sink.send(contentsOf: Array(events[21...]))
            try await sink.flush()
            return Self.compare(sent: events, got: try await readBack(sink))
        }
        await runner.check("empty batch and repeated flush") {
            let sink = try await makeSink()
            try await sink.send(contentsOf: [])
            try await sink.flush()
            try await sink.flush()
            let got = try await readBack(sink)
            return got.isEmpty ? nil : "expected nothing, read back \(got.count) events"
        }
        return try runner.finish()
    }

    /// Compares as multisets and per key in order.
    package static func compare(sent: [ChangeEvent<DemoUser>], got: [ChangeEvent<DemoUser>]) -> String? {
        guard sent.count == got.count else { return "sent \(sent.count) events, read back \(got.count)" }
        let sentByKey = Dictionary(grouping: sent, by: \.key)
        let gotByKey = Dictionary(grouping: got, by: \.key)
        for (key, events) in sentByKey where gotByKey[key] != events {
            return "key \(key): sent orders \(events.map(\.order)), read back \((gotByKey[key] ?? []).map(\.order))"
        }
        return nil
    }
}
