public import DeltaKit
import Foundation

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
    /// A fresh sink for ``ScalarSample`` records and a way to read back what became durable in it.
    public typealias ScalarSinkFactory =
        @Sendable () async throws -> (
            sink: any EventSink<ScalarSample>,
            readBack: @Sendable () async throws -> [ChangeEvent<ScalarSample>]
        )

    private let makeSink: @Sendable () async throws -> Sink
    private let readBack: @Sendable (Sink) async throws -> [ChangeEvent<DemoUser>]
    private let makeScalarSink: ScalarSinkFactory?

    /// Creates the suite.
    ///
    /// - Parameters:
    ///   - makeSink: Returns a fresh, empty sink (a new topic, say); called once per check.
    ///   - readBack: Returns every event durable in the sink, in any order across keys but in per-key order.
    ///   - makeScalarSink: Returns a fresh sink of ``ScalarSample`` records with its read-back. When given,
    ///     the suite also checks that every scalar kind reads back in its canonical form
    ///     (`ChangeEvent.canonicalized()`) and that invalid events are refused with
    ///     `serializationFailed` and never become durable. Default: `nil`.
    public init(
        makeSink: @escaping @Sendable () async throws -> Sink,
        readBack: @escaping @Sendable (Sink) async throws -> [ChangeEvent<DemoUser>],
        makeScalarSink: ScalarSinkFactory? = nil
    ) {
        self.makeSink = makeSink
        self.readBack = readBack
        self.makeScalarSink = makeScalarSink
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
        if let makeScalarSink { await Self.scalarChecks(makeScalarSink, &runner) }
        return try runner.finish()
    }

    private static func scalarChecks(_ makeScalarSink: ScalarSinkFactory, _ runner: inout CheckRunner) async {
        await runner.check("every scalar kind reads back as a consumer decodes it") {
            let (sink, readBack) = try await makeScalarSink()
            // Sub-microsecond date, a float and a decimal that go through decimal text, enums, UUID, URL, nil.
            let events: [ChangeEvent<ScalarSample>] = [
                .insert(
                    ScalarSample(id: 1, ratio: 0.1, at: Date(timeIntervalSince1970: 1_704_067_200.1234567)),
                    order: 1
                ),
                .update(
                    ScalarSample(
                        id: 2,
                        label: "ünïcødé \"quoted\" \\ \n",
                        score: -0.0,
                        ratio: nil,
                        amount: Decimal(string: "-0.000001")!,
                        status: .suspended,
                        tier: .free,
                        flag: false,
                        small: .min,
                        big: nil,
                        link: nil
                    ),
                    order: 2
                ),
                .delete(key: 3, order: 3),
            ]
            try await sink.send(contentsOf: events)
            try await sink.flush()
            let expected = try events.map { try $0.canonicalized() }
            let got = try await readBack().sorted { $0.order < $1.order }
            if got != expected { return "expected \(expected), read back \(got)" }
            if got[0].record?.at == events[0].record?.at { return "the sub-microsecond date was not truncated" }
            return nil
        }
        await runner.check("invalid events are refused with serializationFailed and never become durable") {
            let (sink, readBack) = try await makeScalarSink()
            let invalid: [(String, ChangeEvent<ScalarSample>)] = [
                ("NaN", .insert(ScalarSample(id: 1, score: .nan), order: 1)),
                ("infinity", .insert(ScalarSample(id: 2, ratio: .infinity), order: 2)),
                ("UInt64.max", .insert(ScalarSample(id: 3, big: .max), order: 3)),
            ]
            for (what, event) in invalid {
                do {
                    try await sink.send(event)
                    return "a record with \(what) was accepted"
                } catch let error as DeltaKitError where error.code == .serializationFailed {
                    continue
                } catch {
                    return "a record with \(what) failed with \(error), expected serializationFailed"
                }
            }
            try await sink.flush()
            let got = try await readBack()
            return got.isEmpty ? nil : "invalid events became durable: \(got)"
        }
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
