import DeltaKit

/// The subscription-cursor protocol as a value: which cursor to declare, and what the fetched rows mean.
/// No I/O, so every rule below is unit-tested without a RisingWave.
struct SubscriptionCursor<Record: ChangeRecord> {
    private let start: ChangeFeedStart
    /// The epoch of the last row received and how many rows of that epoch were received: where to resume.
    private var position: (epoch: Int64, rows: Int)?
    /// After a `SINCE t` declaration: the rows of epoch `t` to skip (they were delivered before).
    private var skip: (epoch: Int64, rows: Int)?
    /// Whether snapshot rows were handed out (a lost session then cannot resume).
    private var deliveredSnapshot = false
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

    /// The declaration for a new session: `SINCE` the held position, or `FULL` when there is none.
    mutating func declare() -> PipelineQueries.CursorStart {
        guard let position else { return .full }
        skip = position
        self.position = (position.epoch, 0)
        return .since(position.epoch)
    }

    /// The session was lost. Resumable from a position; not in the middle of a snapshot already handed out.
    func sessionLost(_ error: DeltaKitError) throws {
        if position == nil, deliveredSnapshot {
            throw DeltaKitError(
                code: .changesUnavailable,
                message:
                    "the connection was lost while the change feed was reading its snapshot; start the feed again from a snapshot",
                underlying: error
            )
        }
    }

    /// Turns fetched rows (view columns, `op`, `rw_timestamp`) into feed elements.
    mutating func receive(_ rows: [SQLRow]) throws -> [ChangeFeedElement<Record>] {
        var elements: [ChangeFeedElement<Record>] = []
        for row in rows {
            guard let epoch = try row.decodeIfPresent("rw_timestamp", as: Int64.self) else {
                // A FULL snapshot row (NULL rw_timestamp).
                if start == .now { continue }
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
            if let current = position, current.epoch == epoch {
                position = (epoch, current.rows + 1)
            } else {
                position = (epoch, 1)
            }
            if let skip, skip.epoch == epoch, position!.rows <= skip.rows { continue }
            guard let kind = try Self.kind(of: row) else { continue }
            let record = try RisingWaveStateStore<Record>.record(from: row)
            elements.append(
                ChangeFeedElement(
                    change: StateChange(kind: kind, key: record.key, record: record),
                    isSnapshot: false,
                    position: ChangeFeedPosition("\(epoch):\(position!.rows)")
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
}
