import DeltaKit
import Foundation
import Logging
import Synchronization

/// The connection's health as `onSourceEvent` reports it, and the probe thread that watches for the cluster to
/// come back (librdkafka reports failures, not recoveries).
extension SourceCore {
    /// Reports a recovery after a connection problem, and offsets that went back (`next`: the offset the
    /// message or partition end says comes next).
    func observe(partition: Int32, next: Int64, isData: Bool) {
        guard let onSourceEvent else { return }
        let (recovered, wentBack): (Bool, Int64?) = health.withLock { health in
            let recovered = health.troubled
            health.troubled = false
            let expected = health.lastOffsets[partition].map { $0 + 1 }
            // A message at `offset` needs expected <= offset; a partition end at `offset` needs expected <= offset.
            let wentBack = expected.flatMap { $0 > next ? $0 : nil }
            health.lastOffsets[partition] = isData ? next : next - 1
            return (recovered, wentBack)
        }
        if recovered { onSourceEvent(.recovered) }
        if let wentBack {
            onSourceEvent(.offsetsWentBack(topic: topic, partition: partition, expected: wentBack, found: next))
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
            // Without a group the source keeps its own positions: hold messages back until the continuity check
            // shows the broker still holds the same log (it may have come back empty, or the topic recreated).
            // Only when every broker was lost: a cluster that comes back from that may hold another log (it lost its
            // data, or the topic was recreated meanwhile). One broker of several going away does not hold reading back.
            if !hasGroup, error.code == .allBrokersDown {
                problems.add(1, ordering: .relaxed)
                verifying.store(true, ordering: .relaxed)
            }
            guard onSourceEvent != nil || verifying.load(ordering: .relaxed) else { return }
            let first = health.withLock { health in
                defer { health.troubled = true }
                return !health.troubled
            }
            if first { onSourceEvent?(.connectionProblem(error.message)) }
            startProbe()
        }
    }

    /// Starts the probe thread unless one runs. A problem reported after a running probe's last look leaves the
    /// source held back (`verifying`): the probe then starts again as it ends, unless the log was found to differ.
    private func startProbe() {
        guard probing.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        let thread = Thread { [self] in
            probeUntilReachable()
            probing.store(false, ordering: .releasing)
            if !hasGroup, verifying.load(ordering: .relaxed), !diverged.load(ordering: .relaxed),
                state.withLock({ !$0.closed })
            {
                startProbe()
            }
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
        while state.withLock({ !$0.closed }), health.withLock({ $0.troubled }) || verifying.load(ordering: .relaxed) {
            Thread.sleep(forTimeInterval: wait)
            wait = 2
            guard (try? handle.partitions(of: topic, timeoutMs: 2_000)) != nil else { continue }
            if !hasGroup, verifying.load(ordering: .relaxed) {
                // A problem reported while the check ran may hide another change of log: check again.
                let before = problems.load(ordering: .relaxed)
                if verifyContinuity(unlessProblemsSince: before) { return }
                continue
            }
            guard let report = onSourceEvent else { return }
            let lastOffsets: [Int32: Int64]? = health.withLock { health in
                guard health.troubled else { return nil }  // a message already proved it
                health.troubled = false
                return health.lastOffsets
            }
            guard let lastOffsets else { return }
            report(.recovered)
            for (partition, offset) in lastOffsets.sorted(by: { $0.key < $1.key }) where offset >= 0 {
                if !stillHolds(partition: partition, offset: offset) {
                    report(.offsetsWentBack(topic: topic, partition: partition, expected: offset + 1, found: nil))
                }
            }
            return
        }
    }

    /// Whether the broker still has the message at `offset` of `partition` (read with a short-lived consumer).
    private func stillHolds(partition: Int32, offset: Int64) -> Bool {
        let callbacks = RdKafkaCallbacks(logger: logger)
        callbacks.onError { _ in }
        guard let probe = try? RdKafkaHandle(kind: .consumer, properties: probeProperties, callbacks: callbacks),
            (try? probe.assign(topic: topic, partitions: [partition], offset: offset)) != nil
        else { return true }  // cannot tell: say nothing
        for _ in 0..<10 {
            guard let message = probe.consumerPoll(timeoutMs: 500) else { continue }
            if message.error != nil { continue }
            if message.isPartitionEOF { return message.offset > offset }
            return message.offset == offset
        }
        return false
    }
}
