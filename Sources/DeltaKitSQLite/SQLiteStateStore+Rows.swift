import DeltaKit
import Foundation
import GRDB

// Events to rows and back: the values a write binds, and the records a read decodes.

/// Events ready to be written: their wire JSON one after the other in one buffer, and each one's column values
/// as the JSON writer captured them (``WireColumn``), positions in that buffer.
///
/// Everything a write binds points into ``bytes``: a batch costs a few allocations, not several per event.
struct PreparedBatch {
    /// One event.
    struct Entry {
        /// The event's wire JSON in ``PreparedBatch/bytes``.
        var json: Range<Int>
        /// Its `ts` text.
        var timestamp: Range<Int>
        var order: Int64
        var operation: ChangeOperation
    }

    /// The number of columns per event: the schema's fields.
    let fieldCount: Int
    /// The key field's column.
    let keyIndex: Int
    var bytes: [UInt8] = []
    var entries: [Entry] = []
    /// `fieldCount` values per entry, in the schema's order.
    var columns: [WireColumn] = []

    init(fieldCount: Int, keyIndex: Int, capacity: Int) {
        self.fieldCount = fieldCount
        self.keyIndex = keyIndex
        bytes.reserveCapacity(capacity * 160)
        entries.reserveCapacity(capacity)
        columns.reserveCapacity(capacity * fieldCount)
    }

    /// Appends `event` (already in its canonical form) with `writer`.
    mutating func append<Record>(_ event: ChangeEvent<Record>, writer: WireEventWriter) throws {
        let written = try writer.append(event, to: &bytes)
        if written.capturedColumns {
            columns.append(contentsOf: writer.columns)
        } else {
            // A record that wrote its fields out of its schema's order, or not all of them: its columns are read
            // back from the JSON, as a reader would (strings decoded into the buffer after the JSON).
            let fields = try event.wireJSONAndFields().fields
            for field in writer.layout.schema.fields {
                columns.append(column(fields.first { $0.name == field.name }?.value ?? nil))
            }
        }
        entries.append(
            Entry(json: written.json, timestamp: written.timestamp, order: written.order, operation: written.operation)
        )
    }

    /// Binds entry `index` to `statement`: its columns of `types` from parameter 1 — without the key's when
    /// `keyLast`, which then follows the envelope —, then `event_order`, `op`, `ts` and the event's JSON (the
    /// parameters of `Statements.upsertIfNewer`, and with `keyLast` of `Statements.updateRow`).
    func bind(
        _ index: Int,
        to statement: RawStatement,
        types: [RecordSchema.FieldType],
        keyLast: Bool,
        in bytes: UnsafeRawBufferPointer
    ) {
        var parameter: Int32 = 1
        let base = index * fieldCount
        for field in 0..<fieldCount where !(keyLast && field == keyIndex) {
            statement.bind(parameter, columns[base + field], types[field], in: bytes)
            parameter += 1
        }
        let entry = entries[index]
        statement.bind(parameter, entry.order)
        statement.bindText(parameter + 1, entry.operation.rawValue)
        statement.bindText(parameter + 2, UnsafeRawBufferPointer(rebasing: bytes[entry.timestamp]))
        statement.bindBlob(parameter + 3, UnsafeRawBufferPointer(rebasing: bytes[entry.json]))
        if keyLast { statement.bind(parameter + 4, columns[base + keyIndex], types[keyIndex], in: bytes) }
    }

    private mutating func column(_ scalar: JSONScalar?) -> WireColumn {
        func appended(_ text: String) -> Range<Int> {
            let start = bytes.count
            bytes.append(contentsOf: text.utf8)
            return start..<bytes.count
        }
        switch scalar {
        case nil: return .null
        case .bool(let flag): return .bool(flag)
        case .string(let text): return .text(appended(text), escaped: false)
        case .number(let text, _): return .json(appended(text))
        }
    }

    /// Column `field` of entry `index`.
    @inline(__always)
    func column(_ field: Int, of index: Int) -> WireColumn { columns[index * fieldCount + field] }

    /// The indices of the `limit` entries with the highest orders (the later one among equal orders), ascending.
    func newest(limit: Int) -> [Int] {
        guard entries.count > limit else { return Array(entries.indices) }
        let chosen = entries.indices.sorted { (entries[$0].order, $0) > (entries[$1].order, $1) }.prefix(limit)
        return chosen.sorted()
    }
}

extension RawStatement {
    /// Binds `column`, a value of a field of `type`, as the column of that type holds it: numbers as numbers where
    /// SQLite keeps them exactly, as text otherwise (a `Decimal`, whether written as a number or a string, is its
    /// exact text).
    func bind(_ index: Int32, _ column: WireColumn, _ type: RecordSchema.FieldType, in bytes: UnsafeRawBufferPointer) {
        switch column {
        case .null:
            bindNull(index)
        case .bool(let flag):
            bind(index, Int64(flag ? 1 : 0))
        case .integer(let number):
            switch type {
            case .bool, .int32, .int64: bind(index, number)
            default: bind(index, column.scalar(in: bytes), type)
            }
        case .text(let range, escaped: false):
            bindText(index, UnsafeRawBufferPointer(rebasing: bytes[range]))
        case .json(let range) where type == .int32 || type == .int64 || type == .bool:
            // An integral JSON number that fits 64 bits, read in place; anything else as the reader would.
            if let number = FlatJSONReader.integer(range, in: bytes) {
                bind(index, number)
            } else {
                bind(index, column.scalar(in: bytes), type)
            }
        case .json(let range)
        where range.count >= 2 && bytes[range.lowerBound] == UInt8(ascii: "\"")
            && !bytes[range].contains(UInt8(ascii: "\\")):
            // A string without escapes (a `Date`, a `UUID`…): its content as it is.
            bindText(index, UnsafeRawBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)]))
        case .text, .json:
            bind(index, column.scalar(in: bytes), type)
        }
    }

    /// Binds a wire scalar as the column of `type` holds it.
    private func bind(_ index: Int32, _ scalar: JSONScalar?, _ type: RecordSchema.FieldType) {
        switch scalar {
        case nil: bindNull(index)
        case .bool(let flag): bind(index, Int64(flag ? 1 : 0))
        case .string(let text): bindText(index, text)
        case .number(let text, let isInteger):
            switch type {
            case .bool, .int32, .int64:
                if isInteger, let number = Int64(text) { bind(index, number) } else { bindText(index, text) }
            case .float, .double:
                if let number = Double(text), !number.isNaN { bind(index, number) } else { bindText(index, text) }
            default:
                bindText(index, text)
            }
        }
    }
}

extension SQLiteStateStore {
    /// The key column's value for `key`: what a read by key binds.
    static func keyValue(_ key: Record.Key, schema: RecordSchema) throws -> DatabaseValue {
        let (_, fields) = try ChangeEvent<Record>.delete(key: key, order: 0, timestamp: Date(timeIntervalSince1970: 0))
            .wireJSONAndFields()
        return databaseValue(fields.first { $0.name == schema.keyField }?.value ?? nil, schema.key.type)
    }

    /// A wire scalar as the column of `type` holds it (the reads' side of ``RawStatement/bind(_:_:_:in:)``).
    static func databaseValue(_ scalar: JSONScalar?, _ type: RecordSchema.FieldType) -> DatabaseValue {
        switch scalar {
        case nil: return .null
        case .bool(let flag): return (flag ? 1 : 0).databaseValue
        case .string(let text): return text.databaseValue
        case .number(let text, let isInteger):
            switch type {
            case .bool, .int32, .int64:
                if isInteger, let number = Int64(text) { return number.databaseValue }
                return text.databaseValue
            case .float, .double:
                return (Double(text) ?? .nan).isNaN ? text.databaseValue : Double(text)!.databaseValue
            default:
                return text.databaseValue
            }
        }
    }

    /// The live record of a row whose first column is the stored event.
    func record(from row: Row) throws -> Record {
        try record(of: event(from: row[0] as Data))
    }

    /// The record of a live row's stored event.
    func record(of event: ChangeEvent<Record>) throws -> Record {
        guard let record = event.record else {
            throw DeltaKitError(
                code: .storageFailed,
                message:
                    "a live row of \(tableName) in \(configuration.path) holds a delete event; the file was changed outside DeltaKit"
            )
        }
        return record
    }

    /// A stored event, decoded by the same decoder as the Kafka path.
    func event(from json: Data) throws -> ChangeEvent<Record> {
        do {
            return try ChangeEvent<Record>(jsonData: json)
        } catch {
            throw DeltaKitError(
                code: .storageFailed,
                message: "an event stored in \(configuration.path) does not decode as \(Record.self): \(error)",
                underlying: error
            )
        }
    }
}
