public import Foundation

/// One insert, update or delete of a keyed record: the unit that DeltaKit publishes and merges.
///
/// On the wire an event is one flat JSON object — the record's fields, then `op`, `event_order`
/// and `ts` — exactly the shape of the original demo:
///
/// ```json
/// {"id":1,"name":"Alice","age":25,"op":"insert","event_order":1732499305123456,"ts":"2024-11-25T01:48:25.123456+00:00"}
/// ```
///
/// A delete carries only the key; the other fields are explicit `null`. Create events with
/// ``insert(_:order:timestamp:)``, ``update(_:order:timestamp:)`` and ``delete(key:order:timestamp:)``,
/// which keep the key and the record consistent.
public struct ChangeEvent<Record: ChangeRecord>: Hashable, Sendable {
    /// The key the event applies to. Equal to `record.key` when there is a record.
    public let key: Record.Key
    /// Insert, update or delete.
    public let operation: ChangeOperation
    /// The new record; `nil` exactly when ``operation`` is ``ChangeOperation/delete``.
    public let record: Record?
    /// The event's position in its key's history (the demo's `event_order`).
    ///
    /// For one key, the event with the highest order is the current state. Use
    /// ``HybridLogicalClock`` to get orders that keep increasing across restarts and producers.
    public let order: Int64
    /// When the change happened, truncated to microseconds (the wire and SQL precision).
    public let timestamp: Date

    /// Creates an insert or update event for `record`.
    ///
    /// - Precondition: `operation` is not ``ChangeOperation/delete``; use ``delete(key:order:timestamp:)``.
    @inline(__always)
    public init(operation: ChangeOperation, record: Record, order: Int64, timestamp: Date = Date()) {
        precondition(operation != .delete, "a delete event carries no record; use ChangeEvent.delete(key:order:)")
        self.key = record.key
        self.operation = operation
        self.record = record
        self.order = order
        self.timestamp = EventTimestamp.roundedToMicroseconds(timestamp)
    }

    private init(deleting key: Record.Key, order: Int64, timestamp: Date) {
        self.key = key
        self.operation = .delete
        self.record = nil
        self.order = order
        self.timestamp = EventTimestamp.roundedToMicroseconds(timestamp)
    }

    /// An event that inserts `record`.
    public static func insert(_ record: Record, order: Int64, timestamp: Date = Date()) -> Self {
        Self(operation: .insert, record: record, order: order, timestamp: timestamp)
    }

    /// An event that replaces the record under `record.key`.
    public static func update(_ record: Record, order: Int64, timestamp: Date = Date()) -> Self {
        Self(operation: .update, record: record, order: order, timestamp: timestamp)
    }

    /// An event that deletes `key`.
    public static func delete(key: Record.Key, order: Int64, timestamp: Date = Date()) -> Self {
        Self(deleting: key, order: order, timestamp: timestamp)
    }
}

extension ChangeEvent: CustomStringConvertible {
    /// The event's wire JSON (or a summary if it cannot be encoded).
    public var description: String {
        if let data = try? jsonData() { return String(decoding: data, as: UTF8.self) }
        return "ChangeEvent(\(operation) \(key) order: \(order))"
    }
}
