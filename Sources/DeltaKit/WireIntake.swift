/// The materializer's in-memory hot path without Kafka — wire JSON decoded by the one-pass decoder into rows, the
/// rows applied to an `InMemoryStateStore` — for the benchmarks package, which sees only public API and imports
/// this with `@_spi(Benchmarks) import DeltaKit`. Not for applications: `KafkaMaterializer` runs this path.
///
/// Counting it is how CI holds the hot path to its goal of no allocation per event for a record of scalar
/// fields (`Benchmarks/Thresholds/hot-path.txt`, `scripts/check-benchmarks`).
@_spi(Benchmarks)
public struct WireIntake<Record: ChangeRecord> {
    private let store: InMemoryStateStore<Record>
    private let layout: RowLayout
    private var rows: RowList

    /// An intake into `store`; `nil` when the record type keeps typed events (no row layout: see
    /// `RowLayout.of(_:)`).
    public init?(store: InMemoryStateStore<Record>) {
        guard let layout = store.rowLayout else { return nil }
        self.store = store
        self.layout = layout
        self.rows = RowList(width: layout.width)
    }

    /// Decodes one message's value into the pending rows; `false` when the one-pass decoder leaves it to the
    /// `Codable` path (which a materializer would then take).
    public mutating func decode(_ value: UnsafeRawBufferPointer) -> Bool {
        layout.decode(value, into: &rows)
    }

    /// Applies the pending rows in order, as a materializer applies one poll's rows, and clears them (keeping
    /// their capacity).
    public mutating func apply() {
        store.apply(rows: rows, 0..<rows.count)
        rows.removeAll(keepingCapacity: true)
    }
}
