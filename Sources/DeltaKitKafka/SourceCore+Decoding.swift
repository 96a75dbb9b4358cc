import DeltaKit
import Foundation
import Synchronization

/// One polled message becomes one item: an event (decoded in librdkafka's buffer when it can be), a tombstone's
/// delete, a malformed message, or the caught-up marker once every assigned partition reached its end.
extension SourceCore {
    /// The delete a tombstone (a null-value message, see `KafkaEventSink.Configuration.sendsTombstones`) stands
    /// for: its key, at the order and timestamp of its headers. A tombstone without the order header cannot be
    /// placed among the key's events, so it is malformed (reported and skipped, never applied).
    static func tombstoneEvent(_ message: RdKafkaMessage) throws -> ChangeEvent<Record> {
        typealias Sink = KafkaEventSink<Record>.Configuration
        guard
            let orderText = message.tombstoneHeaders[Sink.tombstoneOrderHeader].map({
                String(decoding: $0, as: UTF8.self)
            }),
            let order = Int64(orderText)
        else {
            throw ChangeEventDecodingError(
                field: ChangeEventField.order,
                value: nil,
                reason:
                    "a tombstone (null value) without a numeric '\(Sink.tombstoneOrderHeader)' header; DeltaKit cannot place it among the key's events, so it never changes state"
            )
        }
        guard let keyBytes = message.key else {
            throw ChangeEventDecodingError(field: Record.keyField, value: nil, reason: "a tombstone without a key")
        }
        let timestamp =
            message.tombstoneHeaders[Sink.tombstoneTimestampHeader]
            .flatMap { EventTimestamp.parse(String(decoding: $0, as: UTF8.self)) } ?? Date(timeIntervalSince1970: 0)
        return .delete(key: try ChangeEvent<Record>.key(fromKeyBytes: keyBytes), order: order, timestamp: timestamp)
    }

    /// No key, or the key of `event`'s record (without a closure: this runs for every message).
    private static func keyAgrees(_ key: UnsafeRawBufferPointer?, _ event: ChangeEvent<Record>) -> Bool {
        guard let key else { return true }
        return event.isKeyed(by: key)
    }

    /// The event in a message with a value: decoded, and refused when the message has a key that is not the
    /// record's (as ``KafkaEventSink`` writes it, ``ChangeEvent/keyBytes``). Kafka keeps order per partition and
    /// the partition follows the message key, so a mis-keyed event can overtake or trail its key's other events
    /// (and log compaction would treat it as another key's latest message). A message without a key is accepted:
    /// other producers may not key, and then the order of a key's events is the producer's responsibility.
    static func keyedEvent(_ message: RdKafkaMessage) throws -> ChangeEvent<Record> {
        let event = try ChangeEvent<Record>(jsonData: message.value ?? [])
        if let key = message.key,
            !key.withUnsafeBytes({ event.isKeyed(by: $0) })
        {
            throw event.misKeyedError(kafkaKey: key)
        }
        return event
    }

    /// Turns one polled message into an item appended to `pending` (an event decoded in place from
    /// librdkafka's buffer — for a record type with a row layout, into a row of this poll's `chunk` —, a malformed
    /// message, the caught-up marker), or reports a client error (after handing over what is pending, to keep the
    /// order). The rows of `chunk` from `itemized` on are not in `pending` yet: they go in as one range before the
    /// next other item (``itemize(_:from:into:)``), so that the common path appends to the chunk only.
    func take(
        _ view: RdKafkaMessageView,
        schema: RecordSchema?,
        into pending: inout [SourceItem<Record>],
        chunk: inout RowChunk?,
        itemized: inout Int
    ) {
        if let value = view.plainValue {
            if let rowLayout, chunk != nil {
                // Reached when the fast path (``RowIntake/take(_:chunk:machine:)``) declined: a key the row cannot
                // tell by itself (the typed event is asked), or a message the one-pass decoder does not take (tried
                // once more here, then left to the slow path below).
                if takeRow(view, value, layout: rowLayout, chunk: &chunk!) { return }
            } else if let event = try? ChangeEvent<Record>.decodeWire(value, schema: schema),
                Self.keyAgrees(view.key, event)
            {
                // A message with a key must carry that key's record (``keyedEvent(_:)``); else the slow path
                // reports it.
                guard noteData(partition: view.partition, offset: view.offset) else { return }
                pending.append(
                    .event(
                        KafkaConsumedEvent(
                            event: event,
                            topic: topic,
                            partition: view.partition,
                            offset: view.offset,
                            fingerprint: view.fingerprint,
                            traceHeaders: view.traceHeaders
                        )
                    )
                )
                return
            }
        }
        let message = view.copy()  // the unusual cases: copied out of librdkafka's buffer
        if let chunk { Self.itemize(chunk, from: &itemized, into: &pending) }
        if message.error != nil {
            if let chunk { Self.share(chunk, with: &pending) }
            push(contentsOf: pending)
            pending.removeAll()
        }
        guard let next = item(from: message) else { return }
        // With a row layout every event travels as a row, in order with the others (a tombstone's delete too).
        if case .event(let event) = next, let rowLayout, chunk != nil,
            (try? chunk!.append(event, layout: rowLayout)) != nil
        {
            Self.itemize(chunk!, from: &itemized, into: &pending)
            return
        }
        pending.append(next)
    }

    /// The fast path for a record type with a row layout: the value decoded into a row of `chunk` in librdkafka's
    /// buffer, and refused when the message has a key that is not the row's (as for ``keyedEvent(_:)``). `false`
    /// leaves the message to the slow path, which decides and explains.
    @inline(__always)
    private func takeRow(
        _ view: RdKafkaMessageView,
        _ value: UnsafeRawBufferPointer,
        layout: RowLayout,
        chunk: inout RowChunk
    ) -> Bool {
        var taken = chunk.append(view, value: value, layout: layout, traceHeaders: true, fingerprint: true)
        if taken == nil {
            // A key type the row cannot tell by itself: ask the typed event.
            let row = chunk.rows.count - 1
            let event = try? ChangeEvent<Record>(row: row, of: chunk.rows, layout: layout)
            taken = view.key.map { key in event?.isKeyed(by: key) ?? false } ?? true
            if taken == false { chunk.removeLast() }
        }
        guard taken == true else { return false }
        guard noteData(partition: view.partition, offset: view.offset) else {
            chunk.removeLast()
            return true
        }
        return true
    }

    /// Puts rows `itemized...` of `chunk` into `pending` as one item (a placeholder range, given the poll's chunk
    /// by ``share(_:with:)`` once the poll is over, so that appending to the chunk never copies it).
    static func itemize(_ chunk: RowChunk, from itemized: inout Int, into pending: inout [SourceItem<Record>]) {
        guard itemized < chunk.count else { return }
        pending.append(.rows(.placeholder, itemized..<chunk.count))
        itemized = chunk.count
    }

    /// Gives the row items among `pending` the poll's chunk (one shared copy, not one per item).
    static func share(_ chunk: RowChunk, with pending: inout [SourceItem<Record>]) {
        for index in pending.indices {
            guard case .rows(let placeholder, let range) = pending[index], placeholder.rows.width == 0 else {
                continue
            }
            pending[index] = .rows(chunk, range)
        }
    }

    /// An ordinary message was read at `offset` of `partition`: the partition is no longer at its end, and
    /// the source events are told about it. `false` while the continuity check runs: nothing is delivered then,
    /// the partitions are re-positioned after it.
    private func noteData(partition: Int32, offset: Int64) -> Bool {
        guard let observation = machine.withLock({ $0.messageRead(partition: partition, offset: offset) }) else {
            return false
        }
        report(observation, partition: partition, found: offset)
        return true
    }

    private func item(from message: RdKafkaMessage) -> SourceItem<Record>? {
        if message.isPartitionEOF {
            let assignment = Set(handle.assignment().filter { $0.topic == topic }.map(\.partition))
            guard
                let (observation, marker) = machine.withLock({
                    $0.partitionEnded(message.partition, at: message.offset, assignment: assignment)
                })
            else { return nil }
            report(observation, partition: message.partition, found: message.offset)
            return marker ? .caughtUp : nil
        }
        if let error = message.error {
            clientError(error)
            return nil
        }
        guard noteData(partition: message.partition, offset: message.offset) else { return nil }
        let fingerprint = message.fingerprint
        do {
            let event =
                if message.value == nil {
                    try Self.tombstoneEvent(message)
                } else {
                    try Self.keyedEvent(message)
                }
            return .event(
                KafkaConsumedEvent(
                    event: event,
                    topic: message.topic,
                    partition: message.partition,
                    offset: message.offset,
                    fingerprint: fingerprint,
                    traceHeaders: message.traceHeaders
                )
            )
        } catch {
            let decodingError =
                error as? ChangeEventDecodingError
                ?? ChangeEventDecodingError(field: nil, value: nil, reason: "\(error)")
            return .malformed(
                MalformedMessage(
                    topic: message.topic,
                    partition: message.partition,
                    offset: message.offset,
                    key: message.key,
                    value: message.value,
                    error: decodingError,
                    fingerprint: fingerprint
                )
            )
        }
    }
}

/// The poll thread's path for a message of a record type with a row layout: decoded into a row of the poll's chunk,
/// its key checked, its read noted — in code that is not generic over the record type, so that nothing per
/// message asks the runtime for type metadata. What it cannot finish it leaves to ``SourceCore/take(_:schema:into:chunk:itemized:)``.
struct RowIntake {
    let layout: RowLayout
    /// Whether to read each message's headers for a trace context (only while an instrument is active).
    let readsTraceHeaders: Bool

    enum Outcome {
        /// Taken (or dropped while reading is held back).
        case done
        /// Taken; the read tells something to report (``SourceCore/report(_:partition:found:)``).
        case report(SourceMachine.Observation, partition: Int32, offset: Int64)
        /// Not taken: the generic path decides.
        case declined
    }

    /// What the poll thread knows of the partition run it is in (consecutive messages of one partition in one
    /// batch): the state machine is asked at a run's first and last messages, and at any offset that does not
    /// follow, rather than at every message. A batch was taken from librdkafka at one instant, so a hold-back
    /// that begins while its run is read could as well have begun after it; the machine's view of the run's
    /// offsets is the same at its end.
    struct Run {
        /// The run's partition, valid while `checked`.
        private var partition: Int32 = 0
        /// The offset of the run's latest message taken.
        private var offset: Int64 = 0
        /// The machine took a message of this run (reading was not held back) and no other path ran since.
        private(set) var checked = false

        /// What ``read(partition:offset:endsRun:ask:)`` found.
        enum Read<Observation> {
            /// The message follows the run's latest one: taken, the machine not asked.
            case continues
            /// The machine took the message and says this of it.
            case taken(Observation)
            /// Reading is held back: drop the message.
            case heldBack
        }

        /// A message read at `offset` of `partition` (`endsRun`: the last of its partition's run in the batch).
        /// `ask(previous)` asks the machine (`SourceStateMachine.messageRead(partition:offset:)`) of the message,
        /// after `previous` — the run's latest offset, when the message does not follow it — so that the machine
        /// compares the offset with the one before it, as if it had seen every message of the run.
        @inline(__always)
        mutating func read<Observation>(
            partition: Int32,
            offset: Int64,
            endsRun: Bool,
            ask: (_ previous: Int64?) -> Observation?
        ) -> Read<Observation> {
            let sameRun = checked && self.partition == partition
            let follows = sameRun && offset > self.offset
            if follows, !endsRun {
                self.offset = offset
                return .continues
            }
            guard let observation = ask(sameRun && !follows ? self.offset : nil) else {
                checked = false
                return .heldBack
            }
            self = Run(partition: partition, offset: offset, checked: !endsRun)
            return .taken(observation)
        }

        /// Another path handled a message: the next one asks the machine.
        mutating func interrupt() { checked = false }
    }

    /// Takes `view` into `chunk` when it is a plain event whose key the row tells.
    @inline(__always)
    func take(
        _ view: RdKafkaMessageView,
        chunk: inout RowChunk,
        machine: borrowing Mutex<SourceMachine>,
        run: inout Run,
        endsRun: Bool,
        fingerprint: Bool
    ) -> Outcome {
        guard let value = view.plainValue else { return .declined }
        switch chunk.append(
            view,
            value: value,
            layout: layout,
            traceHeaders: readsTraceHeaders,
            fingerprint: fingerprint
        ) {
        case true?: break
        case nil:
            chunk.removeLast()  // the key needs the typed event: the generic path decodes it again
            return .declined
        case false?: return .declined
        }
        let partition = view.partition
        let offset = view.offset
        let read = run.read(partition: partition, offset: offset, endsRun: endsRun) { previous in
            machine.withLock { machine -> SourceMachine.Observation? in
                if let previous, machine.messageRead(partition: partition, offset: previous) == nil { return nil }
                return machine.messageRead(partition: partition, offset: offset)
            }
        }
        let observation: SourceMachine.Observation
        switch read {
        case .continues: return .done
        case .heldBack:
            chunk.removeLast()  // held back: dropped, as ``SourceCore/noteData(partition:offset:)`` does
            return .done
        case .taken(let taken): observation = taken
        }
        if observation.recovered || observation.wentBack != nil {
            return .report(observation, partition: partition, offset: offset)
        }
        return .done
    }
}
