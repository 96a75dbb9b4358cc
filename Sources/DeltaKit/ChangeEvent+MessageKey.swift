import Foundation

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

    @inline(__always)
    private static func isDecimalText(_ bytes: UnsafeRawBufferPointer, of value: Int64) -> Bool {
        MessageKeyText.isDecimalText(bytes, of: value)
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
        // The usual key types compared by metatype rather than cast: a dynamic cast per message costs more than
        // writing the key.
        if Record.Key.self == String.self {
            buffer.append(contentsOf: withUnsafePointer(to: key) { UnsafeRawPointer($0).load(as: String.self) }.utf8)
        } else if Record.Key.self == Int64.self || (Record.Key.self == Int.self && MemoryLayout<Int>.size == 8) {
            FlatJSONWriter.appendInteger(
                withUnsafePointer(to: key) { UnsafeRawPointer($0).load(as: Int64.self) },
                to: &buffer
            )
        } else {
            try ScalarType.require(Record.Key.self, field: Record.keyField).writeJSON(key, &buffer, Record.keyField)
        }
    }
}

/// Message-key text that needs no record type.
enum MessageKeyText {
    /// Whether `bytes` are the canonical decimal text of `value` (a minus only when negative, no leading zero), as
    /// the JSON writer prints it: compared digit by digit from the end.
    @inline(__always)
    static func isDecimalText(_ bytes: UnsafeRawBufferPointer, of value: Int64) -> Bool {
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
}
