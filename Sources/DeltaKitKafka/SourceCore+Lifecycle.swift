import DeltaKit
import NIOCore
import Synchronization

/// Ending a source: ``close()`` ends the reader's items, stops the poll thread and leaves the group; a source
/// dropped without it stops its thread (``abandon()``).
extension SourceCore {
    /// Ends the items (the reader gets what is buffered, then the end), stops the poll thread, commits the stored
    /// offsets and closes the consumer. A second call returns at once.
    func close() async throws {
        let (first, loop) = machine.withLock { $0.close() }
        handOff.finish()  // the reader gets what is buffered, then the end
        guard first else { return }
        await loop?.stop()
        let handle = self.handle
        let hasGroup = self.hasGroup
        let error: KafkaError? = try await BlockingCalls.run {
            var first: KafkaError?
            if hasGroup { first = handle.commitStored() }
            let closeError = handle.closeConsumer()
            return first ?? closeError
        }
        // A dead letter purged here failed its own send, which reported it.
        try? await deadLetter?.close()
        if let error {
            throw DeltaKitError(
                code: .rejected,
                message: "closing the Kafka consumer of '\(topic)': \(error.message)",
                underlying: error
            )
        }
    }

    /// Stops taking messages without waiting: the poll thread stops after its current poll, and the reader gets
    /// what is buffered, then the end. ``close()`` still commits and closes the consumer.
    func stopReading() {
        machine.withLock { $0.stopReading() }?.requestStop()
        handOff.finish()
    }

    /// The source was dropped without ``close()``: the poll thread stops after its current poll.
    func abandon() {
        machine.withLock { $0.close() }.loop?.requestStop()
        handOff.finish()
    }
}
