import Synchronization
import Tracing

/// A tracer that exports nothing and propagates a W3C `traceparent`: what `produce --trace` bootstraps to show what
/// tracing costs the producer (swift-distributed-tracing ships no exporting tracer, and an exporter's own cost is
/// not DeltaKit's). Each span gets the parent's trace id, or a new one at the root, and a span id from a counter.
struct PropagatingTracer: Tracer {
    typealias Span = NoOpTracer.NoOpSpan

    /// Spans started so far.
    static let spans = Atomic<UInt64>(0)

    private enum TraceparentKey: ServiceContextKey {
        typealias Value = String
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> Span {
        var context = context()
        let spanID = Self.spans.add(1, ordering: .relaxed).newValue
        let traceID =
            context[TraceparentKey.self].map { String($0.dropFirst(3).prefix(32)) }
            ?? Self.hex(UInt64.random(in: 1...UInt64.max)) + Self.hex(UInt64.random(in: 0...UInt64.max))
        context[TraceparentKey.self] = "00-\(traceID)-\(Self.hex(spanID))-01"
        return Span(context: context)
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext,
        into carrier: inout Carrier,
        using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let traceparent = context[TraceparentKey.self] else { return }
        injector.inject(traceparent, forKey: "traceparent", into: &carrier)
    }

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier,
        into context: inout ServiceContext,
        using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let traceparent = extractor.extract(key: "traceparent", from: carrier) else { return }
        context[TraceparentKey.self] = traceparent
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
