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
        try await connection.execute(pipeline.queries.declareCursor(cursor, start: machine.declare()))
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
                        try feed.pipeline.queries.fetchCursor(cursor, count: 500, timeout: feed.fetchTimeout)
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
            try await connection.execute(feed.pipeline.queries.declareCursor(cursor, start: machine.declare()))
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
