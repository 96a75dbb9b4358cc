import DeltaKit
import Logging
import NIOCore
import Synchronization

/// The poll thread: takes messages from librdkafka as far as the reader's demand allows (back-pressure), hands
/// them over one poll at a time, and, without a group, reads partitions added to the topic.
extension SourceCore {
    /// One turn of the poll thread; `readingTraceHeaders` says whether messages' headers are read for trace
    /// contexts (decided once, when reading starts: ``startPolling()``).
    func pollOnce(readingTraceHeaders: Bool) {
        if !hasGroup { refreshPartitionsIfDue() }
        let decision = machine.withLock {
            $0.pollDecision(now: .now, demandEpoch: demand.epoch, demandEnded: demand.hasEnded)
        }
        switch decision {
        case .waitForDemand:
            demand.waitForDemand(timeout: .milliseconds(100))
        case .poll(let limit, let pause, let resume):
            if pause { handle.pause(handle.assignment()) }
            if resume { handle.resume(handle.assignment()) }
            _ = pollAvailable(upTo: limit, readingTraceHeaders: readingTraceHeaders)
        }
    }

    /// Takes what librdkafka already holds, up to `limit` messages (at most ``pollBatchLimit``) — when it holds
    /// nothing, first waits up to 100 ms for one — and hands the items to the application as one element of the
    /// hand-off. Returns how many messages were taken.
    private func pollAvailable(upTo limit: Int, readingTraceHeaders: Bool) -> Int {
        let limit = min(limit, Self.pollBatchLimit)
        var poll = Poll(
            schema: try? Record.schema,  // once per poll, not per message
            chunk: rowLayout.map { RowChunk(width: $0.width) }
        )
        let intake = rowLayout.map { RowIntake(layout: $0, readsTraceHeaders: readingTraceHeaders) }
        // A batch of what is there; only an empty queue is waited on, one message's worth (a batch call with a
        // timeout would wait for the whole batch to fill). The poll's state is one variable that closure literals
        // capture, so that the compiler checks its accesses rather than the runtime at every message.
        var taken = handle.consumeAvailable(upTo: limit, willTake: { poll.chunk?.reserve($0) }) { view, endsRun in
            visit(view, endsRun: endsRun, intake, &poll)
        }
        if taken == 0, handle.consumerPoll(timeoutMs: 100, { visit($0, endsRun: true, intake, &poll) }) != nil {
            taken =
                1
                + handle.consumeAvailable(upTo: limit - 1, willTake: { poll.chunk?.reserve($0) }) { view, endsRun in
                    visit(view, endsRun: endsRun, intake, &poll)
                }
        }
        var pending = poll.pending
        poll.pending = []  // moved out, so that it stays unique
        var itemized = poll.itemized
        if let chunk = poll.chunk {
            Self.itemize(chunk, from: &itemized, into: &pending)
            Self.share(chunk, with: &pending)
        }
        if !hasGroup { recordDelivered(pending) }
        push(contentsOf: pending)
        return taken
    }

    /// What one poll holds while it takes messages.
    private struct Poll {
        let schema: RecordSchema?
        /// This poll's rows, which its items share.
        var chunk: RowChunk?
        var run = RowIntake.Run()
        var pending: [SourceItem<Record>] = []
        /// The rows of `chunk` already in `pending`.
        var itemized = 0

        init(schema: RecordSchema?, chunk: RowChunk?) {
            self.schema = schema
            self.chunk = chunk
        }
    }

    /// One message of a poll: the common case first, in code that is not generic (``RowIntake``), else
    /// ``take(_:schema:into:chunk:itemized:)``.
    @inline(__always)
    private func visit(_ view: RdKafkaMessageView, endsRun: Bool, _ intake: RowIntake?, _ poll: inout Poll) {
        if let intake, poll.chunk != nil {
            let fingerprint = endsRun || fingerprintsEveryMessage
            switch intake.take(
                view,
                chunk: &poll.chunk!,
                machine: machine,
                run: &poll.run,
                endsRun: endsRun,
                fingerprint: fingerprint
            ) {
            case .done: return
            case .report(let observation, let partition, let offset):
                report(observation, partition: partition, found: offset)
                return
            case .declined: break
            }
        }
        poll.run.interrupt()  // the generic path asks the machine itself
        take(view, schema: poll.schema, into: &poll.pending, chunk: &poll.chunk, itemized: &poll.itemized)
    }

    /// Keeps the last message of each partition among `items` (for the continuity check after a reconnect).
    private func recordDelivered(_ items: [SourceItem<Record>]) {
        var last: [Int32: MessageFingerprint] = [:]
        for item in items {
            switch item {
            case .event(let event): last[event.partition] = event.fingerprint
            case .rows(let chunk, let range):
                // Rows without a fingerprint (``RowChunk/append(_:value:layout:traceHeaders:fingerprint:)``) are
                // never the last of their partition's run; one dropped after it leaves an earlier, still true pair.
                for row in range where chunk.fingerprints[row] != .unrecorded {
                    last[chunk.partitions[row]] = chunk.fingerprints[row]
                }
            case .malformed(let message): last[message.partition] = message.fingerprint
            case .caughtUp, .failure: break
            }
        }
        guard !last.isEmpty else { return }
        machine.withLock { $0.recordDelivered(last) }
    }

    /// Without a group, every ``KafkaEventSource/Configuration/partitionRefreshInterval`` asks for the topic's
    /// partitions and reads those added since from their beginning (not while a continuity check runs).
    private func refreshPartitionsIfDue() {
        guard machine.withLock({ $0.partitionRefreshDue(now: .now) }),
            let partitions = try? handle.partitions(of: topic, timeoutMs: 1_000)
        else { return }
        let assigned = Set(handle.assignment().filter { $0.topic == topic }.map(\.partition))
        let added = partitions.filter { !assigned.contains($0) }
        guard !assigned.isEmpty, !added.isEmpty else { return }
        do {
            try handle.addToAssignment(topic: topic, partitions: added, offset: -2)
            machine.withLock { $0.partitionsAdded() }
            logger.info(
                "reading partitions added to '\(topic)' from their beginning",
                metadata: [KafkaTelemetry.Key.partition: "\(added.map(String.init).joined(separator: ","))"]
            )
        } catch {
            logger.warning("cannot read partitions \(added) added to '\(topic)': \(error); retrying")
            machine.withLock { $0.partitionRefreshFailed(now: .now) }
        }
    }

    /// The most messages the poll thread takes from librdkafka before handing them over.
    static var pollBatchLimit: Int { 512 }

    func push(_ item: SourceItem<Record>) { push(contentsOf: [item]) }

    /// Hands `items` to the application in one step (counted first: ``SourceStateMachine/yielding(_:hasData:)``).
    func push(contentsOf items: [SourceItem<Record>]) {
        guard !items.isEmpty else { return }
        let hasData = items.contains { if case .caughtUp = $0 { false } else { true } }
        let count = items.reduce(0) { $0 + $1.messageCount }
        machine.withLock { $0.yielding(count, hasData: hasData) }
        let epoch = demand.epoch
        if handOff.yield(items) == .stopProducing { machine.withLock { $0.yieldRefused(epoch: epoch) } }
    }

    /// How many batches the poll thread has handed to the producer side so far.
    var yieldedBatches: Int { machine.withLock { $0.yieldedBatches } }

    var backPressureStatistics: (peakBuffered: Int, engaged: Int, released: Int, paused: Int) {
        machine.withLock { $0.backPressureStatistics }
    }
}
