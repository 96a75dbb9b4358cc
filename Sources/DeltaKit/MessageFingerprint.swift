/// What identifies one message of a partition's log: its offset, its timestamp and a digest of its key and value.
///
/// A ``PositionedStateStore`` records the fingerprint of the last message it applied per partition, with its
/// positions. When a reader resumes, it reads the message at that offset again: a topic that was deleted and
/// recreated, or a broker that came back empty, holds another message there (or none), and the reader stops
/// with ``DeltaKitError/Code/incompatibleStore`` instead of resuming in the middle of another log.
public struct MessageFingerprint: Sendable, Hashable, CustomStringConvertible {
    /// The message's offset in its partition.
    public var offset: Int64
    /// The message's timestamp (milliseconds since 1970, as the producer or the broker stamped it); -1 when
    /// it has none.
    public var timestamp: Int64
    /// A 64-bit digest of the message's key and value (a length-prefixed multiply-xorshift hash): stable across versions and platforms,
    /// because files keep it.
    public var digest: UInt64

    /// A fingerprint from its parts.
    public init(offset: Int64, timestamp: Int64, digest: UInt64) {
        self.offset = offset
        self.timestamp = timestamp
        self.digest = digest
    }

    /// Stands for a fingerprint a reader did not compute (offset -1: no message has it).
    package static let unrecorded = MessageFingerprint(offset: -1, timestamp: -1, digest: 0)

    /// `offset 89 (timestamp 1765000000000, digest 0x…)`.
    public var description: String {
        "offset \(offset) (timestamp \(timestamp), digest 0x\(String(digest, radix: 16)))"
    }

    /// The digest of a message's key and value: a multiply-xorshift hash over 8-byte little-endian words, each
    /// part preceded by its length (a missing part and an empty one differ). Not cryptographic: it tells two
    /// logs apart, it does not resist an adversary who can write to the topic anyway.
    package struct Digest: Sendable {
        /// The digest so far.
        package private(set) var value: UInt64 = 0x243F_6A88_85A3_08D3

        /// A digest of nothing yet.
        package init() {}

        /// Adds one part (a key or a value); `nil` is a missing part.
        package mutating func add(_ bytes: UnsafeRawBufferPointer?) {
            guard let bytes else {
                mix(UInt64.max)
                return
            }
            mix(UInt64(bytes.count))
            var index = 0
            while index + 8 <= bytes.count {
                mix(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)))
                index += 8
            }
            if index < bytes.count {
                var tail: UInt64 = 0
                for shift in 0..<(bytes.count - index) { tail |= UInt64(bytes[index + shift]) << (8 * UInt64(shift)) }
                mix(tail)
            }
            value = Self.finalize(value)
        }

        /// Adds one part given as bytes; `nil` is a missing part.
        package mutating func add(_ bytes: [UInt8]?) {
            guard let bytes else { return add(UnsafeRawBufferPointer?.none) }
            bytes.withUnsafeBytes { add($0) }
        }

        private mutating func mix(_ word: UInt64) {
            value = (value ^ word) &* 0x9E37_79B9_7F4A_7C15
            value ^= value >> 29
        }

        private static func finalize(_ h: UInt64) -> UInt64 {
            var h = h
            h ^= h >> 33
            h = h &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 33
            h = h &* 0xC4CE_B9FE_1A85_EC53
            h ^= h >> 33
            return h
        }
    }
}
