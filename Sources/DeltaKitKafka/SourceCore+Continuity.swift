import DeltaKit
import Synchronization

/// Without a group the source keeps its own positions, so after losing every broker it holds messages back until
/// it has checked that the topic still holds the log it was reading.
extension SourceCore {
    /// Without a group, once the cluster answers again: re-reads the last message delivered from each partition.
    /// The same log: every partition is re-positioned right after what was delivered (messages that arrived
    /// meanwhile were held back) and reading goes on. Another log (topic recreated, broker came back empty or
    /// shorter): the events end with `incompatibleStore` — state built from the old log must not be continued
    /// with the new one's offsets.
    /// Returns `false` when a new connection problem was reported while it ran (reading stays held back).
    func verifyContinuity(unlessProblemsSince before: Int) -> Bool {
        let delivered = machine.withLock { $0.delivered }
        let assigned = handle.assignment().filter { $0.topic == topic }.map(\.partition)
        var expected: [Int32: ExpectedPosition] = [:]
        for partition in assigned {
            if let last = delivered[partition] {
                expected[partition] = ExpectedPosition(next: last.offset + 1, fingerprint: last)
            } else if let start = startOffsets[partition] {
                expected[partition] = ExpectedPosition(next: start, fingerprint: nil)
            }
        }
        let verdicts = TopicContinuity.verify(
            topic: topic,
            expected: expected,
            kafka: kafka,
            logger: logger,
            timeout: .seconds(10)
        )
        perform(machine.withLock { $0.continuityCheckAnswered() })
        if let changed = TopicContinuity.changes(
            verdicts,
            expected: expected,
            topic: topic,
            had: "this source read up to",
            logger: logger
        ) {
            for partition in changed.partitions.keys.sorted() {
                onSourceEvent?(
                    .offsetsWentBack(
                        topic: topic,
                        partition: partition,
                        expected: expected[partition]!.next,
                        found: nil
                    )
                )
            }
            machine.withLock { $0.diverge() }
            push(
                .failure(
                    DeltaKitError(
                        code: .incompatibleStore,
                        message:
                            "topic '\(topic)' is not the log this source was reading (deleted and recreated, or the broker lost its data): \(changed); state built from the old log cannot continue with the new one — rebuild it from the topic's beginning (KafkaMaterializer rebuildOnIncompatibleTopic: true for a state file; an in-memory state: start again)",
                        underlying: changed
                    )
                )
            )
            return true
        }
        // A problem reported while the check ran: the log may have changed since; the caller checks again.
        guard machine.withLock({ $0.problems }) == before else { return false }
        // The same log: continue right after the last delivered message of each partition.
        var next: [Int32: Int64] = startOffsets
        for (partition, last) in delivered { next[partition] = last.offset + 1 }
        do {
            try handle.assign(
                topic: topic,
                partitions: assigned,
                offset: startPosition == .earliest ? -2 : -1,
                overrides: next
            )
            machine.withLock { $0.repositioned() }
            return true
        } catch {
            push(
                .failure(
                    DeltaKitError(
                        code: .closed,
                        message: "re-positioning the partitions of '\(topic)' after a reconnect failed: \(error)",
                        underlying: error
                    )
                )
            )
            return true
        }
    }
}
