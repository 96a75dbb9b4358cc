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

    @Test("RisingWave epochs convert to rw_timestamp milliseconds as the server does")
    func epochs() {
        // Epoch::from_unix_millis: milliseconds since 2021-04-01T00:00:00Z, shifted left by 16 bits.
        let epoch: Int64 = (1_715_669_376_304 - 1_617_235_200_000) << 16
        #expect(PipelineQueries.rwTimestamp(ofEpoch: epoch) == 1_715_669_376_304)
        // The low 16 bits (spill counters) are not part of the time.
        #expect(PipelineQueries.rwTimestamp(ofEpoch: epoch + 65_535) == 1_715_669_376_304)
    }

    @Test("an update whose record did not change (only the event's order or time) is no visible change")
    func unchangedUpdate() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .after(ChangeFeedPosition("100:0")))
        _ = cursor.declare()
        // The UpdateDelete and its UpdateInsert split across two FETCHes.
        #expect(try cursor.receive([cursorRow("UpdateDelete", epoch: 100, age: 25)]).isEmpty)
        #expect(try cursor.receive([cursorRow("UpdateInsert", epoch: 100, age: 25)]).isEmpty)
        let changed = try cursor.receive([
            cursorRow("UpdateDelete", epoch: 101, age: 25), cursorRow("UpdateInsert", epoch: 101, age: 26),
        ])
        #expect(changed.map(\.change.record?.age) == [26])
        // The skipped rows still count for the position.
        #expect(changed.map(\.position?.description) == ["101:2"])
    }

    @Test("a start from now declares SINCE the first millisecond after the view's committed epoch, never bare or FULL")
    func cursorFromNow() throws {
        var cursor = SubscriptionCursor<DemoUser>(start: .now)
        #expect(cursor.needsCommittedEpoch)
        cursor.startAfter(committedEpoch: (1_715_669_376_304 - 1_617_235_200_000) << 16)
        #expect(!cursor.needsCommittedEpoch)
        #expect(cursor.declare() == .since(1_715_669_376_305))
        let elements = try cursor.receive([cursorRow("Insert", epoch: 1_715_669_377_000)])
        #expect(elements.map(\.change.key) == [1])
        // A row without an epoch cannot come from a SINCE cursor.
        #expect(throws: RisingWaveDecodingError.self) { _ = try cursor.receive([cursorRow("Insert", epoch: nil)]) }
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
        // The committed epoch is the view's own, in the schema its unqualified name resolves to.
        #expect(queries.viewName == "v")
        #expect(queries.committedEpoch.contains("rw_catalog.rw_hummock_snapshot"))
        #expect(queries.committedEpoch.contains("n.name = current_schema()"))
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
        // A declaration that failed and is made again still passes over what was delivered.
        var again = SubscriptionCursor<DemoUser>(start: .after(ChangeFeedPosition("100:2")))
        #expect(again.declare() == .since(100))
        #expect(again.declare() == .since(100))
        let afterRetry = try again.receive([
            cursorRow("Insert", epoch: 100, id: 1), cursorRow("Insert", epoch: 100, id: 2),
            cursorRow("Insert", epoch: 100, id: 3),
        ])
        #expect(afterRetry.map(\.change.key) == [3])
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
        // A "now" feed that lost its session before any change declares SINCE the time it started again: the changes
        // committed in between are delivered, not skipped by a new start from now.
        var fresh = SubscriptionCursor<DemoUser>(start: .now)
        fresh.startAfter(committedEpoch: 5 << 16)
        #expect(fresh.declare() == .since(1_617_235_200_006))
        try fresh.sessionLost(lost)
        #expect(!fresh.needsCommittedEpoch)
        #expect(fresh.declare() == .since(1_617_235_200_006))
        let missed = try fresh.receive([cursorRow("Insert", epoch: 1_617_235_200_100, id: 9)])
        #expect(missed.map(\.change.key) == [9])
    }

    /// A statement error as RisingWave v3.0.3 sends it: SQLSTATE XX000, the message wrapped by pgwire.
    func serverError(
        _ message: String,
        wrapper: String = "Failed to execute the statement",
        sqlState: String? = "XX000"
    )
        -> DeltaKitError
    {
        let error = RisingWaveError(sqlState: sqlState, message: "\(wrapper)\n\nCaused by:\n  \(message)")
        return DeltaKitError(code: .queryFailed, message: error.description, underlying: error)
    }

    @Test(
        "RisingWave's cursor errors are told apart by their words (all XX000): redeclare, retry, or changes gone",
        arguments: [
            (
                "internal error: Cannot find cursor `deltakit_feed_1a2b3c4d`", "Failed to prepare the statement",
                "redeclare"
            ),
            (
                "internal error: The cursor has exceeded its maximum lifetime, please recreate it (close then declare cursor).",
                "Failed to execute the statement", "redeclare"
            ),
            (
                "internal error: Cursor is in invalid state. Please close and re-create the cursor.",
                "Failed to execute the statement", "redeclare"
            ),
            (
                "Catalog error: rw_timestamp is too small, need to be large than the current unix_millis - subscription's retention time",
                "Failed to run the query", "changesGone"
            ),
            (
                "Catalog error:  No data found for rw_timestamp 1715669376304, data may have been recycled, please recreate cursor",
                "Failed to execute the statement", "changesGone"
            ),
            (
                "Catalog error: rw_timestamp is too large, need to be less than the current unix_millis",
                "Failed to run the query", "retryLater"
            ),
            ("Catalog error: subscription not found: v_changes", "Failed to run the query", "fatal"),
        ]
    )
    func cursorErrors(message: String, wrapper: String, expected: String) {
        let failure = SubscriptionCursor<DemoUser>.failure(of: serverError(message, wrapper: wrapper))
        #expect("\(failure)" == expected)
    }

    @Test("a lost connection and PostgreSQL's missing cursor redeclare; other errors end the feed")
    func otherFailures() {
        typealias Cursor = SubscriptionCursor<DemoUser>
        #expect(Cursor.failure(of: DeltaKitError(code: .connectionFailed, message: "gone")) == .redeclare)
        let lost = RisingWaveError(sqlState: "57P01", message: "terminating connection", isConnectionError: true)
        #expect(Cursor.failure(of: DeltaKitError(code: .queryFailed, message: "x", underlying: lost)) == .redeclare)
        // libpq can hand over the server's last words before it marks the connection bad.
        #expect(
            Cursor.failure(of: serverError("terminating connection due to administrator command", sqlState: "57P01"))
                == .redeclare
        )
        let postgres = serverError(#"cursor "c" does not exist"#, sqlState: "34000")
        #expect(Cursor.failure(of: postgres) == .redeclare)
        #expect(Cursor.failure(of: serverError("division by zero", sqlState: "22012")) == .fatal)
        #expect(Cursor.failure(of: CancellationError()) == .fatal)
        // Changes gone end the feed with changesUnavailable, naming the position.
        var cursor = Cursor(start: .after(ChangeFeedPosition("1000:3")))
        _ = cursor.declare()
        let gone = cursor.changesGone(serverError("Catalog error: rw_timestamp is too small"))
        #expect(gone.code == .changesUnavailable)
        #expect(gone.message.contains("after epoch 1000"))
    }
}
