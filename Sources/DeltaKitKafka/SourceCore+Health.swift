import DeltaKit
import Foundation
import Logging
import Synchronization

/// The connection's health as `onSourceEvent` reports it, and the probe thread that watches for the cluster to
/// come back (librdkafka reports failures, not recoveries).
extension SourceCore {
    /// Reports what a message or a partition end said about the connection (`found`: its offset).
    func report(_ observation: Machine.Observation, partition: Int32, found: Int64) {
        guard let onSourceEvent else { return }
        if observation.recovered { onSourceEvent(.recovered) }
        if let wentBack = observation.wentBack {
            onSourceEvent(.offsetsWentBack(topic: topic, partition: partition, expected: wentBack, found: found))
        }
    }

    func clientError(_ error: KafkaError) {
        if error.isFatal {
            push(
                .failure(
                    DeltaKitError(
                        code: .closed,
                        message: "fatal Kafka consumer error: \(error.message)",
                        underlying: error
                    )
                )
            )
        } else {
            logger.warning("Kafka consumer: \(error)")
            perform(
                machine.withLock {
                    $0.clientProblem(error.message, allBrokersDown: error.code == .allBrokersDown)
                }
            )
        }
    }

    /// Starts the probe thread (the machine decided that none runs); as it ends, it starts again when a problem
    /// reported after its last look left reading held back (``SourceStateMachine/probeEnded()``).
    func startProbe() {
        let thread = Thread { [self] in
            repeat { probeUntilReachable() } while machine.withLock({ $0.probeEnded() })
        }
        thread.name = "deltakit-kafka-probe"
        thread.start()
    }

    /// While the cluster is unreachable, asks for the topic's metadata every 2 seconds (a retry loop, not a
    /// wait for an event: librdkafka reports failures but not recoveries). Once it answers, reports
    /// ``KafkaSourceEvent/recovered`` and checks that the last message read on each partition is still there:
    /// a broker that lost its data or a recreated topic no longer has it, and a fetch at the next offset would
    /// wait silently (Tansu) or restart the partition from its beginning (Kafka).
    private func probeUntilReachable() {
        var wait = 0.5
        while machine.withLock({ $0.shouldKeepProbing }) {
            Thread.sleep(forTimeInterval: wait)
            wait = 2
            guard (try? handle.partitions(of: topic, timeoutMs: 2_000)) != nil else { continue }
            switch machine.withLock({ $0.clusterAnswered() }) {
            case .verifyContinuity(let before):
                // A problem reported while the check ran may hide another change of log: check again.
                if verifyContinuity(unlessProblemsSince: before) { return }
            case .checkLastOffsets(let lastOffsets):
                onSourceEvent?(.recovered)
                for (partition, offset) in lastOffsets.sorted(by: { $0.key < $1.key }) where offset >= 0 {
                    if !stillHolds(partition: partition, offset: offset) {
                        onSourceEvent?(
                            .offsetsWentBack(topic: topic, partition: partition, expected: offset + 1, found: nil)
                        )
                    }
                }
                return
            case .stop:
                return
            }
        }
    }

    /// Whether the broker still has the message at `offset` of `partition` (read with a short-lived consumer).
    private func stillHolds(partition: Int32, offset: Int64) -> Bool {
        guard let probe = try? RdKafkaHandle.client(.consumer, self.probe, logger: logger),
            (try? probe.assign(topic: topic, partitions: [partition], offset: offset)) != nil
        else { return true }  // cannot tell: say nothing
        probe.callbacks.onError { _ in }
        for _ in 0..<10 {
            guard let message = probe.consumerPoll(timeoutMs: 500) else { continue }
            if message.error != nil { continue }
            if message.isPartitionEOF { return message.offset > offset }
            return message.offset == offset
        }
        return false
    }
}
