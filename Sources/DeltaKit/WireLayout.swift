import Foundation
import Synchronization

/// The wire JSON of one record schema, prepared once: every field name's bytes as the writer puts them (`"name":`,
/// with the comma before all but the first), the envelope's names per operation and a delete's `null`s.
///
/// Encoding an event then appends prepared bytes around the values instead of escaping each name again. The
/// bytes are made by the same functions as the general path's, so both write the same JSON.
package final class WireLayout: Sendable {
    /// The schema the layout was made from.
    package let schema: RecordSchema
    /// The fields' names, in the schema's order.
    let names: [String]
    /// The number of fields.
    package let fieldCount: Int
    /// The key field's index in the schema.
    package let keyIndex: Int
    /// Every prepared piece, one after the other; `keyRanges[i]` is field `i`'s name.
    private let bytes: [UInt8]
    private let keyRanges: [Range<Int>]
    /// `,"op":"<operation>","event_order":` for each operation (``ChangeOperation/allCases`` order).
    private let operationRanges: [Range<Int>]
    /// `,"ts":"`.
    private let timestampRange: Range<Int>
    /// A delete's start, `{"<key field>":`.
    private let deleteHeadRange: Range<Int>
    /// What follows a delete's key: `,"<field>":null` for every other field.
    private let deleteNullsRange: Range<Int>

    /// Makes the layout of `schema`.
    package init(schema: RecordSchema) {
        self.schema = schema
        names = schema.fields.map(\.name)
        fieldCount = schema.fields.count
        keyIndex = schema.fields.firstIndex { $0.name == schema.keyField }!
        var bytes: [UInt8] = []
        func piece(_ write: (inout [UInt8]) -> Void) -> Range<Int> {
            let start = bytes.count
            write(&bytes)
            return start..<bytes.count
        }
        keyRanges = schema.fields.indices.map { index in
            piece { FlatJSONWriter.appendKey(schema.fields[index].name, comma: index > 0, to: &$0) }
        }
        operationRanges = ChangeOperation.allCases.map { operation in
            piece {
                FlatJSONWriter.appendKey(ChangeEventField.operation, comma: true, to: &$0)
                FlatJSONWriter.appendString(operation.rawValue, to: &$0)
                FlatJSONWriter.appendKey(ChangeEventField.order, comma: true, to: &$0)
            }
        }
        timestampRange = piece {
            FlatJSONWriter.appendKey(ChangeEventField.timestamp, comma: true, to: &$0)
            $0.append(UInt8(ascii: "\""))
        }
        deleteHeadRange = piece {
            $0.append(UInt8(ascii: "{"))
            FlatJSONWriter.appendKey(schema.keyField, comma: false, to: &$0)
        }
        deleteNullsRange = piece {
            for field in schema.valueFields {
                FlatJSONWriter.appendKey(field.name, comma: true, to: &$0)
                FlatJSONWriter.appendLiteral("null", to: &$0)
            }
        }
        self.bytes = bytes
    }

    /// The layout of `Record`'s schema (made once per record type).
    package static func of<Record: ChangeRecord>(_ type: Record.Type) throws -> WireLayout {
        if let layout = cache.withLock({ $0[ObjectIdentifier(type)] }) { return layout }
        let layout = WireLayout(schema: try Record.schema)
        cache.withLock { $0[ObjectIdentifier(type)] = layout }
        return layout
    }

    private static let cache = Mutex<[ObjectIdentifier: WireLayout]>([:])

    @inline(__always)
    private func append(_ range: Range<Int>, to buffer: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: $0[range])) }
    }

    func appendKey(_ index: Int, to buffer: inout [UInt8]) { append(keyRanges[index], to: &buffer) }

    /// Appends `,"op":"<operation>","event_order":`.
    func appendOperation(_ operation: ChangeOperation, to buffer: inout [UInt8]) {
        let index =
            switch operation {
            case .insert: 0
            case .update: 1
            case .delete: 2
            }
        append(operationRanges[index], to: &buffer)
    }

    /// Appends `,"ts":"`.
    func appendTimestampKey(to buffer: inout [UInt8]) { append(timestampRange, to: &buffer) }

    /// Appends `{"<key field>":`.
    func appendDeleteHead(to buffer: inout [UInt8]) { append(deleteHeadRange, to: &buffer) }

    /// Appends `,"<field>":null` for every field but the key.
    func appendDeleteNulls(to buffer: inout [UInt8]) { append(deleteNullsRange, to: &buffer) }
}

/// One field's value as an event's wire JSON holds it, captured while the JSON is written: what a store that
/// keeps a column per field binds, without reading the JSON back. Ranges are positions in the buffer the event was
/// written to.
package enum WireColumn: Sendable, Equatable {
    /// `null`, or a field the record did not write.
    case null
    case bool(Bool)
    /// An integer written from a Swift integer type that always fits 64 signed bits.
    case integer(Int64)
    /// A string's content (between its quotes); `escaped` when it holds escapes (`\"`, `\n`, `\u0001`…), so it is
    /// not the string's own UTF-8.
    case text(Range<Int>, escaped: Bool)
    /// Any other value's JSON: a floating-point or unsigned number, a `Decimal`, a `Date`, a `UUID`, an enum…
    case json(Range<Int>)
}

/// Where the parts of one written event are in the buffer.
package struct WrittenEvent: Sendable {
    /// The event's wire JSON.
    package var json: Range<Int>
    /// The `ts` text (between its quotes).
    package var timestamp: Range<Int>
    /// Whether ``WireEventWriter/columns`` holds this event's values (the record wrote exactly its schema's
    /// fields in order); otherwise read them from the JSON.
    package var capturedColumns: Bool
    /// The event's order and operation (handed back so that a caller need not read them from the generic event).
    package var order: Int64
    package var operation: ChangeOperation
}

/// Writes events of one record type as wire JSON, one after another into the caller's buffer, with one writer
/// for all of them; optionally captures each event's field values (``columns``).
///
/// Not thread-safe: one writer per task.
package final class WireEventWriter {
    package let layout: WireLayout
    private let writer: FlatJSONWriter

    /// A writer for events whose records have `layout`'s schema.
    package init(layout: WireLayout, capturesColumns: Bool = false) {
        self.layout = layout
        writer = FlatJSONWriter(buffer: [], layout: layout, capturesColumns: capturesColumns)
    }

    /// The last event's field values, one per schema field, when its ``WrittenEvent/capturedColumns`` is set.
    package var columns: [WireColumn] { writer.columns }

    /// Appends `event`'s wire JSON (the same bytes as ``ChangeEvent/jsonData()``) to `buffer`; on failure
    /// `buffer` is left as it was.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``) as ``ChangeEvent/jsonData()``.
    @discardableResult
    package func append<Record>(_ event: ChangeEvent<Record>, to buffer: inout [UInt8]) throws -> WrittenEvent {
        try event.encodeJSON(into: &buffer, writer: writer)
    }
}

extension WireColumn {
    /// The value as reading the event's JSON back gives it (`nil` for null): what a store binds for values it does
    /// not take as they are — escaped text, and values written through their ``ScalarType``.
    ///
    /// - Parameter bytes: The buffer the event was written to.
    package func scalar(in bytes: UnsafeRawBufferPointer) -> JSONScalar? {
        switch self {
        case .null: return nil
        case .bool(let flag): return .bool(flag)
        case .integer(let number): return .number(String(number), isInteger: true)
        case .text(let range, let escaped):
            guard escaped else {
                return .string(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
            }
            return try? FlatJSONReader.scalar(bytes[(range.lowerBound - 1)..<(range.upperBound + 1)])
        case .json(let range):
            return try? FlatJSONReader.scalar(bytes[range])
        }
    }
}
