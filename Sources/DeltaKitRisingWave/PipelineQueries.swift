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
    /// The latest-state view's committed epoch, as `committed_epoch`; `$1` is ``viewName``.
    ///
    /// RisingWave's own record of the last checkpoint committed for the view (`rw_catalog.rw_hummock_snapshot`, one
    /// row per table, since v2.1.0; joined to the view by id, and through `rw_schemas` to the schema the unqualified
    /// name resolves to — `rw_materialized_views.schema_name` exists only since v3.0.0). Not `SELECT now()`: a batch
    /// query's `now()` is the highest committed epoch of *any* table, which another database's checkpoints can carry
    /// past the view's open epoch. The catalog asks the meta service for the current storage version, so a feed
    /// reads it once, when it starts from now; a new session resumes from the position it holds.
    let committedEpoch =
        "SELECT s.committed_epoch FROM rw_catalog.rw_hummock_snapshot AS s JOIN rw_catalog.rw_materialized_views AS m ON s.table_id = m.id JOIN rw_catalog.rw_schemas AS n ON m.schema_id = n.id WHERE m.name = $1 AND n.name = current_schema()"
    /// The latest-state view's name as the catalog holds it (the parameter of ``committedEpoch``).
    let viewName: String

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
        viewName = names.view
    }

    /// The `rw_timestamp` (Unix milliseconds) of RisingWave epoch `epoch`: an epoch is the milliseconds since
    /// 2021-04-01T00:00:00Z shifted left by 16 bits (`risingwave_common::util::epoch::Epoch`), and a cursor row's
    /// `rw_timestamp` is that epoch's Unix milliseconds (`convert_logstore_u64_to_unix_millis`).
    static func rwTimestamp(ofEpoch epoch: Int64) -> Int64 { (epoch >> 16) + 1_617_235_200_000 }

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
