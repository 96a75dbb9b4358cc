public import Foundation

/// The names of the envelope fields that sit next to the record's own fields on the wire.
public enum ChangeEventField {
    /// `"op"`: insert, update or delete.
    public static let operation = "op"
    /// `"event_order"`: the event's order (``ChangeEvent/order``).
    public static let order = "event_order"
    /// `"ts"`: the event's timestamp (``ChangeEvent/timestamp``).
    public static let timestamp = "ts"
}

// MARK: - Fast wire encoding and decoding

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

    /// Appends the event's wire JSON to `buffer` (see ``jsonData()``); the allocation-free path for producers.
    package func encodeJSON(into buffer: inout [UInt8]) throws {
        try encodeJSON(into: &buffer, schema: try Record.schema)
    }

    /// Appends the wire JSON using an already looked-up schema (batch encoders look it up once).
    package func encodeJSON(into buffer: inout [UInt8], schema: RecordSchema) throws {
        let start = buffer.count
        do {
            if try !encodeJSON(into: &buffer, schema: schema, recordingNames: false) {
                // The record skipped some fields (a custom encode(to:)): write it again, filling them with null.
                buffer.removeSubrange(start...)
                _ = try encodeJSON(into: &buffer, schema: schema, recordingNames: true)
            }
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

    /// Returns `false` (with partial output) when fields were missing and `recordingNames` was off.
    private func encodeJSON(into buffer: inout [UInt8], schema: RecordSchema, recordingNames: Bool) throws -> Bool {
        let writer = FlatJSONWriter(buffer: buffer, recordsNames: recordingNames)
        buffer = []
        defer { buffer = writer.buffer }
        writer.buffer.append(UInt8(ascii: "{"))
        if let record {
            try record.encode(to: FlatJSONEncoder(writer: writer))
            if writer.fieldCount < schema.fields.count {
                guard recordingNames else { return false }
                for field in schema.fields where !writer.written.contains(field.name) {
                    writer.key(field.name)
                    writer.null()
                }
            }
        } else {
            writer.key(schema.keyField)
            try writer.scalar(key, field: schema.keyField)
            for field in schema.valueFields {
                writer.key(field.name)
                writer.null()
            }
        }
        writer.key(ChangeEventField.operation)
        writer.string(operation.rawValue)
        writer.key(ChangeEventField.order)
        writer.integer(order)
        writer.key(ChangeEventField.timestamp)
        writer.buffer.append(UInt8(ascii: "\""))
        EventTimestamp.format(timestamp, into: &writer.buffer)
        writer.buffer.append(UInt8(ascii: "\""))
        writer.buffer.append(UInt8(ascii: "}"))
        return true
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

// MARK: - Codable (any encoder or decoder)

extension ChangeEvent: Codable {
    /// Encodes the flat wire shape into any `Encoder` (the fast path is ``jsonData()``).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyCodingKey.self)
        let schema = try Record.schema
        if let record {
            try record.encode(to: encoder)
        } else {
            try container.encode(key, forKey: AnyCodingKey(schema.keyField))
            for field in schema.valueFields { try container.encodeNil(forKey: AnyCodingKey(field.name)) }
        }
        try container.encode(operation.rawValue, forKey: AnyCodingKey(ChangeEventField.operation))
        try container.encode(order, forKey: AnyCodingKey(ChangeEventField.order))
        try container.encode(EventTimestamp.format(timestamp), forKey: AnyCodingKey(ChangeEventField.timestamp))
    }

    /// Decodes the flat wire shape from any `Decoder`, with errors naming the field and value
    /// (``ChangeEventDecodingError``).
    ///
    /// A `Decoder` shows one value per name, so this initializer cannot see a name that the JSON repeats:
    /// Foundation's `JSONDecoder` silently keeps one of the values. Decode wire bytes with ``init(jsonData:)``,
    /// which refuses a repeated name (every DeltaKit source, store and fake does).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyCodingKey.self)
        let fields = FieldReader(container: container)
        let opText = try fields.required(String.self, ChangeEventField.operation)
        guard let operation = ChangeOperation(rawValue: opText) else {
            throw ChangeEventDecodingError(
                field: ChangeEventField.operation,
                value: fields.rawText(ChangeEventField.operation),
                reason: "expected one of insert, update, delete"
            )
        }
        let order = try fields.required(Int64.self, ChangeEventField.order)
        let tsText = try fields.required(String.self, ChangeEventField.timestamp)
        guard let timestamp = EventTimestamp.parse(tsText) else {
            throw ChangeEventDecodingError(
                field: ChangeEventField.timestamp,
                value: fields.rawText(ChangeEventField.timestamp),
                reason: "expected an ISO-8601 timestamp such as 2024-05-01T12:30:45.123456+00:00"
            )
        }
        let schema: RecordSchema
        do { schema = try Record.schema } catch {
            throw ChangeEventDecodingError(field: nil, value: nil, reason: "\(error)")
        }
        if operation == .delete {
            let key = try fields.required(Record.Key.self, schema.keyField)
            for field in schema.valueFields {
                let codingKey = AnyCodingKey(field.name)
                if container.contains(codingKey), (try? container.decodeNil(forKey: codingKey)) == false {
                    throw ChangeEventDecodingError(
                        field: field.name,
                        value: fields.rawText(field.name),
                        reason: "a delete event carries only the key; expected null"
                    )
                }
            }
            self = .delete(key: key, order: order, timestamp: timestamp)
        } else {
            let record: Record
            do {
                record = try Record(from: decoder)
            } catch let error as DecodingError {
                throw fields.translate(error)
            }
            if schema.checksValuesAfterDecoding {
                var scratch: [UInt8] = []
                do { try record.encode(to: FlatJSONEncoder(writer: FlatJSONWriter(buffer: scratch))) } catch {
                    throw ChangeEventDecodingError(field: nil, value: nil, reason: "\(error)")
                }
                scratch.removeAll()
            }
            self.init(operation: operation, record: record, order: order, timestamp: timestamp)
        }
    }
}

/// A `CodingKey` for any field name.
struct AnyCodingKey: CodingKey, Hashable {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Reads envelope fields and turns decoding failures into errors that show the offending value.
private struct FieldReader {
    let container: KeyedDecodingContainer<AnyCodingKey>

    func required<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        let key = AnyCodingKey(name)
        guard container.contains(key) else {
            throw ChangeEventDecodingError(field: name, value: nil, reason: "missing; expected \(typeName(T.self))")
        }
        if (try? container.decodeNil(forKey: key)) == true {
            throw ChangeEventDecodingError(field: name, value: "null", reason: "expected \(typeName(T.self))")
        }
        do {
            return try container.decode(T.self, forKey: key)
        } catch {
            throw ChangeEventDecodingError(field: name, value: rawText(name), reason: "expected \(typeName(T.self))")
        }
    }

    /// The value under `name` as JSON-ish text, for error messages.
    func rawText(_ name: String) -> String? {
        let key = AnyCodingKey(name)
        guard container.contains(key) else { return nil }
        if (try? container.decodeNil(forKey: key)) == true { return "null" }
        if let v = try? container.decode(Bool.self, forKey: key) { return String(v) }
        if let v = try? container.decode(Int64.self, forKey: key) { return String(v) }
        if let v = try? container.decode(Double.self, forKey: key) { return String(v) }
        if let v = try? container.decode(String.self, forKey: key) { return "\"\(v)\"" }
        return "a JSON object or array"
    }

    func translate(_ error: DecodingError) -> ChangeEventDecodingError {
        switch error {
        case .keyNotFound(let key, _):
            return ChangeEventDecodingError(field: key.stringValue, value: nil, reason: "missing")
        case .typeMismatch(let type, let context):
            let name = context.codingPath.first?.stringValue
            return ChangeEventDecodingError(
                field: name,
                value: name.flatMap(rawText),
                reason: "expected \(typeName(type))"
            )
        case .valueNotFound(let type, let context):
            return ChangeEventDecodingError(
                field: context.codingPath.first?.stringValue,
                value: "null",
                reason: "expected \(typeName(type))"
            )
        case .dataCorrupted(let context):
            let name = context.codingPath.first?.stringValue
            return ChangeEventDecodingError(
                field: name,
                value: name.flatMap(rawText),
                reason: context.debugDescription
            )
        @unknown default:
            return ChangeEventDecodingError(field: nil, value: nil, reason: "\(error)")
        }
    }

    private func typeName(_ type: Any.Type) -> String {
        ScalarType.of(type)?.expectation ?? "a value of type \(type)"
    }
}

// MARK: - Message keys

extension ChangeEvent {
    /// The event's key as message-key bytes: a `String` key as its UTF-8 text, any other key as its JSON
    /// text (the demo user with id 1 → `1`). Canonical, so one key always maps to the same bytes and partition.
    package var keyBytes: [UInt8] {
        get throws {
            var bytes: [UInt8] = []
            try appendKeyBytes(to: &bytes)
            return bytes
        }
    }

    /// The key that ``keyBytes`` wrote (a tombstone carries only its key): the inverse of ``keyBytes``.
    ///
    /// - Throws: ``ChangeEventDecodingError`` naming the key field when the bytes are not a key of `Record`.
    package static func key(fromKeyBytes bytes: [UInt8]) throws -> Record.Key {
        if Record.Key.self == String.self, let key = String(validating: bytes, as: UTF8.self) as? Record.Key {
            return key
        }
        let scalar = try ScalarType.require(Record.Key.self, field: Record.keyField)
        guard let value = try? FlatJSONReader.scalar(bytes), let key = scalar.readJSON(value) as? Record.Key
        else {
            throw ChangeEventDecodingError(
                field: Record.keyField,
                value: String(decoding: bytes.prefix(200), as: UTF8.self),
                reason: "the message key is not a \(scalar.swiftName) key of \(Record.self)"
            )
        }
        return key
    }

    /// Whether `bytes` are exactly this event's ``keyBytes`` — the Kafka message key the sink writes for it.
    /// Allocation-free for `Int`, `Int64` and `String` keys, because the consumer checks every message.
    package func isKeyed(by bytes: UnsafeRawBufferPointer) -> Bool {
        if Record.Key.self == Int64.self || (Record.Key.self == Int.self && MemoryLayout<Int>.size == 8) {
            return withUnsafePointer(to: key) {
                Self.isDecimalText(bytes, of: UnsafeRawPointer($0).load(as: Int64.self))
            }
        }
        if Record.Key.self == String.self {
            return withUnsafePointer(to: key) {
                var text = UnsafeRawPointer($0).assumingMemoryBound(to: String.self).pointee
                return text.withUTF8 { $0.elementsEqual(bytes) }
            }
        }
        guard let expected = try? keyBytes else { return false }
        return expected.elementsEqual(bytes)
    }

    /// Whether `bytes` are the canonical decimal text of `value` (a minus only when negative, no leading zero), as
    /// the JSON writer prints it: compared digit by digit from the end.
    @inline(__always)
    private static func isDecimalText(_ bytes: UnsafeRawBufferPointer, of value: Int64) -> Bool {
        var rest = value.magnitude
        var index = bytes.count
        repeat {
            index -= 1
            guard index >= 0, bytes[index] == UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10) else {
                return false
            }
            rest /= 10
        } while rest != 0
        if value < 0 {
            index -= 1
            guard index >= 0, bytes[index] == UInt8(ascii: "-") else { return false }
        }
        return index == 0
    }

    /// The error for a message whose Kafka key (`kafkaKey`, present) is not this event's ``keyBytes``.
    package func misKeyedError(kafkaKey: some Collection<UInt8>) -> ChangeEventDecodingError {
        let shown = { (bytes: [UInt8]) in "`\(String(decoding: bytes.prefix(200), as: UTF8.self))`" }
        let expected = (try? keyBytes).map(shown) ?? "\(key)"
        return ChangeEventDecodingError(
            field: Record.keyField,
            value: (try? keyBytes).map { String(decoding: $0.prefix(200), as: UTF8.self) },
            reason:
                "the message's Kafka key is \(shown(Array(kafkaKey))) but its record's key is \(expected): Kafka keeps a key's order only on that key's partition, so a mis-keyed event is refused — key each message with its record's key (as KafkaEventSink does), or send no key"
        )
    }

    /// Appends ``keyBytes`` to `buffer`.
    package func appendKeyBytes(to buffer: inout [UInt8]) throws {
        switch key {
        case let text as String:
            buffer.append(contentsOf: text.utf8)
        case let number as Int:
            let writer = FlatJSONWriter(buffer: buffer)
            buffer = []
            writer.integer(number)
            buffer = writer.buffer
        default:
            try ScalarType.require(Record.Key.self, field: Record.keyField).writeJSON(key, &buffer, Record.keyField)
        }
    }
}
