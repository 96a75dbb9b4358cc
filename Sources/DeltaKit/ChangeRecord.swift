/// A record type that DeltaKit can publish, merge and materialize.
///
/// One declaration drives everything: the JSON wire format (the record's `Codable`
/// conformance, flattened next to `op`, `event_order` and `ts`) and the SQL columns
/// generated for RisingWave (``RecordSchema``, discovered from the same `Codable`
/// conformance). A user never describes the same record twice.
///
/// ```swift
/// struct User: ChangeRecord {
///     static let keyField = "id"
///     var id: Int
///     var name: String
///     var age: Int
///     var key: Int { id }
/// }
/// ```
///
/// Fields must be scalars that map to a SQL column: integers, `Double`/`Float`, `Bool`,
/// `String`, `Date`, `Decimal`, `UUID`, and optionals of these.
public protocol ChangeRecord: Codable, Hashable, Sendable {
    /// The key type. It orders snapshots, so it is `Comparable`.
    associatedtype Key: Codable & Hashable & Comparable & Sendable

    /// The name of the field that holds the key, in the JSON and in SQL (the demo's `"id"`).
    static var keyField: String { get }

    /// The record's key: the value stored under ``keyField``.
    var key: Key { get }

    /// The fields of this record, in declaration order.
    ///
    /// The default implementation discovers them from the `Codable` conformance. Override it only
    /// for a type whose `init(from:)` cannot be probed (for example one that validates values).
    static var schema: RecordSchema { get throws }
}

extension ChangeRecord {
    /// Discovers the schema from the type's `Codable` conformance (cached per type).
    public static var schema: RecordSchema {
        get throws { try RecordSchema.discover(Self.self) }
    }
}
