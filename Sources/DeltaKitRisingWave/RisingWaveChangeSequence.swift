public import DeltaKit
import Foundation
import Logging

/// One change of a RisingWave view, with the commit timestamp to resume from.
public struct RisingWaveChange<Record: ChangeRecord>: Sendable {
    /// What changed.
    public var change: StateChange<Record>
    /// RisingWave's commit timestamp (epoch milliseconds, `rw_timestamp`); pass the last one you processed to
    /// ``RisingWaveStateStore/watch(since:connection:fetchTimeout:)`` to resume after it.
    public var timestamp: Int64
}

/// State changes from a RisingWave subscription cursor: blocking `FETCH … WITH (timeout)` on a connection
/// of its own. Ends only on error or cancellation.
public struct RisingWaveChangeSequence<Record: ChangeRecord>: AsyncSequence, Sendable {
    public typealias Element = RisingWaveChange<Record>
    let configuration: RisingWaveConnection.Configuration
    let subscription: String
    let since: Int64?
    let fetchTimeout: Duration
    let logger: Logger

    public func makeAsyncIterator() -> Iterator { Iterator(sequence: self) }

    /// The cursor's iterator; it opens its connection on the first `next()`.
    public struct Iterator: AsyncIteratorProtocol {
        let sequence: RisingWaveChangeSequence
        private var connection: RisingWaveConnection?
        private var cursor = ""
        private var buffer: [RisingWaveChange<Record>] = []

        init(sequence: RisingWaveChangeSequence) { self.sequence = sequence }

        /// The cursor declaration for `subscription`, resuming after `since` when given.
        static func declareSQL(cursor: String, subscription: String, since: Int64?) throws -> String {
            var sql =
                "DECLARE \(try SQLText.identifier(cursor)) SUBSCRIPTION CURSOR FOR \(try SQLText.identifier(subscription))"
            if let since { sql += " SINCE \(since + 1)" }
            return sql
        }

        /// Maps a cursor row (view columns, `op`, `rw_timestamp`) to a change; `nil` for the first half of an update.
        static func change(from row: SQLRow) throws -> RisingWaveChange<Record>? {
            let op = try row.decode("op", as: String.self)
            let timestamp = try row.decodeIfPresent("rw_timestamp", as: Int64.self) ?? 0
            let kind: StateChange<Record>.Kind
            switch op {
            case "Insert", "1": kind = .insert
            case "Delete", "2": kind = .delete
            case "UpdateInsert", "3": kind = .update
            case "UpdateDelete", "4": return nil
            default:
                throw RisingWaveDecodingError(
                    column: "op",
                    value: op,
                    expected: "a subscription operation",
                    reason: "is unknown"
                )
            }
            let record = try Record(from: SQLRowDecoder(row: row))
            return RisingWaveChange(
                change: StateChange(kind: kind, key: record.key, record: record),
                timestamp: timestamp
            )
        }

        public mutating func next() async throws -> RisingWaveChange<Record>? {
            if connection == nil {
                let connection = try await RisingWaveConnection(
                    configuration: sequence.configuration,
                    logger: sequence.logger
                )
                cursor = "deltakit_watch_\(UUID().uuidString.prefix(8).lowercased())"
                try await connection.execute(
                    Self.declareSQL(cursor: cursor, subscription: sequence.subscription, since: sequence.since)
                )
                self.connection = connection
            }
            let seconds = Swift.max(1, sequence.fetchTimeout.components.seconds)
            while buffer.isEmpty {
                try Task.checkCancellation()
                let rows = try await connection!.query(
                    "FETCH 100 FROM \(try SQLText.identifier(cursor)) WITH (timeout = '\(seconds)s')"
                )
                buffer = try rows.compactMap(Self.change(from:))
            }
            return buffer.removeFirst()
        }
    }
}
