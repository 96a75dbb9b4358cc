import DeltaKit
import Logging
import NIOCore
import Synchronization

/// The poll thread: takes messages from librdkafka as far as the reader's demand allows (back-pressure), hands
/// them over one poll at a time, and, without a group, reads partitions added to the topic.
extension SourceCore {
    func pollOnce() {
        if !hasGroup { refreshPartitionsIfDue() }
        let (wanted, paused, released) = pollState.withLock { poll in
            var released = false
            if let stoppedAt = poll.stoppedAt, demand.wantsMore(since: stoppedAt) {
                poll.stoppedAt = nil
                released = true
            }
            return (poll.stoppedAt == nil && !demand.hasEnded, poll.paused, released)
        }
        if released { state.withLock { $0.backPressureReleased += 1 } }
        // The producer's depth does not count items the reader took but has not handed to the application yet;
        // `room` does, so that no more than `bufferSize` items ever wait.
        let room = bufferSize - waiting
        guard wanted, room > 0 else {
            // The application is behind. The poll thread stops taking messages (librdkafka keeps prefetching, up to
            // queued.max.messages.kbytes) until the reader drained the hand-off to its low watermark. Pausing the
            // partitions instead would drop librdkafka's prefetched messages and fetch them again on resume, a
            // stall on every cycle (`Documentation/performance.md`). A group member must keep polling, though —
            // rebalances are served by the poll — so one whose reader stays behind for `groupStallBeforePause`
            // pauses its partitions and polls on.
            let stalledSince = pollState.withLock { poll in
                if poll.stalledSince == nil { poll.stalledSince = .now }
                return poll.stalledSince!
            }
            if !hasGroup || ContinuousClock.now - stalledSince < KafkaEventSource<Record>.groupStallBeforePause {
                demand.waitForDemand(timeout: .milliseconds(100))
                return
            }
            if !paused {
                handle.pause(handle.assignment())
                pollState.withLock { $0.paused = true }
                state.withLock { $0.partitionsPaused += 1 }
            }
            // Paused partitions deliver nothing (librdkafka drops what it prefetched for them); the poll still
            // serves the group (rebalances, errors), and a message that was on its way is kept.
            _ = pollAvailable(upTo: max(1, room))
            return
        }
        pollState.withLock { $0.stalledSince = nil }
        if paused {
            handle.resume(handle.assignment())
            pollState.withLock { $0.paused = false }
        }
        _ = pollAvailable(upTo: room)
    }

    /// How many items wait for the application.
    private var waiting: Int { state.withLock { $0.yielded - $0.handedOver } }

    /// Waits up to 100 ms for a message, then takes what librdkafka already holds, up to `limit` messages
    /// (at most ``pollBatchLimit``), and hands the items to the application as one element of the hand-off.
    /// Returns how many messages were taken.
    private func pollAvailable(upTo limit: Int) -> Int {
        var pending: [SourceItem<Record>] = []
        var taken = 0
        let limit = min(limit, Self.pollBatchLimit)
        let schema = try? Record.schema  // once per poll, not per message
        while taken < limit,
            handle.consumerPoll(timeoutMs: taken == 0 ? 100 : 0, { handle($0, schema: schema, into: &pending) }) != nil
        {
            taken += 1
        }
        if !hasGroup { recordDelivered(pending) }
        push(contentsOf: pending)
        return taken
    }

    /// Keeps the last message of each partition among `items` (for the continuity check after a reconnect).
    private func recordDelivered(_ items: [SourceItem<Record>]) {
        var last: [Int32: MessageFingerprint] = [:]
        for item in items {
            switch item {
            case .event(let event): last[event.partition] = event.fingerprint
            case .malformed(let message): last[message.partition] = message.fingerprint
            case .caughtUp, .failure: break
            }
        }
        guard !last.isEmpty else { return }
        delivered.withLock { $0.merge(last) { _, new in new } }
    }

    /// Without a group, every ``KafkaEventSource/Configuration/partitionRefreshInterval`` asks for the topic's
    /// partitions and reads those added since from their beginning (not while a continuity check runs).
    private func refreshPartitionsIfDue() {
        let due = lastPartitionRefresh.withLock { last in
            guard ContinuousClock.now - last >= partitionRefreshInterval else { return false }
            last = .now
            return true
        }
        guard due, !verifying.load(ordering: .relaxed),
            let partitions = try? handle.partitions(of: topic, timeoutMs: 1_000)
        else { return }
        let assigned = Set(handle.assignment().filter { $0.topic == topic }.map(\.partition))
        let added = partitions.filter { !assigned.contains($0) }
        guard !assigned.isEmpty, !added.isEmpty else { return }
        do {
            try handle.addToAssignment(topic: topic, partitions: added, offset: -2)
            pollState.withLock { $0.markerPending = false }
            logger.info(
                "reading partitions added to '\(topic)' from their beginning",
                metadata: [KafkaTelemetry.Key.partition: "\(added.map(String.init).joined(separator: ","))"]
            )
        } catch {
            logger.warning("cannot read partitions \(added) added to '\(topic)': \(error); retrying")
            lastPartitionRefresh.withLock { $0 = .now - partitionRefreshInterval }
        }
    }

    /// The most messages the poll thread takes from librdkafka before handing them over.
    static var pollBatchLimit: Int { 512 }

    func push(_ item: SourceItem<Record>) { push(contentsOf: [item]) }

    /// Hands `items` to the application in one step. Counted before they are yielded, so that ``markCaughtUp()``
    /// never sees the application level with the poll thread while items are on their way.
    func push(contentsOf items: [SourceItem<Record>]) {
        guard !items.isEmpty else { return }
        state.withLock { state in
            if items.contains(where: { if case .caughtUp = $0 { false } else { true } }) { state.caughtUp = false }
            state.yielded += items.count
            state.yieldedBatches += 1
            state.peakBuffered = max(state.peakBuffered, state.yielded - state.handedOver)
        }
        let epoch = demand.epoch
        if feed.yield(items) == .stopProducing {
            let first = pollState.withLock { poll in
                defer { poll.stoppedAt = epoch }
                return poll.stoppedAt == nil
            }
            if first { state.withLock { $0.backPressureEngaged += 1 } }
        }
    }

    /// How many batches the poll thread has handed to the producer side so far.
    var yieldedBatches: Int { state.withLock { $0.yieldedBatches } }

    var backPressureStatistics: (peakBuffered: Int, engaged: Int, released: Int, paused: Int) {
        state.withLock { ($0.peakBuffered, $0.backPressureEngaged, $0.backPressureReleased, $0.partitionsPaused) }
    }
}
