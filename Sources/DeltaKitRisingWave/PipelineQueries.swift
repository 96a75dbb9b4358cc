import DeltaKit

/// The statements a ``RisingWaveStateStore`` and its ``RisingWaveChangeFeed`` run on a pipeline's objects: reads
/// of the views and the subscription cursor's SQL. The store and the feed hold no SQL of their own.
///
/// Every statement here is sent through the extended protocol, one per call, except the cursor's `DECLARE`.
/// Limits are inlined as constants: RisingWave rejects `LIMIT $1`.
struct PipelineQueries: Sendable {
    /// Where a cursor starts.
    enum CursorStart: Equatable {
        /// `FULL`: a snapshot at the committed epoch, then its changes (snapshot rows have NULL `rw_timestamp`).
        case full
        /// `SINCE t`: the changes from epoch `t` on, `t` included.
        case since(Int64)
    }

    /// Every live row ordered by key.
    let snapshot: String
    /// One key's row; `$1` is the key as text.
    let value: String
    /// The number of live rows, as `n`.
    let count: String
    /// Per-partition progress (`kafka_partition`, `max_offset`, `max_order`).
    let progress: String
    /// `SELECT <state columns> FROM <view>`.
    private let selectState: String
    /// The key column, quoted.
    private let keyColumn: String
    /// `SELECT <event columns> FROM <history view> ORDER BY <history order>`.
    private let selectHistory: String
    /// The subscription, quoted.
    private let subscription: String

    /// - Throws: `DeltaKitError` (`invalidConfiguration`) when a name cannot be quoted.
    init(names: ObjectNames, columns: ColumnModel) throws {
        let view = try SQLText.identifier(names.view)
        selectState = "SELECT \(try SQLText.identifiers(columns.stateColumns)) FROM \(view)"
        keyColumn = try SQLText.identifier(columns.schema.keyField)
        snapshot = "\(selectState) ORDER BY \(keyColumn)"
        value = "\(selectState) WHERE \(keyColumn) = $1"
        count = "SELECT count(*) AS n FROM \(view)"
        progress = "SELECT kafka_partition, max_offset, max_order FROM \(try SQLText.identifier(names.progressView))"
        selectHistory =
            "SELECT \(try SQLText.identifiers(columns.eventColumns.map(\.name))) FROM \(try SQLText.identifier(names.historyView)) ORDER BY \(try ColumnModel.historyOrder())"
        subscription = try SQLText.identifier(names.subscription)
    }

    /// One page of the snapshot in key order: the live rows whose key is above `$1` (the key as text) when
    /// `after`, else from the first.
    func snapshotPage(after: Bool, limit: Int) -> String {
        let filter = after ? " WHERE \(keyColumn) > $1" : ""
        return "\(selectState)\(filter) ORDER BY \(keyColumn) LIMIT \(max(0, limit))"
    }

    /// The newest `limit` events of the history view.
    func history(limit: Int) -> String { "\(selectHistory) LIMIT \(max(0, limit))" }

    /// `DECLARE … SUBSCRIPTION CURSOR …`. Never without `FULL` or `SINCE`: a cursor declared bare starts at
    /// `Epoch::now()` and skips the changes of the open epoch (risingwave.md §4).
    func declareCursor(_ cursor: String, start: CursorStart) throws -> String {
        let declare = "DECLARE \(try SQLText.identifier(cursor)) SUBSCRIPTION CURSOR FOR \(subscription)"
        switch start {
        case .full: return declare + " FULL"
        case .since(let epoch): return declare + " SINCE \(epoch)"
        }
    }

    /// `FETCH n … WITH (timeout = 'Ns')`; RisingWave truncates the timeout to whole seconds, so at least 1 s.
    func fetchCursor(_ cursor: String, count: Int, timeout: Duration) throws -> String {
        "FETCH \(max(1, count)) FROM \(try SQLText.identifier(cursor)) WITH (timeout = '\(timeout.wholeSecondsRoundedUp(minimum: 1))s')"
    }
}
