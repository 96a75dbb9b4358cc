import DeltaKit
import DeltaKitTesting
import Testing

@Suite("EventReceipt: the highest acknowledged offset per partition")
struct EventReceiptTests {
    @Test("recording messages in any order keeps each partition's highest offset; merging takes the higher of two")
    func recordKeepsTheHighest() {
        var random = SeededRandomNumberGenerator(seed: 19)
        for _ in 0..<200 {
            var receipt = EventReceipt()
            var expected: [Int32: Int64] = [:]
            for _ in 0..<Int.random(in: 0...50, using: &random) {
                let partition = Int32.random(in: 0...5, using: &random)
                let offset = Int64.random(in: -2...1_000, using: &random)
                receipt.record(partition: partition, offset: offset)
                expected[partition] = max(expected[partition] ?? offset, offset)
            }
            #expect(receipt.offsets == expected)
            let other = EventReceipt(offsets: [0: 500, 7: 3])
            var merged = expected
            for (partition, offset) in other.offsets { merged[partition] = max(merged[partition] ?? offset, offset) }
            #expect(receipt.merging(other).offsets == merged)
        }
    }
}
