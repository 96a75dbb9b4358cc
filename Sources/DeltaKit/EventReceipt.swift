/// Where a sink made events durable: per partition, the highest offset it acknowledged.
///
/// Readers use it to wait for their own writes (read-your-writes): a store that records how far it has read
/// each partition is caught up with a receipt once every partition in it is read past its offset.
public struct EventReceipt: Hashable, Sendable, CustomStringConvertible {
    /// Partition → the highest acknowledged offset in it.
    public var offsets: [Int32: Int64]

    /// Creates a receipt.
    public init(offsets: [Int32: Int64] = [:]) { self.offsets = offsets }

    /// A receipt for one acknowledged message.
    public init(partition: Int32, offset: Int64) { self.offsets = [partition: offset] }

    /// `true` when no event was acknowledged.
    public var isEmpty: Bool { offsets.isEmpty }

    /// Both receipts at once: per partition, the higher offset.
    public func merging(_ other: EventReceipt) -> EventReceipt {
        EventReceipt(offsets: offsets.merging(other.offsets, uniquingKeysWith: max))
    }

    /// Records one more acknowledged message.
    public mutating func record(partition: Int32, offset: Int64) {
        // One hash lookup for a partition already in the receipt (a sink records every acknowledged message).
        if let index = offsets.index(forKey: partition) {
            if offsets.values[index] < offset { offsets.values[index] = offset }
        } else {
            offsets[partition] = offset
        }
    }

    public var description: String {
        "EventReceipt(" + offsets.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: ", ")
            + ")"
    }
}
