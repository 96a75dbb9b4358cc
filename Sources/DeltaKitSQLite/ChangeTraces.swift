import Instrumentation
import Synchronization

/// The trace contexts of the changes this process's store recorded, for the change feeds of the same store
/// object: a feed element of a change applied inside a span carries that span's context, as the in-memory store's
/// do.
///
/// The file keeps no trace context (a trace is a process's view of its work): a feed of the file opened by another
/// ``SQLiteStateStore`` — in this process or another — reads the changes without one, and so does this store's
/// feed for changes older than the last `limit` traced batches.
///
/// A run of change sequences is recorded after its transaction committed: a rolled-back transaction's sequences
/// are given out again by SQLite, to changes that must not inherit its context.
final class ChangeTraces: Sendable {
    private struct Run {
        var sequences: ClosedRange<Int64>
        var context: ServiceContext
    }

    private let limit: Int
    /// Ordered by sequence; runs never overlap (each is one committed transaction's changes).
    private let runs = Mutex<[Run]>([])

    init(limit: Int = 4_096) {
        self.limit = limit
    }

    /// The changes `sequences` were applied in `context`.
    func record(_ sequences: ClosedRange<Int64>, _ context: ServiceContext) {
        runs.withLock { runs in
            // Commits are in order; their recording, after the transaction, may not be.
            let index = runs.lastIndex { $0.sequences.upperBound < sequences.lowerBound }.map { $0 + 1 } ?? 0
            runs.insert(Run(sequences: sequences, context: context), at: index)
            if runs.count > limit { runs.removeFirst(runs.count - limit) }
        }
    }

    /// The context change `sequence` was applied in, when it was recorded.
    func context(of sequence: Int64) -> ServiceContext? {
        runs.withLock { runs in
            var low = 0
            var high = runs.count
            while low < high {
                let middle = (low + high) / 2
                if runs[middle].sequences.upperBound < sequence { low = middle + 1 } else { high = middle }
            }
            return low < runs.count && runs[low].sequences.contains(sequence) ? runs[low].context : nil
        }
    }

    /// Forgets every run (the file was rebuilt: its sequences start again for new changes).
    func removeAll() {
        runs.withLock { $0.removeAll() }
    }
}
