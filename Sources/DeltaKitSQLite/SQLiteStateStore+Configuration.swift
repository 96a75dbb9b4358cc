import DeltaKit
import Foundation

extension SQLiteStateStore {
    /// Settings of a ``SQLiteStateStore``. Every property has a documented default except the file and the
    /// source, which a store cannot guess.
    public struct Configuration: Sendable {
        /// The database file. Created (with its tables) when missing, unless ``readOnly``.
        public var path: String
        /// The Kafka topic whose events the file holds. Recorded in the file: opening the file for another topic
        /// is refused (`DeltaKitError.Code.incompatibleStore`). `nil` takes the topic the existing file records
        /// (for readers, which need not know it); a new file needs one.
        public var source: String?
        /// The state table's name. Default: `nil`, derived from the record type: its name in snake case plus
        /// `s` (`User` → `users`, `OrderLine` → `order_lines`), so `SELECT * FROM users ORDER BY id` works in
        /// the `sqlite3` shell.
        public var tableName: String?
        /// How many of the most recent events (by order) ``SQLiteStateStore/history(limit:)`` can return;
        /// 0 keeps none (and makes applying a little cheaper). Default: 1,000.
        public var historyLimit: Int
        /// How many changes the file keeps for change feeds: a feed may fall this far behind, and a position
        /// this old can still be resumed from (if a feed of the file was open whenever events were applied since:
        /// changes are recorded only then); 1…100,000,000. Default: 100,000.
        public var changeBufferLimit: Int
        /// How often a change feed looks for new changes in the file (they may come from another process).
        /// 1 ms…1 minute. Default: 100 milliseconds.
        public var feedPollInterval: Duration
        /// Open without writing: for readers in other processes (`snapshot --state`). A missing file is then
        /// an error instead of a new store. Default: `false`.
        public var readOnly: Bool
        /// How long a connection waits for another process's lock before failing (SQLite's busy timeout).
        /// Readers never wait for the writer (WAL mode). Default: 5 seconds.
        public var busyTimeout: Duration
        /// Flush every commit to the disk (`PRAGMA synchronous = FULL`) instead of at checkpoints (`NORMAL`).
        ///
        /// Either way a batch and its positions commit atomically and survive a crash of the process. Without
        /// this flag, a power loss or kernel crash may roll the file back by its last commits — to an earlier,
        /// still consistent state and position, from which the materializer simply reads those events again.
        /// So the flag buys nothing for a materialized topic and costs one `fsync` per batch; set it when other
        /// writes must survive a power loss. Default: `false`.
        public var syncsEveryCommit: Bool

        /// Creates a configuration.
        public init(
            path: String,
            source: String?,
            tableName: String? = nil,
            historyLimit: Int = 1_000,
            changeBufferLimit: Int = 100_000,
            feedPollInterval: Duration = .milliseconds(100),
            readOnly: Bool = false,
            busyTimeout: Duration = .seconds(5),
            syncsEveryCommit: Bool = false
        ) {
            self.path = path
            self.source = source
            self.tableName = tableName
            self.historyLimit = historyLimit
            self.changeBufferLimit = changeBufferLimit
            self.feedPollInterval = feedPollInterval
            self.readOnly = readOnly
            self.busyTimeout = busyTimeout
            self.syncsEveryCommit = syncsEveryCommit
        }

        /// Checks every value, naming the first that is out of range; called by the store's initializer.
        /// `path` and `source` (when given) must not be empty; `tableName` is `[a-z_][a-z0-9_]{0,62}` and not reserved;
        /// `historyLimit` is 0…100,000,000; `changeBufferLimit` 1…100,000,000; `feedPollInterval` 1 ms…1 minute;
        /// `busyTimeout` 0…1 hour.
        public func validate() throws {
            guard !path.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message: "SQLiteStateStore.path is empty; give the state file's path, e.g. users.sqlite"
                )
            }
            guard source != "" else {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message: "SQLiteStateStore.source is empty; give the topic whose events the file holds"
                )
            }
            if let tableName { try SQLiteSchema.validateTable(tableName) }
            try DeltaKitError.check(historyLimit, in: 0...100_000_000, "SQLiteStateStore.historyLimit")
            try DeltaKitError.check(changeBufferLimit, in: 1...100_000_000, "SQLiteStateStore.changeBufferLimit")
            try DeltaKitError.check(
                feedPollInterval,
                in: .milliseconds(1) ... .seconds(60),
                "SQLiteStateStore.feedPollInterval"
            )
            try DeltaKitError.check(busyTimeout, in: .zero...Duration.seconds(3600), "SQLiteStateStore.busyTimeout")
        }
    }
}
