public import DeltaKit
import Foundation
import Logging

/// The change feed of a ``RisingWaveStateStore``: rows of a subscription cursor on the latest-state view,
/// fetched with a waiting `FETCH … WITH (timeout)` on a connection of its own. Ends only on error or
/// cancellation.
///
/// - `.snapshot` declares the cursor `FULL`: RisingWave's consistent snapshot at
///   the committed epoch, then every change after it — no gap and no duplicate at the seam.
/// - `.now` declares it `FULL` too and skips the snapshot rows: a cursor declared
///   without `FULL` or `SINCE` starts at `Epoch::now()` and loses the changes of the open epoch.
/// - `.after(position)` declares it `SINCE t` (inclusive) and skips the rows of epoch `t`
///   that were already delivered, so a `FETCH` that split an epoch loses nothing and repeats nothing.
///
/// A lost connection is reopened and the cursor declared again from the last position (cursors die with
/// their session). During the snapshot there is no position to resume from: the feed then ends with
/// `changesUnavailable`, and the caller starts again from a snapshot.
///
/// The cursor is declared when the feed is created, so "now" is the moment of ``RisingWaveStateStore/changes(from:)``.
/// Iterate a feed once.
public struct RisingWaveChangeFeed<Record: ChangeRecord>: AsyncSequence, Sendable {
    public typealias Element = ChangeFeedElement<Record>
    public typealias Failure = any Error

    let configuration: RisingWaveConnection.Configuration
    let pipeline: RisingWavePipeline<Record>
    let start: ChangeFeedStart
    let fetchTimeout: Duration
    let logger: Logger
    /// The session and cursor declared at creation, with the cursor protocol's state after the declaration.
    let opened: (connection: RisingWaveConnection, cursor: String, machine: SubscriptionCursor<Record>)

    /// Opens the feed's connection and declares its cursor.
    static func open(
        configuration: RisingWaveConnection.Configuration,
        pipeline: RisingWavePipeline<Record>,
        start: ChangeFeedStart,
        fetchTimeout: Duration,
        logger: Logger
    ) async throws -> RisingWaveChangeFeed {
        var machine = SubscriptionCursor<Record>(start: start)
        try machine.checkStart()
        let connection = try await RisingWaveConnection(configuration: configuration, logger: logger)
        let cursor = "deltakit_feed_\(UUID().uuidString.prefix(8).lowercased())"
        try await connection.execute(pipeline.declareCursor(cursor, start: machine.declare()))
        return RisingWaveChangeFeed(
            configuration: configuration,
            pipeline: pipeline,
            start: start,
            fetchTimeout: fetchTimeout,
            logger: logger,
            opened: (connection, cursor, machine)
        )
    }

    public func makeAsyncIterator() -> Iterator { Iterator(feed: self) }

    /// The cursor's iterator; it opens its connection on the first `next()`.
    public struct Iterator: AsyncIteratorProtocol {
        let feed: RisingWaveChangeFeed
        private var machine: SubscriptionCursor<Record>
        private var connection: RisingWaveConnection?
        private var cursor = ""
        private var buffer: [ChangeFeedElement<Record>] = []
        private var failedReconnects = 0

        init(feed: RisingWaveChangeFeed) {
            self.feed = feed
            self.machine = feed.opened.machine
            self.connection = feed.opened.connection
            self.cursor = feed.opened.cursor
        }

        public mutating func next() async throws -> ChangeFeedElement<Record>? {
            while buffer.isEmpty {
                try Task.checkCancellation()
                do {
                    if connection == nil { try await open() }
                    let rows = try await connection!.query(
                        feed.pipeline.fetchCursor(cursor, count: 500, timeout: feed.fetchTimeout)
                    )
                    buffer = try machine.receive(rows)
                    failedReconnects = 0
                } catch let error as DeltaKitError where Self.sessionLost(error) {
                    connection = nil
                    failedReconnects += 1
                    try machine.sessionLost(error)
                    feed.logger.warning(
                        "change feed lost its session; declaring the cursor again",
                        metadata: ["error": "\(error)", "attempt": "\(failedReconnects)"]
                    )
                    if failedReconnects > 1 {
                        try await Task.sleep(
                            for: .milliseconds(Swift.min(5_000, 100 << Swift.min(failedReconnects, 6)))
                        )
                    }
                }
            }
            return buffer.removeFirst()
        }

        /// Ends the feed's session as a lost connection would (tests): the next `next()` opens a new session and
        /// declares the cursor again from the last position. Elements already fetched stay buffered.
        mutating func loseSession() async throws {
            await connection?.close()
            connection = nil
            try machine.sessionLost(DeltaKitError(code: .connectionFailed, message: "session ended by a test"))
        }

        private mutating func open() async throws {
            let connection = try await RisingWaveConnection(configuration: feed.configuration, logger: feed.logger)
            cursor = "deltakit_feed_\(UUID().uuidString.prefix(8).lowercased())"
            try await connection.execute(feed.pipeline.declareCursor(cursor, start: machine.declare()))
            self.connection = connection
        }

        /// A connection failure, or a cursor that vanished with its session: open a new session and declare again.
        static func sessionLost(_ error: DeltaKitError) -> Bool {
            if error.code == .connectionFailed { return true }
            guard let underlying = error.underlying as? RisingWaveError else { return false }
            if underlying.isConnectionError { return true }
            let message = underlying.message.lowercased()
            return message.contains("cursor") && (message.contains("not found") || message.contains("does not exist"))
        }
    }
}

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
    mutating func declare() -> RisingWavePipeline<Record>.CursorStart {
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
