import Foundation

extension ChangeEvent {
    /// The typed event of row `row` of `rows` (a row of `layout`, `Record`'s layout): its record built through
    /// `Codable` from the row's values — where the application asks for an event or a record, not per event
    /// applied.
    package init(row: Int, of rows: RowList, layout: RowLayout) throws {
        let header = rows.headers[row]
        let timestamp = EventTimestamp.date(fromMicroseconds: header.micros)
        if header.operation == .delete {
            let key: Record.Key = try RowRecordDecoder(layout: layout, rows: rows, row: row).value(layout.keyIndex)
            self = .delete(key: key, order: header.order, timestamp: timestamp)
        } else {
            let record = try Record(row: row, of: rows, layout: layout)
            self.init(operation: header.operation, record: record, order: header.order, timestamp: timestamp)
        }
    }
}

extension ChangeRecord {
    /// The record of row `row` of `rows`, through its `init(from:)`.
    package init(row: Int, of rows: RowList, layout: RowLayout) throws {
        try self.init(from: RowRecordDecoder(layout: layout, rows: rows, row: row))
    }
}

extension StateChange {
    /// The change of row `row` of a change log (its operation is the change's kind; its values the record).
    package init(row: Int, of rows: RowList, layout: RowLayout) throws {
        let record = try Record(row: row, of: rows, layout: layout)
        let kind: Kind =
            switch rows.headers[row].operation {
            case .insert: .insert
            case .update: .update
            case .delete: .delete
            }
        self.init(kind: kind, key: record.key, record: record)
    }
}

/// A `Decoder` over one row's values: how a record is built from a row, the values read back into the field's
/// Swift type by the same table the wire decoder uses (the common types directly).
struct RowRecordDecoder: Decoder {
    let layout: RowLayout
    let rows: RowList
    let row: Int
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RowKeyedContainer<Key>(decoder: self))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch([Any].self, .init(codingPath: [], debugDescription: "a record is flat"))
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: [], debugDescription: "a record is flat"))
    }

    /// The index of the field named `name`, or `nil`.
    func field(_ name: String) -> Int? { layout.fields.firstIndex { $0.name == name } }

    func raw(_ field: Int) -> RowValue { rows.value(row, field) }

    /// The value of field `field` as `T`.
    func value<T>(_ field: Int, as type: T.Type = T.self) throws -> T {
        let name = layout.fields[field].name
        let key = AnyCodingKey(name)
        let value = raw(field)
        switch value {
        case .null:
            throw DecodingError.valueNotFound(T.self, .init(codingPath: [key], debugDescription: "null"))
        case .integer(let number):
            if T.self == Int.self, let result = Int(exactly: number) { return result as! T }
            if T.self == Int64.self { return number as! T }
        case .string(let text):
            if T.self == String.self { return text as! T }
        case .bool(let flag):
            if T.self == Bool.self { return flag as! T }
        case .double(let number):
            if T.self == Double.self { return number as! T }
            if T.self == Float.self { return Float(number) as! T }
        case .timestamp(let micros):
            if T.self == Date.self { return EventTimestamp.date(fromMicroseconds: micros) as! T }
        case .uuid(let high, let low):
            if T.self == UUID.self { return RowLayout.uuid(high, low) as! T }
        case .decimal: break
        }
        guard let scalar = ScalarType.of(T.self) else { throw ScalarType.unsupported(T.self, field: name) }
        guard let json = layout.json(of: value), let result = scalar.readJSON(json) as? T else {
            throw DecodingError.typeMismatch(T.self, .init(codingPath: [key], debugDescription: "wrong type"))
        }
        return result
    }

    @inline(__always)
    func integer<I: FixedWidthInteger>(_ type: I.Type, _ field: Int) throws -> I {
        if case .integer(let number) = raw(field), let result = I(exactly: number) { return result }
        return try value(field)
    }
}

private struct RowKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: RowRecordDecoder
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { decoder.layout.fields.compactMap { Key(stringValue: $0.name) } }

    private func field(_ key: Key) throws -> Int {
        guard let field = decoder.field(key.stringValue) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: [key], debugDescription: "missing"))
        }
        return field
    }

    func contains(_ key: Key) -> Bool { decoder.field(key.stringValue) != nil }
    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = decoder.raw(try field(key)) { return true }
        return false
    }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decoder.value(try field(key)) }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let field = decoder.field(key.stringValue) else { return nil }
        if case .null = decoder.raw(field) { return nil }
        return try decoder.value(field, as: T.self)
    }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decoder.value(try field(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        let field = try field(key)
        if case .string(let text) = decoder.raw(field) { return text }
        return try decoder.value(field)
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decoder.value(try field(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decoder.value(try field(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decoder.integer(type, try field(key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decoder.integer(type, try field(key)) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decoder.integer(type, try field(key)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decoder.integer(type, try field(key)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decoder.integer(type, try field(key)) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decoder.integer(type, try field(key)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decoder.integer(type, try field(key)) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decoder.integer(type, try field(key)) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decoder.integer(type, try field(key)) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decoder.integer(type, try field(key)) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: [key], debugDescription: "not a scalar"))
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: [key], debugDescription: "not a scalar"))
    }
    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder { decoder }
}
