import DeltaKit
import Logging
import Metrics

/// The reader's side of at-least-once: what it acknowledges becomes the group's stored offset, committed by the
/// next auto-commit, ``commit()`` or ``close()``. Without a group, positions are the application's (a
/// `PositionedStateStore` keeps them), and acknowledging does nothing.
extension SourceCore {
    /// Reports, dead-letters, and — when `acknowledging` — acknowledges a malformed message. A batch defers the
    /// acknowledgement until the events before it in the batch are applied (at-least-once with a group).
    func handleMalformed(_ message: MalformedMessage, acknowledging: Bool = true) async throws {
        malformed.increment()
        logger.warning(
            "skipping malformed message",
            metadata: [
                KafkaTelemetry.Key.topic: "\(message.topic)", KafkaTelemetry.Key.partition: "\(message.partition)",
                KafkaTelemetry.Key.offset: "\(message.offset)", KafkaTelemetry.Key.error: "\(message.error)",
            ]
        )
        onMalformed?(message)
        if let deadLetter {
            try await deadLetter.send(key: message.key, value: message.value ?? [])
        }
        if acknowledging { acknowledge(topic: message.topic, partition: message.partition, offset: message.offset) }
    }

    /// Stores `offset` + 1 as the partition's offset to commit (in a group; without one, nothing).
    func acknowledge(topic: String, partition: Int32, offset: Int64) {
        guard hasGroup else { return }
        if let error = handle.storeOffset(PartitionID(topic: topic, partition: partition), next: offset + 1) {
            logger.debug(
                "offset not stored for \(topic)[\(partition)]@\(offset) (partition no longer assigned?): \(error)"
            )
        }
    }

    /// Commits every stored offset now.
    func commit() async throws {
        guard hasGroup else { return }
        let handle = self.handle
        if let error = try await BlockingCalls.run({ handle.commitStored() }) {
            throw DeltaKitError(
                code: .rejected,
                message: "committing offsets of '\(topic)': \(error.message)",
                underlying: error
            )
        }
    }

    /// Committed offsets of the group for the assigned partitions (for tests and tooling).
    func committedOffsets() async -> [Int32: Int64] {
        let handle = self.handle
        let partitions = handle.assignment()
        let result = try? await BlockingCalls.run {
            handle.committed(partitions, timeoutMs: 5000)
        }
        return Dictionary(uniqueKeysWithValues: (result ?? [:]).map { ($0.key.partition, $0.value) })
    }
}
