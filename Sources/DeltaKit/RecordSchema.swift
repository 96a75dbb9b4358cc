import Foundation
import Synchronization

/// The fields of a ``ChangeRecord`` type: names, scalar types and nullability, in declaration order.
///
/// Backends turn it into their own column definitions (RisingWave SQL columns, for example).
/// It is discovered from the record's `Codable` conformance, so it always matches the JSON.
public struct RecordSchema: Hashable, Sendable, CustomStringConvertible {
    /// The scalar type of one field.
    public enum FieldType: String, Hashable, Sendable {
        /// `Bool`.
        case bool
        /// Integers that fit in 32 bits (`Int8`, `Int16`, `Int32`, `UInt8`, `UInt16`).
        case int32
        /// Other integers (`Int`, `Int64`, `UInt32`, …).
        case int64
        /// `Float`.
        case float
        /// `Double`.
        case double
        /// `Decimal`.
        case decimal
        /// `String`.
        case string
        /// `Date`, written as an ISO-8601 timestamp with microseconds and an offset.
        case timestamp
        /// `UUID`, written as its string form.
        case uuid
    }

    /// One field of a record.
    public struct Field: Hashable, Sendable {
        /// The field's name in the JSON and in SQL.
        public var name: String
        /// The scalar type.
        public var type: FieldType
        /// `true` when the Swift property is optional.
        public var isOptional: Bool

        /// Creates a field description.
        public init(name: String, type: FieldType, isOptional: Bool = false) {
            self.name = name
            self.type = type
            self.isOptional = isOptional
        }
    }

    /// The name of the key field (``ChangeRecord/keyField``).
    public var keyField: String
    /// All fields, key included, in declaration order.
    public var fields: [Field]
    /// Set by discovery when a field's Swift type can hold values its column cannot (`UInt`, `UInt64`):
    /// decoding then checks each record against the encoder's rules.
    package var checksValuesAfterDecoding = false
    /// Set by discovery when a field's value can change in a wire round trip (`Date` is truncated to
    /// microseconds, `Float` and `Decimal` go through decimal text).
    package var changesInRoundTrip = false
    /// Set by discovery when a typed record can hold a value the wire refuses (a non-finite `Float`/`Double`, a
    /// NaN `Decimal`, an unsigned integer beyond BIGINT): only then must a typed event be checked.
    package var hasFallibleFields = false

    /// Creates a schema; `keyField` must name one of `fields`, no two fields share a name, and none is named like
    /// an envelope field (``ChangeEventField``: `op`, `event_order`, `ts`).
    public init(keyField: String, fields: [Field]) throws {
        guard fields.contains(where: { $0.name == keyField }) else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "key field '\(keyField)' is not one of the record's fields \(fields.map(\.name)); set keyField to the name of the property that holds the key"
            )
        }
        var seen = Set<String>()
        for field in fields where !seen.insert(field.name).inserted {
            throw DeltaKitError(code: .invalidConfiguration, message: "field '\(field.name)' is declared twice")
        }
        let envelope = [ChangeEventField.operation, ChangeEventField.order, ChangeEventField.timestamp]
        for field in fields where envelope.contains(field.name) {
            // The wire object would carry the name twice, and a decoder refuses a repeated name.
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "field '\(field.name)' has the name of an event envelope field (\(envelope.joined(separator: ", "))); rename it on the wire with CodingKeys"
            )
        }
        self.keyField = keyField
        self.fields = fields
    }

    /// The key field's description.
    public var key: Field { fields.first { $0.name == keyField }! }

    /// The fields other than the key, in declaration order.
    public var valueFields: [Field] { fields.filter { $0.name != keyField } }

    public var description: String {
        let body = fields.map { "\($0.name): \($0.type.rawValue)\($0.isOptional ? "?" : "")" }
        return "RecordSchema(key: \(keyField), fields: [\(body.joined(separator: ", "))])"
    }
}
