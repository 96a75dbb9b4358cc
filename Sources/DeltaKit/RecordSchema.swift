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

    /// Creates a schema; `keyField` must name one of `fields`.
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

    // MARK: Discovery

    private static let cache = Mutex<[ObjectIdentifier: RecordSchema]>([:])

    /// Discovers the schema of `type` by running its `init(from:)` against a recording decoder.
    ///
    /// - Throws: ``DeltaKitError`` with code ``DeltaKitError/Code/invalidConfiguration`` when a field
    ///   is not a supported scalar or the key field is missing.
    public static func discover<R: ChangeRecord>(_ type: R.Type) throws -> RecordSchema {
        if let cached = cache.withLock({ $0[ObjectIdentifier(type)] }) { return cached }
        let recorder = FieldRecorder()
        do {
            _ = try R(from: SchemaProbeDecoder(recorder: recorder, codingPath: []))
        } catch let error as DeltaKitError {
            throw error
        } catch {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "cannot discover the fields of \(R.self): its init(from:) failed on probe values (\(error)); implement `static var schema` explicitly",
                underlying: error
            )
        }
        let schema = try RecordSchema(keyField: R.keyField, fields: recorder.fields)
        cache.withLock { $0[ObjectIdentifier(type)] = schema }
        return schema
    }
}

/// Collects fields while a probe decode runs. Used by one thread only, during `discover`.
private final class FieldRecorder {
    var fields: [RecordSchema.Field] = []
    func record(_ name: String, _ type: RecordSchema.FieldType, optional: Bool) {
        if !fields.contains(where: { $0.name == name }) {
            fields.append(.init(name: name, type: type, isOptional: optional))
        }
    }
}

private struct SchemaProbeDecoder: Decoder {
    let recorder: FieldRecorder
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard codingPath.isEmpty else { throw nested(codingPath) }
        return KeyedDecodingContainer(ProbeKeyed<Key>(recorder: recorder))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw nested(codingPath) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw nested(codingPath)
    }
}

private func nested(_ path: [any CodingKey]) -> DeltaKitError {
    let name = path.map(\.stringValue).joined(separator: ".")
    return DeltaKitError(
        code: .invalidConfiguration,
        message:
            "field '\(name)' is not a scalar; a ChangeRecord's fields map to SQL columns and must be Int, Double, Bool, String, Date, Decimal, UUID or optionals of these"
    )
}

/// A probe value of each scalar type, plus its schema type.
private func probe<T>(_ type: T.Type) -> (RecordSchema.FieldType, T)? {
    switch type {
    case is Bool.Type: return (.bool, false as! T)
    case is String.Type: return (.string, "" as! T)
    case is Double.Type: return (.double, 0.0 as! T)
    case is Float.Type: return (.float, Float(0) as! T)
    case is Int.Type: return (.int64, 0 as! T)
    case is Int64.Type: return (.int64, Int64(0) as! T)
    case is UInt.Type: return (.int64, UInt(0) as! T)
    case is UInt64.Type: return (.int64, UInt64(0) as! T)
    case is UInt32.Type: return (.int64, UInt32(0) as! T)
    case is Int32.Type: return (.int32, Int32(0) as! T)
    case is Int16.Type: return (.int32, Int16(0) as! T)
    case is Int8.Type: return (.int32, Int8(0) as! T)
    case is UInt16.Type: return (.int32, UInt16(0) as! T)
    case is UInt8.Type: return (.int32, UInt8(0) as! T)
    case is Date.Type: return (.timestamp, Date(timeIntervalSince1970: 0) as! T)
    case is Decimal.Type: return (.decimal, Decimal(0) as! T)
    case is UUID.Type: return (.uuid, UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) as! T)
    default: return nil
    }
}

private struct ProbeKeyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let recorder: FieldRecorder
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { [] }
    func contains(_ key: Key) -> Bool { true }
    func decodeNil(forKey key: Key) throws -> Bool { false }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try scalar(key, optional: false) }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try scalar(key, optional: true) as T
    }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try scalar(key, optional: false) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try scalar(key, optional: false) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try scalar(key, optional: false) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try scalar(key, optional: false) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try scalar(key, optional: false) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try scalar(key, optional: false) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try scalar(key, optional: false) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try scalar(key, optional: false) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try scalar(key, optional: false) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try scalar(key, optional: false) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try scalar(key, optional: false) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try scalar(key, optional: false) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try scalar(key, optional: false) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try scalar(key, optional: false) }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        try scalar(key, optional: true) as Bool
    }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        try scalar(key, optional: true) as String
    }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        try scalar(key, optional: true) as Double
    }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? {
        try scalar(key, optional: true) as Float
    }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? {
        try scalar(key, optional: true) as Int
    }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? {
        try scalar(key, optional: true) as Int8
    }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? {
        try scalar(key, optional: true) as Int16
    }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? {
        try scalar(key, optional: true) as Int32
    }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? {
        try scalar(key, optional: true) as Int64
    }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? {
        try scalar(key, optional: true) as UInt
    }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? {
        try scalar(key, optional: true) as UInt8
    }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? {
        try scalar(key, optional: true) as UInt16
    }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? {
        try scalar(key, optional: true) as UInt32
    }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? {
        try scalar(key, optional: true) as UInt64
    }

    private func scalar<T>(_ key: Key, optional: Bool) throws -> T {
        guard let (fieldType, value) = probe(T.self) else { throw nested([key]) }
        recorder.record(key.stringValue, fieldType, optional: optional)
        return value
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> { throw nested([key]) }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { throw nested([key]) }
    func superDecoder() throws -> any Decoder { throw nested([]) }
    func superDecoder(forKey key: Key) throws -> any Decoder { throw nested([key]) }
}
