public import DeltaKit
import Foundation
import Logging

/// The change feed of a ``RisingWaveStateStore``: rows of a subscription cursor on the latest-state view,
/// fetched with a waiting `FETCH … WITH (timeout)` on a connection of its own. Ends only on error or
/// cancellation.
///
/// It keeps the contract of `ChangeFeedStore` and coalesces: a subscription keeps the *net* change per key per
/// checkpoint (about one second), so several changes to one key between two checkpoints arrive as one, and the
/// changes of one checkpoint come ordered by key, not in the order they were made.
///
/// - `.snapshot` declares the cursor `FULL`: RisingWave's consistent snapshot at the committed epoch, then every
///   change after it — no gap and no duplicate at the seam.
/// - `.now` reads the view's committed epoch (`rw_catalog.rw_hummock_snapshot`) and declares the cursor `SINCE` the
///   next millisecond: every change not committed when the feed started, those of the epoch still open included
///   (a cursor declared without `SINCE` starts at `Epoch::now()` and skips them), and nothing committed before. That
///   is also the position the feed holds until its first change.
/// - `.after(position)` declares it `SINCE t` (inclusive) and passes over the rows of epoch `t` that were already
///   delivered, so a `FETCH` that split an epoch loses nothing and repeats nothing.
///
/// A lost connection, or a cursor RisingWave no longer has ("Cannot find cursor", past its maximum lifetime, in an
/// invalid state), is replaced: a new session declares the cursor again from the held position. The feed ends with
/// `changesUnavailable` when the subscription no longer retains the changes after that position (a position older
/// than its retention), and when the cursor is lost during a `.snapshot` start's snapshot or before its first change
/// after it — the only moments it holds no position; start again from a snapshot then. It never skips changes
/// silently.
///
/// Cancelling the task that iterates takes effect within `fetchTimeout`: libpq's cancel request interrupts a
/// waiting `FETCH` on RisingWave after v3.0.3 (and on PostgreSQL), but RisingWave v3.0.3 and earlier let it wait
/// out its timeout (risingwave#25772 is in no release). The same bound applies to closing the feed's connection.
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
    /// How many rows one `FETCH` asks for.
    let fetchCount: Int
    /// Turns each cursor statement into the SQL sent (tests run the cursor protocol on PostgreSQL with it).
    let rewrite: @Sendable (String) -> String
    /// The session and cursor declared at creation, with the cursor protocol's state after the declaration.
    let opened: (connection: RisingWaveConnection, cursor: String, machine: SubscriptionCursor<Record>)

    /// Opens the feed's connection and declares its cursor.
    ///
    /// - Throws: `DeltaKitError` — `changesUnavailable` when the subscription no longer retains the changes after
    ///   the start position, `invalidConfiguration` for a malformed position or one ahead of RisingWave's clock,
    ///   `connectionFailed` or `queryFailed` as the connection reports them.
    static func open(
        configuration: RisingWaveConnection.Configuration,
        pipeline: RisingWavePipeline<Record>,
        start: ChangeFeedStart,
        fetchTimeout: Duration,
        fetchCount: Int,
        logger: Logger,
        rewrite: @escaping @Sendable (String) -> String
    ) async throws -> RisingWaveChangeFeed {
        var machine = SubscriptionCursor<Record>(start: start)
        try machine.checkStart()
        let connection = try await RisingWaveConnection(configuration: configuration, logger: logger)
        var attempt = 0
        while true {
            do {
                let cursor = try await declare(on: connection, &machine, pipeline.queries, rewrite)
                return RisingWaveChangeFeed(
                    configuration: configuration,
                    pipeline: pipeline,
                    start: start,
                    fetchTimeout: fetchTimeout,
                    logger: logger,
                    fetchCount: fetchCount,
                    rewrite: rewrite,
                    opened: (connection, cursor, machine)
                )
            } catch {
                switch SubscriptionCursor<Record>.failure(of: error) {
                case .changesGone:
                    await connection.close()
                    throw machine.changesGone(error)
                case .retryLater where attempt < 4:
                    // RisingWave's clock is behind the position by a few seconds at most (frontends whose clocks
                    // differ): wait for it.
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(100 << attempt))
                case .retryLater:
                    await connection.close()
                    throw DeltaKitError(
                        code: .invalidConfiguration,
                        message:
                            "change feed position \(start) is ahead of RisingWave's clock; it was not delivered by this RisingWave's subscription",
                        underlying: error
                    )
                default:
                    await connection.close()
                    throw error
                }
            }
        }
    }

    /// Declares a new cursor on `connection` where `machine` says — reading the view's committed epoch first for a
    /// start from now — and returns its name.
    static func declare(
        on connection: RisingWaveConnection,
        _ machine: inout SubscriptionCursor<Record>,
        _ queries: PipelineQueries,
        _ rewrite: @Sendable (String) -> String
    ) async throws -> String {
        if machine.needsCommittedEpoch {
            let rows = try await connection.query(rewrite(queries.committedEpoch), [queries.viewName])
            guard let epoch = try rows.first?.decodeIfPresent("committed_epoch", as: Int64.self) else {
                throw DeltaKitError(
                    code: .queryFailed,
                    message:
                        "RisingWave reports no committed epoch for the view '\(queries.viewName)' (rw_catalog.rw_hummock_snapshot); is the pipeline provisioned?"
                )
            }
            machine.startAfter(committedEpoch: epoch)
        }
        let cursor = "deltakit_feed_\(UUID().uuidString.prefix(8).lowercased())"
        try await connection.execute(rewrite(queries.declareCursor(cursor, start: machine.declare())))
        return cursor
    }

    public func makeAsyncIterator() -> Iterator { Iterator(feed: self) }

    /// The cursor's iterator.
    public struct Iterator: AsyncIteratorProtocol {
        let feed: RisingWaveChangeFeed
        private var machine: SubscriptionCursor<Record>
        private var connection: RisingWaveConnection?
        private var cursor = ""
        private var buffer: [ChangeFeedElement<Record>] = []
        private var failedAttempts = 0

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
                        feed.rewrite(
                            try feed.pipeline.queries.fetchCursor(
                                cursor,
                                count: feed.fetchCount,
                                timeout: feed.fetchTimeout
                            )
                        )
                    )
                    buffer = try machine.receive(rows)
                    failedAttempts = 0
                } catch let error as DeltaKitError {
                    try await recover(from: error)
                }
            }
            return buffer.removeFirst()
        }

        /// Handles a failed statement as ``SubscriptionCursor/failure(of:)`` classifies it: a new session that
        /// declares the cursor again from the held position (after a pause when it keeps failing), or the end of
        /// the feed.
        private mutating func recover(from error: DeltaKitError) async throws {
            let failure = SubscriptionCursor<Record>.failure(of: error)
            switch failure {
            case .changesGone:
                throw machine.changesGone(error)
            case .fatal:
                throw error
            case .redeclare, .retryLater:
                await connection?.close()
                connection = nil
                failedAttempts += 1
                try machine.sessionLost(error)
                feed.logger.warning(
                    "change feed lost its cursor; declaring it again from its position on a new session",
                    metadata: ["error": "\(error)", "attempt": "\(failedAttempts)"]
                )
                if failedAttempts > 1 || failure == .retryLater {
                    try await Task.sleep(
                        for: .milliseconds(Swift.min(5_000, 100 << Swift.min(failedAttempts, 6)))
                    )
                }
            }
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
            do {
                cursor = try await RisingWaveChangeFeed.declare(
                    on: connection,
                    &machine,
                    feed.pipeline.queries,
                    feed.rewrite
                )
            } catch {
                await connection.close()
                throw error
            }
            self.connection = connection
        }
    }
}
