import DeltaKit
import Foundation
import GRDB

// Events to rows and back: the values a write binds, and the records a read decodes.

extension SQLiteStateStore {
    /// An event ready to be written: its canonical form, wire JSON and column values.
    struct Prepared: Sendable {
        var event: ChangeEvent<Record>
        var json: Data
        var keyValue: DatabaseValue
        /// Every column of the state row, in the table's order.
        var row: [DatabaseValue]
        /// `row` as statement arguments, built once per event through GRDB's initializer from optional
        /// existentials: the one from `[DatabaseValue]` maps each value through an unspecialized key path, which
        /// shows in a materializer's profile (Documentation/performance.md).
        var arguments: StatementArguments
        /// The key's position in `row`.
        var keyIndex: Int

        /// The row's columns except the key, then the key: the arguments of `Statements.updateRow` (needed only
        /// when two events for a key tie on order).
        var updateArguments: StatementArguments {
            var update = row
            update.remove(at: keyIndex)
            update.append(keyValue)
            return StatementArguments(update.map { $0 as (any DatabaseValueConvertible)? })
        }

        init(_ event: ChangeEvent<Record>, schema: RecordSchema) throws {
            self.event = event
            let (json, fields) = try event.wireJSONAndFields()
            self.json = Data(json)
            var row: [DatabaseValue] = []
            row.reserveCapacity(schema.fields.count + 4)
            for (index, field) in schema.fields.enumerated() {
                row.append(Self.value(Self.field(field.name, at: index, in: fields), field.type))
            }
            keyValue = row[schema.fields.firstIndex { $0.name == schema.keyField }!]
            row.append(event.order.databaseValue)
            row.append(event.operation.rawValue.databaseValue)
            let ts = Self.field(ChangeEventField.timestamp, at: schema.fields.count + 2, in: fields)
            row.append(Self.value(ts, .timestamp))
            row.append(self.json.databaseValue)
            self.row = row
            self.arguments = StatementArguments(row.map { $0 as (any DatabaseValueConvertible)? })
            self.keyIndex = schema.fields.firstIndex { $0.name == schema.keyField }!
        }

        /// The value of field `name`, expected at `index` (the encoder writes the schema's order).
        static func field(_ name: String, at index: Int, in fields: [(name: String, value: JSONScalar?)])
            -> JSONScalar?
        {
            if index < fields.count, fields[index].name == name { return fields[index].value }
            return fields.first { $0.name == name }?.value ?? nil
        }

        /// The key column's value for `key`: what a read by key binds.
        static func keyValue(_ key: Record.Key, schema: RecordSchema) throws -> DatabaseValue {
            let (_, fields) = try ChangeEvent<Record>.delete(
                key: key,
                order: 0,
                timestamp: Date(timeIntervalSince1970: 0)
            )
            .wireJSONAndFields()
            return value(field(schema.keyField, at: 0, in: fields), schema.key.type)
        }

        /// A wire scalar as the column of `type` holds it: numbers as numbers where SQLite keeps them exactly,
        /// as text otherwise.
        static func value(_ scalar: JSONScalar?, _ type: RecordSchema.FieldType) -> DatabaseValue {
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
    }

    /// The live record of a row whose first column is the stored event.
    func record(from row: Row) throws -> Record {
        guard let record = try event(from: row[0] as Data).record else {
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
