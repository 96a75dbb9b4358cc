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

/// Parses one column's text as `T`.
func parseSQLScalar<T>(_ type: T.Type, text: String, column: String) throws -> T {
    func fail() -> RisingWaveDecodingError {
        RisingWaveDecodingError(column: column, value: text, expected: "\(T.self)", reason: "cannot be parsed")
    }
    func integer<I: FixedWidthInteger>(_: I.Type) throws -> T {
        guard let v = I(text) else { throw fail() }
        return v as! T
    }
    switch type {
    case is String.Type: return text as! T
    case is Bool.Type:
        guard let v = Bool(sqlText: text) else { throw fail() }
        return v as! T
    case is Double.Type:
        guard let v = Double(sqlText: text) else { throw fail() }
        return v as! T
    case is Float.Type:
        guard let v = Double(sqlText: text) else { throw fail() }
        return Float(v) as! T
    case is Int.Type: return try integer(Int.self)
    case is Int64.Type: return try integer(Int64.self)
    case is Int32.Type: return try integer(Int32.self)
    case is Int16.Type: return try integer(Int16.self)
    case is Int8.Type: return try integer(Int8.self)
    case is UInt.Type: return try integer(UInt.self)
    case is UInt64.Type: return try integer(UInt64.self)
    case is UInt32.Type: return try integer(UInt32.self)
    case is UInt16.Type: return try integer(UInt16.self)
    case is UInt8.Type: return try integer(UInt8.self)
    case is Date.Type:
        guard let v = Date(sqlText: text) else { throw fail() }
        return v as! T
    case is Decimal.Type:
        guard let v = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else { throw fail() }
        return v as! T
    case is UUID.Type:
        guard let v = UUID(uuidString: text) else { throw fail() }
        return v as! T
    default:
        throw RisingWaveDecodingError(
            column: column,
            value: text,
            expected: "\(T.self)",
            reason: "has an unsupported type"
        )
    }
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
