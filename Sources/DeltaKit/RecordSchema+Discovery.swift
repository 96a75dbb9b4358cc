import Foundation
import Synchronization

/// Schema discovery: a record type's fields from its `Codable` conformance, and the names derived from its type.
extension RecordSchema {
    private static let cache = Mutex<[ObjectIdentifier: RecordSchema]>([:])
    /// The Swift type of each discovered field, in the schema's order (what ``RowLayout`` is compiled from).
    private static let fieldTypes = Mutex<[ObjectIdentifier: [any Any.Type]]>([:])

    /// The Swift type of each field of `type`, in its discovered schema's order; `nil` when discovery fails.
    package static func discoveredFieldTypes<R: ChangeRecord>(_ type: R.Type) -> [any Any.Type]? {
        guard (try? discover(type)) != nil else { return nil }
        return fieldTypes.withLock { $0[ObjectIdentifier(type)] }
    }

    /// A type's name in snake case (`OrderLine` → `order_line`, generic arguments dropped): the stem of the
    /// names backends derive from a record type.
    package static func snakeCaseName(of type: Any.Type) -> String {
        var stem = ""
        let name = String(describing: type).split(separator: "<").first.map(String.init) ?? "record"
        for (index, character) in name.enumerated() {
            if character.isUppercase, index > 0, stem.last != "_" { stem.append("_") }
            stem.append(contentsOf: character.isLetter || character.isNumber ? character.lowercased() : "_")
        }
        return stem
    }

    /// Discovers the schema of `type` by running its `init(from:)` against a recording decoder.
    ///
    /// - Throws: ``DeltaKitError`` with code ``DeltaKitError/Code/invalidConfiguration`` when a field
    ///   is not a supported scalar or the key field is missing.
    package static func discover<R: ChangeRecord>(_ type: R.Type) throws -> RecordSchema {
        if let cached = cache.withLock({ $0[ObjectIdentifier(type)] }) { return cached }
        let recorder = FieldRecorder()
        let probe: R
        do {
            probe = try R(from: SchemaProbeDecoder(recorder: recorder, codingPath: []))
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
        var schema = try RecordSchema(keyField: R.keyField, fields: recorder.fields)
        schema.checksValuesAfterDecoding = recorder.wideUnsigned
        schema.changesInRoundTrip = schema.fields.contains { [.timestamp, .float, .decimal].contains($0.type) }
        schema.hasFallibleFields =
            recorder.wideUnsigned || schema.fields.contains { [.float, .double, .decimal].contains($0.type) }
        try checkKey(of: probe, recorder: recorder)
        let types = schema.fields.map { recorder.types[$0.name]! }
        fieldTypes.withLock { $0[ObjectIdentifier(type)] = types }
        cache.withLock { $0[ObjectIdentifier(type)] = schema }
        return schema
    }
}

/// Checks that `record.key` is the value of the key field: each field was given a distinct value, so a
/// `key` that reads another field (or computes something else) shows up here, once, at discovery.
private func checkKey<R: ChangeRecord>(of record: R, recorder: FieldRecorder) throws {
    var keyJSON: [UInt8] = []
    do {
        try ScalarType.require(R.Key.self, field: R.keyField).writeJSON(record.key, &keyJSON, R.keyField)
    } catch {
        throw DeltaKitError(
            code: .invalidConfiguration,
            message: "the key type \(R.Key.self) of \(R.self) is not a supported scalar (\(ScalarType.supportedList))"
        )
    }
    guard keyJSON == recorder.probeJSON[R.keyField] else {
        let given = String(decoding: recorder.probeJSON[R.keyField] ?? [], as: UTF8.self)
        throw DeltaKitError(
            code: .invalidConfiguration,
            message:
                "\(R.self).key disagrees with its key field '\(R.keyField)': with '\(R.keyField)' = \(given), key returned \(String(decoding: keyJSON, as: UTF8.self)); make `key` return the '\(R.keyField)' property (or set keyField to the field `key` returns)"
        )
    }
}

/// Collects fields while a probe decode runs. Used by one thread only, during `discover`.
private final class FieldRecorder {
    var fields: [RecordSchema.Field] = []
    /// The JSON of the value each field was given, to check that `key` reads the key field.
    var probeJSON: [String: [UInt8]] = [:]
    /// Whether a field is `UInt` or `UInt64`, whose values can exceed a BIGINT column.
    var wideUnsigned = false
    /// Each field's Swift type.
    var types: [String: any Any.Type] = [:]
    func record(
        _ name: String,
        _ type: RecordSchema.FieldType,
        swiftType: any Any.Type,
        optional: Bool,
        probeJSON json: [UInt8]
    ) {
        if !fields.contains(where: { $0.name == name }) {
            fields.append(.init(name: name, type: type, isOptional: optional))
            probeJSON[name] = json
            types[name] = swiftType
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
            "field '\(name)' is not a scalar; a ChangeRecord's fields map to columns and must be \(ScalarType.supportedList), or optionals of these"
    )
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
        let name = key.stringValue
        guard let scalar = ScalarType.of(T.self) else { throw ScalarType.unsupported(T.self, field: name) }
        let seed = recorder.fields.count + 1
        guard let value = scalar.probe(seed) as? T else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "field '\(name)' has type \(T.self), an enum DeltaKit cannot list the values of; add CaseIterable to it"
            )
        }
        var json: [UInt8] = []
        try scalar.writeJSON(value, &json, name)
        recorder.record(name, scalar.fieldType, swiftType: T.self, optional: optional, probeJSON: json)
        if T.self == UInt.self || T.self == UInt64.self { recorder.wideUnsigned = true }
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
