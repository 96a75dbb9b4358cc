import DeltaKit
import Foundation
import Logging

/// Whether a partition's log still holds what a reader took from it (see ``TopicContinuity``).
enum ContinuityVerdict: Sendable, Equatable {
    /// The message at the fingerprint's offset is the same one: the log continues.
    case same
    /// Cannot be told: the message was removed by retention or compaction, or the cluster did not answer.
    /// Reading goes on (retention and compaction remove old messages of the same log).
    case unverifiable(String)
    /// Another log: the message there differs, the partition is shorter than the position, or the partition or
    /// the topic is gone. The text says what the log holds now.
    case different(String)
}

/// The log a reader followed is gone — the topic was deleted and recreated, or the broker lost its data — so the
/// reader's state and positions cannot go on with what the topic holds now: the `underlying` error of an
/// `incompatibleStore` `DeltaKitError`. Rebuild the state from the topic's beginning
/// (`KafkaMaterializer`'s `rebuildOnIncompatibleTopic`).
public struct TopicLogChanged: Error, Sendable, CustomStringConvertible {
    /// The topic.
    public var topic: String
    /// Per partition that differs: what the reader had and what the topic holds now.
    public var partitions: [Int32: String]

    /// `partition 0: … ; partition 1: …`.
    public var description: String {
        partitions.sorted { $0.key < $1.key }.map { "partition \($0.key): \($0.value)" }.joined(separator: "; ")
    }
}

/// What a reader expects of one partition: the next offset it reads and, when known, the fingerprint of the last
/// message it applied (normally at `next - 1`).
struct ExpectedPosition: Sendable {
    var next: Int64
    var fingerprint: MessageFingerprint?

    /// `next offset 90, last applied offset 89 (timestamp …, digest …)`.
    var description: String {
        "next offset \(next)\(fingerprint.map { ", last applied \($0)" } ?? "")"
    }

    /// What differs, for ``TopicLogChanged``: what the reader had, then `what` the topic holds now.
    func difference(_ what: String, had: String) -> String { "\(had) \(description); \(what)" }
}

/// Re-reads, with a short-lived consumer, the last message a reader applied from each partition and compares it
/// with the fingerprint the reader kept: a topic that was deleted and recreated, or a broker that lost its data,
/// holds another message there — or fewer messages than the position — and must never be resumed silently.
enum TopicContinuity {
    /// The verdict per partition of `expected` (partitions with nothing read yet are not checked).
    static func verify(
        topic: String,
        expected: [Int32: ExpectedPosition],
        kafka: KafkaConfiguration,
        logger: Logger,
        timeout: Duration
    ) -> [Int32: ContinuityVerdict] {
        let wanted = expected.filter { $0.value.next > 0 }
        guard !wanted.isEmpty else { return [:] }
        let timeoutMs = timeout.int32Milliseconds(minimum: 100)
        let settings = ProbeSettings(
            kafka: kafka,
            groupID: "deltakit-continuity-probe",
            extra: [("auto.offset.reset", "error"), ("fetch.wait.max.ms", "100")]
        )
        guard let probe = try? RdKafkaHandle.client(.consumer, settings, logger: logger) else {
            return wanted.mapValues { _ in .unverifiable("no consumer could be created to check") }
        }
        probe.callbacks.onError { _ in }
        defer { _ = probe.closeConsumer() }
        let partitions: [Int32]
        do {
            guard let found = try probe.partitions(of: topic, timeoutMs: timeoutMs) else {
                return wanted.mapValues { _ in .different("topic '\(topic)' no longer exists") }
            }
            partitions = found
        } catch {
            return wanted.mapValues { _ in .unverifiable("the cluster did not answer: \(error)") }
        }
        var verdicts: [Int32: ContinuityVerdict] = [:]
        var targets: [Int32: Int64] = [:]
        for (partition, position) in wanted {
            if !partitions.contains(partition) {
                verdicts[partition] = .different("the topic has \(partitions.count) partitions now, not this one")
            } else {
                targets[partition] = position.fingerprint?.offset ?? position.next - 1
            }
        }
        guard !targets.isEmpty else { return verdicts }
        let start = ContinuousClock.now
        let deadline = start + timeout
        // First read each target offset directly. A broker answers an offset past the end with OFFSET_OUT_OF_RANGE
        // (Kafka) or not at all (Tansu holds the fetch, and its end offsets are not reliable): partitions still
        // undecided are then read from their beginning, where the partition's end shows whether it reaches the
        // target.
        for (phase, from) in [
            (start + min(timeout / 3, .seconds(3)), targets), (deadline, targets.mapValues { _ in -2 }),
        ] {
            let undecided = targets.keys.filter { verdicts[$0] == nil }
            guard !undecided.isEmpty else { break }
            do {
                try probe.assign(topic: topic, partitions: undecided, offset: -2, overrides: from)
            } catch {
                for partition in undecided { verdicts[partition] = .unverifiable("cannot read it: \(error)") }
                break
            }
            while undecided.contains(where: { verdicts[$0] == nil }), ContinuousClock.now < phase {
                guard let message = probe.consumerPoll(timeoutMs: 100), let target = targets[message.partition],
                    undecided.contains(message.partition), verdicts[message.partition] == nil
                else { continue }
                verdicts[message.partition] = judge(message, target: target, position: wanted[message.partition]!) {
                    outOfRange(probe, topic: topic, partition: message.partition, target: target, $0)
                }
            }
        }
        for partition in wanted.keys where verdicts[partition] == nil {
            verdicts[partition] = .unverifiable("partition \(partition) did not answer within \(timeout)")
        }
        return verdicts
    }

    /// The partitions of `verdicts` that follow another log, each with what the reader `had` (from `expected`) and
    /// what the topic holds now; `nil` when none does. Partitions that could not be checked are logged.
    static func changes(
        _ verdicts: [Int32: ContinuityVerdict],
        expected: [Int32: ExpectedPosition],
        topic: String,
        had: String,
        logger: Logger
    ) -> TopicLogChanged? {
        var different: [Int32: String] = [:]
        for (partition, verdict) in verdicts.sorted(by: { $0.key < $1.key }) {
            switch verdict {
            case .same: break
            case .unverifiable(let why):
                logger.warning("continuity of '\(topic)' partition \(partition) not checked: \(why)")
            case .different(let what):
                different[partition] = expected[partition]!.difference(what, had: had)
            }
        }
        return different.isEmpty ? nil : TopicLogChanged(topic: topic, partitions: different)
    }

    /// The verdict `message` gives for a partition read at (or before) `target`; `nil` when it says nothing yet.
    private static func judge(
        _ message: RdKafkaMessage,
        target: Int64,
        position: ExpectedPosition,
        outOfRange: (ExpectedPosition) -> ContinuityVerdict
    ) -> ContinuityVerdict? {
        let partition = message.partition
        if message.isPartitionEOF {
            // The end comes before the target: the partition holds fewer messages than the position.
            guard message.offset <= target else { return nil }
            return .different("the topic's partition ends at offset \(message.offset) now")
        }
        if message.error != nil { return outOfRange(position) }
        if message.offset > target {
            return .unverifiable(
                "offset \(target) of partition \(partition) was removed (compaction), the next is \(message.offset)"
            )
        }
        return message.offset == target ? compare(message, partition: partition, with: position) : nil
    }

    private static func compare(
        _ message: RdKafkaMessage,
        partition: Int32,
        with position: ExpectedPosition
    ) -> ContinuityVerdict {
        guard let expected = position.fingerprint else { return .same }
        let found = message.fingerprint
        if found == expected { return .same }
        return .different("the topic holds another message there now: \(found)")
    }

    /// The target offset is out of the partition's range: past its end (another log), or before its start
    /// (removed by retention).
    private static func outOfRange(
        _ probe: RdKafkaHandle,
        topic: String,
        partition: Int32,
        target: Int64,
        _ position: ExpectedPosition
    ) -> ContinuityVerdict {
        guard let (low, high) = probe.queryWatermarks(topic: topic, partition: partition, timeoutMs: 5_000) else {
            return .unverifiable("offset \(target) of partition \(partition) is out of range, and its range is unknown")
        }
        if high <= target {
            return .different("the topic's partition ends at offset \(high) now")
        }
        return .unverifiable(
            "offset \(target) of partition \(partition) was removed by retention (the partition starts at \(low))"
        )
    }
}
