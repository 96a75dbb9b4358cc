import DeltaKit

/// The subscription-cursor protocol as a value: which cursor to declare, what the fetched rows mean, and what a
/// failed statement means for the feed. No I/O, so every rule below is unit-tested without a RisingWave.
///
/// The feed always holds a position once it has one to hold — from a start at a position, after its first change
/// row, and for a start from now from the moment it starts (the first epoch after the view's committed one) — and
/// a new session declares `SINCE` that position. Only a snapshot start declares `FULL`, and only until it has a
/// position.
struct SubscriptionCursor<Record: ChangeRecord> {
    private let start: ChangeFeedStart
    /// Where to resume: an epoch's `rw_timestamp` and how many of its rows were received.
    private var position: (epoch: Int64, rows: Int)?
    /// After a `SINCE t` declaration: the rows of epoch `t` to pass over (received before).
    private var skip: (epoch: Int64, rows: Int)?
    /// The rows of one epoch counted since the declaration.
    private var counted: (epoch: Int64, rows: Int)?
    /// Whether the current cursor was declared `FULL` (its snapshot rows have a NULL `rw_timestamp`).
    private var declaredFull = false
    /// Whether snapshot rows were handed out (a lost session then cannot resume until a change gives a position).
    private var deliveredSnapshot = false
    /// The record an `UpdateDelete` row removed, until its `UpdateInsert` (the next row; a `FETCH` or a new session
    /// may come between them).
    private var updatedFrom: Record?
    private var startError: (any Error)?

    init(start: ChangeFeedStart) {
        self.start = start
        if case .after(let resume) = start {
            if let parsed = Self.parse(resume) {
                position = parsed
            } else {
                startError = DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "change feed position '\(resume)' is not a RisingWave position (epoch:rows, as this feed reports)"
                )
            }
        }
    }

    /// Throws when the start position was malformed.
    func checkStart() throws { if let startError { throw startError } }

    /// `true` for a start from now that holds no position yet: read the view's committed epoch
    /// (`PipelineQueries.committedEpoch`) and pass it to ``startAfter(committedEpoch:)`` before ``declare()``.
    var needsCommittedEpoch: Bool { start == .now && position == nil }

    /// Holds the first epoch after the view's committed epoch `epoch` (RisingWave's epoch form): a cursor declared
    /// `SINCE` it reads every change not yet committed when the feed started — the open epoch's included, which a
    /// cursor declared without `SINCE` (at `Epoch::now()`) would skip — and nothing committed before.
    mutating func startAfter(committedEpoch epoch: Int64) {
        position = (PipelineQueries.rwTimestamp(ofEpoch: epoch) + 1, 0)
    }

    /// The declaration for a new session: `SINCE` the held position (inclusive: the rows of its epoch received
    /// before are passed over), or `FULL` for a snapshot start that holds none.
    mutating func declare() -> PipelineQueries.CursorStart {
        precondition(!needsCommittedEpoch, "a start from now declares SINCE the view's committed epoch")
        counted = nil
        guard let position else {
            declaredFull = true
            return .full
        }
        declaredFull = false
        skip = position
        return .since(position.epoch)
    }

    /// The session was lost, or its cursor cannot go on: a new one is declared from the held position. Throws
    /// `changesUnavailable` when a snapshot was handed out and no change gave a position since — there is then no
    /// point to resume from without repeating or losing part of the state.
    func sessionLost(_ error: DeltaKitError) throws {
        if position == nil, deliveredSnapshot {
            throw DeltaKitError(
                code: .changesUnavailable,
                message:
                    "the change feed lost its cursor during its snapshot (or before the first change after it), where it holds no position to resume from; start the feed again from a snapshot",
                underlying: error
            )
        }
    }

    /// The error that ends a feed whose changes after its position are gone (``Failure/changesGone``).
    func changesGone(_ error: any Error) -> DeltaKitError {
        let from = position.map { "after epoch \($0.epoch) (rw_timestamp, row \($0.rows))" } ?? "from its start"
        return DeltaKitError(
            code: .changesUnavailable,
            message:
                "the subscription no longer retains the changes \(from): they are older than its retention; start the feed again from a snapshot",
            underlying: error
        )
    }

    /// Turns fetched rows (view columns, `op`, `rw_timestamp`) into feed elements.
    mutating func receive(_ rows: [SQLRow]) throws -> [ChangeFeedElement<Record>] {
        var elements: [ChangeFeedElement<Record>] = []
        for row in rows {
            guard let epoch = try row.decodeIfPresent("rw_timestamp", as: Int64.self) else {
                guard declaredFull else {
                    throw RisingWaveDecodingError(
                        column: "rw_timestamp",
                        value: "NULL",
                        expected: "the epoch of a change",
                        reason: "is NULL in a cursor declared SINCE an epoch (only FULL snapshot rows have none)"
                    )
                }
                let record = try RisingWaveStateStore<Record>.record(from: row)
                deliveredSnapshot = true
                elements.append(
                    ChangeFeedElement(
                        change: StateChange(kind: .insert, key: record.key, record: record),
                        isSnapshot: true,
                        position: nil
                    )
                )
                continue
            }
            let rows = (counted?.epoch == epoch ? counted!.rows : 0) + 1
            counted = (epoch, rows)
            if let skip, skip.epoch == epoch, rows <= skip.rows { continue }
            position = (epoch, rows)
            guard let kind = try Self.kind(of: row) else {
                updatedFrom = try RisingWaveStateStore<Record>.record(from: row)
                continue
            }
            let record = try RisingWaveStateStore<Record>.record(from: row)
            defer { updatedFrom = nil }
            // The view's row changed but the record did not (a later event with the same values: only its
            // `event_order` or `ts` moved): no visible change, as `LatestState.apply` reports none.
            if kind == .update, let old = updatedFrom, old == record { continue }
            elements.append(
                ChangeFeedElement(
                    change: StateChange(kind: kind, key: record.key, record: record),
                    isSnapshot: false,
                    position: ChangeFeedPosition("\(epoch):\(rows)")
                )
            )
        }
        return elements
    }

    /// The change kind of a cursor row; `nil` for the first half of an update (`UpdateDelete`).
    static func kind(of row: SQLRow) throws -> StateChange<Record>.Kind? {
        let op = try row.decode("op", as: String.self)
        switch op {
        case "Insert", "1": return .insert
        case "Delete", "2": return .delete
        case "UpdateInsert", "3": return .update
        case "UpdateDelete", "4": return nil
        default:
            throw RisingWaveDecodingError(
                column: "op",
                value: op,
                expected: "a subscription operation",
                reason: "is unknown"
            )
        }
    }

    static func parse(_ position: ChangeFeedPosition) -> (epoch: Int64, rows: Int)? {
        let parts = position.description.split(separator: ":")
        guard parts.count == 2, let epoch = Int64(parts[0]), let rows = Int(parts[1]), rows >= 0 else { return nil }
        return (epoch, rows)
    }

    // MARK: Failures

    /// What a failed cursor statement (`DECLARE`, `FETCH`, or the committed-epoch read) means for the feed.
    enum Failure: Equatable {
        /// The session or its cursor is gone: open a new session and declare again from the held position.
        case redeclare
        /// RisingWave's clock is behind the position (frontends whose clocks differ): declare again after a pause.
        case retryLater
        /// The changes after the held position are no longer retained: the feed ends with `changesUnavailable`.
        case changesGone
        /// Anything else ends the feed with the error.
        case fatal
    }

    /// Classifies a failed statement.
    ///
    /// RisingWave v3.0.3 sends every cursor error with SQLSTATE `XX000` (`internal_error`: the errors are
    /// `ErrorCode::InternalError` or a `CatalogError` built from a string, which provide no SQLSTATE of their own,
    /// so pgwire falls back to `XX000`), wrapped as `Failed to … the statement\n\nCaused by:\n  …`. Only the text
    /// tells them apart, so they are matched by their own words (`src/frontend/src/session/cursor_manager.rs`,
    /// `src/frontend/src/handler/declare_cursor.rs`):
    /// - "Cannot find cursor `x`": the cursor is not in this session (it died with an earlier one) → redeclare;
    /// - "The cursor has exceeded its maximum lifetime, please recreate it" (no new epoch for longer than the
    ///   retention) and "Cursor is in invalid state. Please close and re-create the cursor." (after a failed fetch)
    ///   → redeclare, from the held position;
    /// - "rw_timestamp is too small, need to be large than the current unix_millis - subscription's retention time"
    ///   (a `SINCE` older than the retention) and " No data found for rw_timestamp …, data may have been recycled,
    ///   please recreate cursor" (the next epoch was recycled under the cursor) → the changes are gone;
    /// - "rw_timestamp is too large, need to be less than the current unix_millis" (the frontend's clock is behind
    ///   the position) → retry later.
    ///
    /// A lost connection redeclares too (also when libpq reports the server's last words, SQLSTATE class `08` or
    /// `57P`, before it marks the connection bad), as does PostgreSQL's "cursor … does not exist" (SQLSTATE `34000`).
    static func failure(of error: any Error) -> Failure {
        guard let error = error as? DeltaKitError else { return .fatal }
        if error.code == .connectionFailed { return .redeclare }
        guard let server = error.underlying as? RisingWaveError else { return .fatal }
        // The server ended the session (PostgreSQL's 57P01 "terminating connection due to administrator command",
        // class 08 connection errors): libpq may report it before it marks the connection bad.
        if server.isConnectionError || server.sqlState.map({ $0.hasPrefix("08") || $0.hasPrefix("57P") }) == true {
            return .redeclare
        }
        let message = server.message.lowercased()
        if message.contains("rw_timestamp is too small") || message.contains("no data found for rw_timestamp") {
            return .changesGone
        }
        if message.contains("rw_timestamp is too large") { return .retryLater }
        if message.contains("cannot find cursor") || message.contains("exceeded its maximum lifetime")
            || message.contains("cursor is in invalid state")
        {
            return .redeclare
        }
        if server.sqlState == "34000" { return .redeclare }
        return .fatal
    }
}
