import Foundation

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
