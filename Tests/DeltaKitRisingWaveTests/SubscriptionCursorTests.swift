import DeltaKit
import DeltaKitTesting
import Foundation
import Testing

@testable import DeltaKitRisingWave

@Suite("RisingWave subscription cursor protocol (no server)")
struct SubscriptionCursorTests {
    func cursorRow(_ op: String, epoch: Int64?, id: Int = 1, age: Int = 25) -> SQLRow {
        SQLRow(
            columns: ["id", "name", "age", "event_order", "ts", "op", "rw_timestamp"],
            values: ["\(id)", "Alice", "\(age)", "3", "2024-01-01 00:00:00+00", op, epoch.map(String.init)]
        )
    }

    @Test("subscription rows map to state changes; the first half of an update is dropped but counted")
    func cursorRows() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .snapshot)
        #expect(cursor.declare() == .full)
        let elements = try cursor.receive([
            cursorRow("Insert", epoch: nil, id: 7),
            cursorRow("Insert", epoch: 100),
            cursorRow("UpdateDelete", epoch: 100),
            cursorRow("UpdateInsert", epoch: 100, age: 26),
            cursorRow("Delete", epoch: 200, age: 26),
        ])
        #expect(elements.map(\.change.kind) == [.insert, .insert, .update, .delete])
        #expect(elements.map(\.isSnapshot) == [true, false, false, false])
        #expect(elements.map(\.position?.description) == [nil, "100:1", "100:3", "200:1"])
        #expect(
            elements[3].change == StateChange(kind: .delete, key: 1, record: DemoUser(id: 1, name: "Alice", age: 26))
        )
    }

    @Test("a start from now skips the FULL snapshot; a bare DECLARE is never sent")
    func cursorFromNow() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .now)
        #expect(cursor.declare() == .full)
        let elements = try cursor.receive([cursorRow("Insert", epoch: nil, id: 7), cursorRow("Insert", epoch: 5)])
        #expect(elements.map(\.change.key) == [1])
        let queries = try RisingWavePipeline<DemoUser>(configuration: .init(topic: "t", viewName: "v")).queries
        #expect(
            try queries.declareCursor("c", start: .full) == #"DECLARE "c" SUBSCRIPTION CURSOR FOR "v_changes" FULL"#
        )
        // SINCE is inclusive: resuming at t re-reads epoch t (the skip count removes what was delivered), never t+1.
        #expect(
            try queries.declareCursor("c", start: .since(1_715_669_376_304))
                == #"DECLARE "c" SUBSCRIPTION CURSOR FOR "v_changes" SINCE 1715669376304"#
        )
        #expect(
            try queries.fetchCursor("c", count: 100, timeout: .milliseconds(500)).hasSuffix("WITH (timeout = '1s')")
        )
    }

    @Test("resuming after a position re-reads its epoch and skips exactly what was delivered")
    func cursorResume() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .after(ChangeFeedPosition("100:2")))
        try cursor.checkStart()
        #expect(cursor.declare() == .since(100))
        let elements = try cursor.receive([
            cursorRow("Insert", epoch: 100, id: 1),
            cursorRow("Insert", epoch: 100, id: 2),
            cursorRow("Insert", epoch: 100, id: 3),
            cursorRow("Insert", epoch: 101, id: 4),
        ])
        #expect(elements.map(\.change.key) == [3, 4])
        #expect(elements.map(\.position?.description) == ["100:3", "101:1"])
        #expect(throws: DeltaKitError.self) {
            try SubscriptionCursor<DemoUser>(start: .after(ChangeFeedPosition("inmemory:3"))).checkStart()
        }
    }

    @Test("a lost session resumes from the last row received; during a snapshot it cannot")
    func cursorSessionLost() throws {
        let lost = DeltaKitError(code: .connectionFailed, message: "gone")
        var cursor = SubscriptionCursor<DemoUser>(start: .snapshot)
        _ = cursor.declare()
        _ = try cursor.receive([cursorRow("Insert", epoch: nil, id: 7)])
        #expect {
            try cursor.sessionLost(lost)
        } throws: { error in
            (error as? DeltaKitError)?.code == .changesUnavailable
        }
        _ = try cursor.receive([cursorRow("Insert", epoch: 300, id: 1), cursorRow("Insert", epoch: 300, id: 2)])
        try cursor.sessionLost(lost)
        #expect(cursor.declare() == .since(300))
        let again = try cursor.receive([
            cursorRow("Insert", epoch: 300, id: 1), cursorRow("Insert", epoch: 300, id: 2),
            cursorRow("Delete", epoch: 301, id: 2),
        ])
        #expect(again.map(\.change.kind) == [.delete])
        // A fresh "now" feed that lost its session before any change declares FULL again.
        var fresh = SubscriptionCursor<DemoUser>(start: .now)
        _ = fresh.declare()
        try fresh.sessionLost(lost)
        #expect(fresh.declare() == .full)
    }
}
