import DeltaKit
import Foundation
import Logging
import Synchronization

/// A minimal producer for raw messages (the dead-letter topic), awaiting each delivery.
final class DeadLetterProducer: Sendable {
    private let handle: RdKafkaHandle
    private let loop: PollLoop

    init(configuration: KafkaConfiguration, logger: Logger) throws {
        var properties = configuration.properties
        properties += [
            ("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "0"),
            ("max.in.flight.requests.per.connection", "1"),  // see KafkaEventSink.Configuration.maxInFlightRequests
        ]
        properties += configuration.additionalProperties.sorted { $0.key < $1.key }
        let handle = try RdKafkaHandle(
            kind: .producer,
            properties: properties,
            callbacks: RdKafkaCallbacks(logger: logger)
        )
        self.handle = handle
        self.loop = PollLoop(name: "deltakit-kafka-dlq") { handle.poll(timeoutMs: 100) }
    }

    func send(topic: String, key: [UInt8]?, value: [UInt8]) async throws {
        let receiver = SingleDelivery()
        let outcome: DeliveryOutcome = try await withCheckedThrowingContinuation { continuation in
            receiver.continuation.withLock { $0 = continuation }
            do {
                let result = try value.withUnsafeBytes { value in
                    try (key ?? []).withUnsafeBytes { keyBytes in
                        try handle.produce(
                            topic: topic,
                            key: key == nil ? nil : keyBytes,
                            value: value,
                            receiver: receiver
                        )
                    }
                }
                switch result {
                case .enqueued: break
                case .queueFull, .failed:
                    receiver.continuation.withLock { $0 = nil }
                    continuation.resume(
                        throwing: DeltaKitError(
                            code: .deliveryFailed,
                            message: "cannot enqueue a dead-letter message to '\(topic)'"
                        )
                    )
                }
            } catch {
                receiver.continuation.withLock { $0 = nil }
                continuation.resume(throwing: error)
            }
        }
        if let error = outcome.error {
            throw DeltaKitError(
                code: .deliveryFailed,
                message: "dead-letter message to '\(topic)' was not acknowledged: \(error.message)",
                underlying: error
            )
        }
    }

    func close() async {
        await loop.stop()
    }

    /// Dropped without ``close()`` (its source was abandoned): the poll thread still ends, within one poll.
    deinit { loop.requestStop() }
}

final class SingleDelivery: DeliveryReceiver, @unchecked Sendable {
    // The only state is the Mutex-guarded continuation.
    let continuation = Mutex<CheckedContinuation<DeliveryOutcome, any Error>?>(nil)
    override func delivered(_ outcome: DeliveryOutcome) {
        continuation.withLock { $0.take() }?.resume(returning: outcome)
    }
}
