public import Foundation

extension ChangeEvent {
    /// Encodes the event as its wire JSON: the record's fields in declaration order, then
    /// `op`, `event_order` and `ts`. A delete writes the key and explicit `null` for every other field;
    /// an optional field that is `nil` is written as `null` too, so every event has the same keys.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``) if a field is not a
    ///   supported scalar or a floating-point value is not finite.
    public func jsonData() throws -> Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128)
        try encodeJSON(into: &bytes)
        return Data(bytes)
    }

    /// Appends the event's wire JSON to `buffer` (see ``jsonData()``).
    package func encodeJSON(into buffer: inout [UInt8]) throws {
        try encodeJSON(into: &buffer, writer: FlatJSONWriter(buffer: [], layout: try WireLayout.of(Record.self)))
    }

    /// Appends the wire JSON with `writer` (a ``WireEventWriter``'s, reused for a batch, or one of its own); on
    /// failure `buffer` is left as it was.
    @discardableResult
    func encodeJSON(into buffer: inout [UInt8], writer: FlatJSONWriter) throws -> WrittenEvent {
        let start = buffer.count
        do {
            if let written = try encodeJSON(into: &buffer, writer: writer, recordingNames: false) { return written }
            // The record skipped some fields (a custom encode(to:)): write it again, filling them with null.
            buffer.removeSubrange(start...)
            return try encodeJSON(into: &buffer, writer: writer, recordingNames: true)!
        } catch let error as DeltaKitError {
            buffer.removeSubrange(start...)
            throw error
        } catch {
            buffer.removeSubrange(start...)
            throw DeltaKitError(
                code: .serializationFailed,
                message: "cannot encode \(Record.self) with key \(key): \(error)",
                underlying: error
            )
        }
    }

    /// Returns `nil` (with partial output) when fields were missing and `recordingNames` was off.
    private func encodeJSON(
        into buffer: inout [UInt8],
        writer: FlatJSONWriter,
        recordingNames: Bool
    ) throws -> WrittenEvent? {
        // The layout's pieces are the bytes the general path writes for the same names (see `WireLayout`).
        let layout = writer.layout!
        let start = buffer.count
        writer.reset(recordsNames: recordingNames)
        writer.buffer = buffer
        buffer = []
        defer {
            buffer = writer.buffer
            writer.buffer = []
        }
        let capturedColumns: Bool
        if let record {
            writer.buffer.append(UInt8(ascii: "{"))
            try record.encode(to: FlatJSONEncoder(writer: writer))
            if writer.fieldCount < layout.fieldCount {
                guard recordingNames else { return nil }
                for field in layout.schema.fields where !writer.written.contains(field.name) {
                    writer.key(field.name)
                    writer.null()
                }
            }
            capturedColumns = writer.capturedEveryColumn
        } else {
            layout.appendDeleteHead(to: &writer.buffer)
            writer.expectValue(ofField: layout.keyIndex)
            // The usual keys written directly, the same bytes as their `ScalarType`'s (no table lookup, no `Any`).
            if Record.Key.self == Int64.self || (Record.Key.self == Int.self && MemoryLayout<Int>.size == 8) {
                writer.integer(withUnsafePointer(to: key) { UnsafeRawPointer($0).load(as: Int64.self) })
            } else if Record.Key.self == String.self {
                writer.string(withUnsafePointer(to: key) { UnsafeRawPointer($0).load(as: String.self) })
            } else {
                try writer.scalar(key, field: layout.schema.keyField)
            }
            layout.appendDeleteNulls(to: &writer.buffer)
            capturedColumns = writer.capturesColumns
        }
        layout.appendOperation(operation, to: &writer.buffer)
        FlatJSONWriter.appendInteger(order, to: &writer.buffer)
        layout.appendTimestampKey(to: &writer.buffer)
        let timestampStart = writer.buffer.count
        EventTimestamp.format(timestamp, into: &writer.buffer)
        let timestampEnd = writer.buffer.count
        writer.buffer.append(UInt8(ascii: "\""))
        writer.buffer.append(UInt8(ascii: "}"))
        return WrittenEvent(
            json: start..<writer.buffer.count,
            timestamp: timestampStart..<timestampEnd,
            capturedColumns: capturedColumns,
            order: order,
            operation: operation
        )
    }

    /// Decodes one event from its wire JSON (DeltaKit's own output or the original demo producer's).
    ///
    /// - Throws: ``ChangeEventDecodingError`` naming the field and the offending value when the input is
    ///   not JSON, has a name twice (`{"id":1,…,"id":2}`, also spelled `"\u0069d"`), has an unknown `op`, misses
    ///   a field, has a value of the wrong type, or is a delete that carries values.
    public init(jsonData: some DataProtocol) throws {
        let schema = try? Record.schema
        if let event = try jsonData.withContiguousStorageIfAvailable({
            try Self.decodeWire(UnsafeRawBufferPointer($0), schema: schema)
        }) {
            self = event
        } else {
            let bytes = Array(jsonData)
            self = try bytes.withUnsafeBytes { try Self.decodeWire($0, schema: schema) }
        }
    }

    /// Decodes the wire bytes with DeltaKit's own flat-JSON reader and the core's scalar table: no
    /// `JSONDecoder`, no copy of the message.
    ///
    /// A well-formed event takes ``decodeValid(_:)``, which reads the envelope straight from the tokens; anything
    /// it does not accept goes through the `Codable` path (``init(from:)``), which decides — with the same rules —
    /// and names what is wrong. (The `EventDecoder` fuzz target checks that both paths agree on every input.)
    ///
    /// `schema` is `Record.schema` (`nil` if it cannot be had: the `Codable` path then reports why), looked up once
    /// by a caller that decodes many events rather than once per event.
    package static func decodeWire(_ bytes: UnsafeRawBufferPointer, schema: RecordSchema?) throws -> Self {
        let decoder = WireDecoder(fields: WireFields(try FlatJSONReader.fields(of: bytes)), bytes: bytes)
        if let schema, let event = decodeValid(decoder, schema: schema) { return event }
        return try decodeGeneral(decoder)
    }

    /// The event in `decoder` when it is valid and its record type (described by `schema`) needs no check after
    /// decoding; `nil` otherwise. The same rules as ``init(from:)``, without its keyed container, error
    /// bookkeeping and name hashing.
    static func decodeValid(_ decoder: WireDecoder, schema: RecordSchema) -> Self? {
        guard case .string(let opText)? = decoder.fields[ChangeEventField.operation],
            let operation = ChangeOperation(rawValue: opText),
            case .number(let orderRange, isInteger: true)? = decoder.fields[ChangeEventField.order],
            let order = FlatJSONReader.integer(orderRange, in: decoder.bytes),
            case .string(let tsText)? = decoder.fields[ChangeEventField.timestamp],
            let timestamp = EventTimestamp.parse(tsText),
            !schema.checksValuesAfterDecoding
        else { return nil }
        if operation == .delete {
            guard let key = try? decoder.decode(Record.Key.self, key: AnyCodingKey(schema.keyField)) else {
                return nil
            }
            for field in schema.fields where field.name != schema.keyField {
                switch decoder.fields[field.name] {
                case nil, .null?: continue
                default: return nil
                }
            }
            return .delete(key: key, order: order, timestamp: timestamp)
        }
        guard let record = try? Record(from: decoder) else { return nil }
        return Self(operation: operation, record: record, order: order, timestamp: timestamp)
    }

    /// Decodes through ``init(from:)``: the path that explains what is wrong with an event.
    static func decodeGeneral(_ decoder: WireDecoder) throws -> Self {
        do {
            return try Self(from: decoder)
        } catch let error as ChangeEventDecodingError {
            throw error
        } catch {
            throw ChangeEventDecodingError(field: nil, value: nil, reason: Self.summary(of: error))
        }
    }

    fileprivate static func summary(of error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return context.underlyingError.map { "\($0)" } ?? context.debugDescription
        }
        return "\(error)"
    }
}
