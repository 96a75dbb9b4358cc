import DeltaKit
import DeltaKitSQLite
import DeltaKitTesting
import Foundation
import InMemoryTracing
import Testing
import Tracing

/// A change applied inside a span reaches the store's own change feed with that span's context, as the in-memory
/// store's changes do; the file keeps no context, so another store object's feed of the same file has none. The
/// tracer is bound with `withTracer` (task-local): tests run in parallel in one process.
@Suite("SQLiteStateStore: trace context on its own change feed's elements")
struct SQLiteTraceContextTests {
    @Test("batches and single events applied in spans carry their trace; outside a span, or another store's feed, none")
    func feedElementsCarryTheirTrace() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("traced.sqlite")
        let store = try SQLiteStateStore<DemoUser>(configuration: .init(path: path, source: "user-events"))
        var feed = try await store.changes(from: .now).makeAsyncIterator()
        let reader = try SQLiteStateStore<DemoUser>(
            configuration: .init(path: path, source: "user-events", readOnly: true)
        )
        var readerFeed = try await reader.changes(from: .now).makeAsyncIterator()
        let tracer = InMemoryTracer()
        let timestamp = Date(timeIntervalSince1970: 1_796_000_000)
        func user(_ id: Int, _ name: String, order: Int64) -> ChangeEvent<DemoUser> {
            .insert(DemoUser(id: id, name: name, age: 30), order: order, timestamp: timestamp)
        }

        let batchTrace = try await withTracer(tracer) {
            try await withSpan("materialize batch") { span in
                try await store.apply(contentsOf: [user(1, "a", order: 1), user(2, "b", order: 2)], positions: [0: 2])
                return try #require(span.context.inMemorySpanContext).traceID
            }
        }
        try await store.apply(contentsOf: [user(3, "untraced", order: 3)])
        let singleTrace = try await withTracer(tracer) {
            try await withSpan("apply one") { span in
                _ = try await store.apply(user(1, "a again", order: 4))
                return try #require(span.context.inMemorySpanContext).traceID
            }
        }
        // Inside a span, but a change that is not visible (an older order): no change, nothing recorded.
        try await withTracer(tracer) {
            try await withSpan("stale") { _ in _ = try await store.apply(user(2, "stale", order: 1)) }
        }
        try await store.apply(user(4, "last", order: 5))
        #expect(batchTrace != singleTrace)

        var elements: [ChangeFeedElement<DemoUser>] = []
        while elements.count < 5, let element = try await feed.next() { elements.append(element) }
        let traces = elements.map { element in
            "\(element.change.key):\(element.traceContext?.inMemorySpanContext?.traceID ?? "none")"
        }
        #expect(traces == ["1:\(batchTrace)", "2:\(batchTrace)", "3:none", "1:\(singleTrace)", "4:none"])

        var read: [ChangeFeedElement<DemoUser>] = []
        while read.count < 5, let element = try await readerFeed.next() { read.append(element) }
        #expect(read.map(\.change) == elements.map(\.change), "the same changes from the file")
        #expect(read.allSatisfy { $0.traceContext == nil }, "another store object's feed: the file keeps no trace")
    }
}
