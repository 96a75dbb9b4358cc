import DeltaKit
import Foundation

/// Decodes a `ChangeRecord` from a text-format row, column by field name.
struct SQLRowDecoder: Decoder {
    let row: SQLRow
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RowContainer<Key>(row: row))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DeltaKitError(code: .serializationFailed, message: "a row decodes only into a keyed record")
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DeltaKitError(code: .serializationFailed, message: "a row decodes only into a keyed record")
    }
}

/// Parses one column's text as `T` through the core's table of scalar types (the same table that wrote the JSON).
func parseSQLScalar<T>(_ type: T.Type, text: String, column: String) throws -> T {
    guard let scalar = ScalarType.of(T.self) else {
        throw RisingWaveDecodingError(
            column: column,
            value: text,
            expected: "\(T.self)",
            reason: "has an unsupported type"
        )
    }
    guard let value = scalar.parseText(text) as? T else {
        throw RisingWaveDecodingError(
            column: column,
            value: text,
            expected: scalar.swiftName,
            reason: "cannot be parsed"
        )
    }
    return value
}

private struct RowContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let row: SQLRow
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { row.columns.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { row.columns.contains(key.stringValue) }

    private func text(_ key: Key) throws -> String? {
        guard let index = row.columns.firstIndex(of: key.stringValue) else {
            throw RisingWaveDecodingError(
                column: key.stringValue,
                value: nil,
                expected: "a column",
                reason: "is not in the result (columns: \(row.columns.joined(separator: ", ")))"
            )
        }
        return row.values[index]
    }

    func decodeNil(forKey key: Key) throws -> Bool { try text(key) == nil }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        guard let text = try text(key) else {
            throw RisingWaveDecodingError(column: key.stringValue, value: nil, expected: "\(T.self)", reason: "is NULL")
        }
        return try parseSQLScalar(T.self, text: text, column: key.stringValue)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key), let text = try text(key) else { return nil }
        return try parseSQLScalar(T.self, text: text, column: key.stringValue)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        throw RisingWaveDecodingError(column: key.stringValue, value: nil, expected: "a scalar", reason: "is nested")
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw RisingWaveDecodingError(column: key.stringValue, value: nil, expected: "a scalar", reason: "is nested")
    }
    func superDecoder() throws -> any Decoder { SQLRowDecoder(row: row) }
    func superDecoder(forKey key: Key) throws -> any Decoder { SQLRowDecoder(row: row) }
}
