package import Instrumentation

/// One propagation header of a trace context (`traceparent`, `tracestate`, or whatever the bootstrapped instrument
/// writes), as it travels with an event: a Kafka header, a column of an outbox row.
package struct TraceHeader: Sendable, Hashable {
    /// The header's name.
    package var name: String
    /// The header's value.
    package var value: String

    package init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Carries trace contexts across the boundaries DeltaKit crosses — an outbox row, a Kafka message — with the
/// active instrument's own propagation (`InstrumentationSystem.instrument`, or the tracer of an enclosing
/// `withTracer`), so that any tracer's format works, W3C trace context or another.
package enum TraceHeaders {
    /// The headers the active instrument writes for the current `ServiceContext`; empty when there is no current
    /// context (no span is active), so that an application without tracing pays one task-local read and adds no
    /// header.
    @inline(__always)
    package static func current() -> [TraceHeader] {
        guard let context = ServiceContext.current else { return [] }
        return inject(context)
    }

    /// Whether an instrument other than the no-op one is active in the calling task (bootstrapped, or bound by
    /// an enclosing `withTracer`): without one, no context is ever extracted, so a reader need not look for
    /// headers.
    package static var instrumentActive: Bool { !(InstrumentationSystem.instrument is NoOpInstrument) }

    /// The headers the active instrument writes for `context` (none with the no-op instrument).
    package static func inject(_ context: ServiceContext) -> [TraceHeader] {
        var headers: [TraceHeader] = []
        InstrumentationSystem.instrument.inject(context, into: &headers, using: HeaderInjector())
        return headers
    }

    /// The context the active instrument reads from `headers`; `nil` when there are none or it finds nothing.
    package static func context(from headers: [TraceHeader]) -> ServiceContext? {
        guard !headers.isEmpty else { return nil }
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: HeaderExtractor())
        return context.isEmpty ? nil : context
    }

    /// Headers as one text value, for a database column: one `name: value` line per header (neither holds a line
    /// break — propagation headers are HTTP header fields).
    package static func text(_ headers: [TraceHeader]) -> String? {
        guard !headers.isEmpty else { return nil }
        return headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }

    /// The headers of ``text(_:)``.
    package static func headers(text: String) -> [TraceHeader] {
        text.split(separator: "\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            return TraceHeader(name: String(line[..<colon]), value: String(value))
        }
    }

    private struct HeaderInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [TraceHeader]) {
            carrier.append(TraceHeader(name: key, value: value))
        }
    }

    private struct HeaderExtractor: Extractor {
        func extract(key: String, from carrier: [TraceHeader]) -> String? {
            carrier.first { $0.name.lowercased() == key.lowercased() }?.value
        }
    }
}

/// A sink that can send events each with its own trace headers (the headers of the span that wrote it, as an
/// outbox row keeps them), rather than the current context's: the outbox relay sends through it when its sink is
/// one.
package protocol TraceHeaderSending<Record>: EventSink {
    /// Sends `events` in order, `traceHeaders[i]` with `events[i]` (no headers when empty), as
    /// `send(contentsOf:)` does.
    func send(contentsOf events: [ChangeEvent<Record>], traceHeaders: [[TraceHeader]]) async throws -> EventReceipt
}
