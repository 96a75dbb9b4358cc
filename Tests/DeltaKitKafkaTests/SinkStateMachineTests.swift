import DeltaKit
import Testing

@testable import DeltaKitKafka

/// The sink's bookkeeping without librdkafka: waiters are plain tokens, and each test checks which ones a
/// transition resumes.
@Suite("Kafka sink state machine")
struct SinkStateMachineTests {
    typealias Machine = SinkStateMachine<String, String>

    /// The tokens of the waiters an action list resumes, and the outcomes of completed sends.
    static func resumed(_ actions: [Machine.Action]) -> [String] {
        actions.map {
            switch $0 {
            case .resume(let waiter): waiter
            case .completeSend(let waiter, let error, let receipt):
                "\(waiter):\(error.map { "\($0.code)" } ?? "ok"):\(receipt)"
            }
        }
    }

    static let failure = DeltaKitError(code: .deliveryFailed, message: "not acknowledged")

    @Test("a send completes once it is sealed and every report is in, with the highest offset per partition")
    func sendCompletes() {
        var machine = Machine()
        let id = machine.startSend()
        machine.reserve(3, for: id)
        // A report may arrive before the send is sealed.
        let step1 = machine.delivered(for: id, failure: nil, partition: 0, offset: 7)
        #expect(step1.isEmpty)
        let step2 = machine.seal(id, waiter: "send")
        #expect(Self.resumed(step2).isEmpty)
        let step3 = machine.delivered(for: id, failure: nil, partition: 1, offset: 3)
        #expect(step3.isEmpty)
        let step4 = machine.delivered(for: id, failure: nil, partition: 0, offset: 9)
        #expect(
            Self.resumed(step4)
                == ["send:ok:EventReceipt(0@9, 1@3)"]
        )
        #expect(machine.outstanding == 0)
        #expect(machine.sendsInProgress == 0)
    }

    @Test("reservations that were not produced are given back; a send with nothing pending completes at its seal")
    func releaseUnproduced() {
        var machine = Machine()
        let id = machine.startSend()
        machine.reserve(4, for: id)
        let step5 = machine.delivered(for: id, failure: nil, partition: 0, offset: 1)
        #expect(step5.isEmpty)
        let step6 = machine.release(3, for: id)
        #expect(step6.isEmpty)
        #expect(machine.outstanding == 0)
        let step7 = machine.seal(id, waiter: "send")
        #expect(Self.resumed(step7) == ["send:ok:EventReceipt(0@1)"])
    }

    @Test("the first failed report stops the sink and is the send's error; later reports still complete it")
    func failureStopsTheSink() {
        var machine = Machine()
        let id = machine.startSend()
        machine.reserve(2, for: id)
        _ = machine.seal(id, waiter: "send")
        let step8 = machine.delivered(for: id, failure: Self.failure, partition: 0, offset: -1)
        #expect(step8.isEmpty)
        #expect(machine.failure?.message == "not acknowledged")
        let other = DeltaKitError(code: .deliveryFailed, message: "second")
        let step9 = machine.fail(other)
        #expect(!step9, "only the first failure is kept")
        let step10 = machine.delivered(for: id, failure: nil, partition: 0, offset: 5)
        #expect(
            Self.resumed(step10)
                == ["send:deliveryFailed:EventReceipt(0@5)"]
        )
        #expect(machine.failure?.message == "not acknowledged")
    }

    @Test("flush waits for the sends in progress when it is called, not for later ones")
    func flushWaitsForSendsInProgress() {
        var machine = Machine()
        let step11 = machine.flush(waiter: "idle flush")
        #expect(Self.resumed(step11) == ["idle flush"])
        let first = machine.startSend()
        let second = machine.startSend()
        machine.reserve(1, for: first)
        machine.reserve(1, for: second)
        let step12 = machine.flush(waiter: "flush")
        #expect(step12.isEmpty)
        let later = machine.startSend()
        machine.reserve(1, for: later)
        _ = machine.seal(first, waiter: "first")
        _ = machine.seal(second, waiter: "second")
        _ = machine.seal(later, waiter: "later")
        let step13 = machine.delivered(for: first, failure: nil, partition: 0, offset: 1)
        #expect(
            Self.resumed(step13)
                == ["first:ok:EventReceipt(0@1)"]
        )
        let step14 = machine.delivered(for: second, failure: nil, partition: 0, offset: 2)
        #expect(
            Self.resumed(step14)
                == ["second:ok:EventReceipt(0@2)", "flush"],
            "the flush resumes with the last send it waited for, while `later` is still in flight"
        )
        #expect(machine.sendsInProgress == 1)
        #expect(machine.flushesStarted == 2)
    }

    @Test("waiting until idle resumes when the last outstanding delivery is reported or released")
    func idle() {
        var machine = Machine()
        let step15 = machine.waitUntilIdle(waiter: "now")
        #expect(Self.resumed(step15) == ["now"])
        let a = machine.startSend()
        let b = machine.startSend()
        machine.reserve(1, for: a)
        machine.reserve(2, for: b)
        let step16 = machine.waitUntilIdle(waiter: "close")
        #expect(step16.isEmpty)
        let step17 = machine.delivered(for: a, failure: nil, partition: 0, offset: 1)
        #expect(step17.isEmpty)
        let step18 = machine.delivered(for: b, failure: nil, partition: 0, offset: 2)
        #expect(step18.isEmpty)
        let step19 = machine.release(1, for: b)
        #expect(Self.resumed(step19) == ["close"])
        #expect(machine.outstanding == 0)
    }

    @Test("senders waiting for queue space try again after the next poll; waits are counted")
    func queueSpace() {
        var machine = Machine()
        let step20 = machine.polled()
        #expect(step20.isEmpty)
        machine.waitForQueueSpace(waiter: "a")
        machine.waitForQueueSpace(waiter: "b")
        #expect(machine.queueFullWaits == 2)
        let step21 = machine.polled()
        #expect(Self.resumed(step21) == ["a", "b"])
        let step22 = machine.polled()
        #expect(step22.isEmpty)
    }

    @Test("close happens once; a failure is kept after close")
    func closeOnce() {
        var machine = Machine()
        let step23 = machine.close()
        #expect(step23)
        let step24 = machine.close()
        #expect(!step24)
        #expect(machine.closed)
        let step25 = machine.fail(Self.failure)
        #expect(step25)
        #expect(machine.failure != nil)
    }

    @Test("reports for an unknown send change nothing")
    func unknownSend() {
        var machine = Machine()
        let step26 = machine.delivered(for: 42, failure: nil, partition: 0, offset: 1)
        #expect(step26.isEmpty)
        let step27 = machine.release(1, for: 42)
        #expect(step27.isEmpty)
        #expect(machine.outstanding == 0)
    }

    @Test(
        "inside librdkafka's flush nothing resumes: a flush's waiter and its sends resume once the flush returned, and the flush is no longer wanted by then"
    )
    func heldWhileLibrdkafkaFlushes() {
        var machine = Machine()
        let id = machine.startSend()
        machine.reserve(2, for: id)
        let sealed = machine.seal(id, waiter: "send")
        #expect(sealed.isEmpty)
        #expect(!machine.wantsImmediateSend, "no flush waits: reports are polled, batches linger")
        let enteredTooEarly = machine.startImmediateSendIfWanted()
        #expect(!enteredTooEarly)
        let flushing = machine.flush(waiter: "flush")
        #expect(flushing.isEmpty)
        #expect(machine.wantsImmediateSend)
        let entered = machine.startImmediateSendIfWanted()  // the poll thread enters rd_kafka_flush
        #expect(entered)
        let first = machine.delivered(for: id, failure: nil, partition: 0, offset: 4)
        #expect(first.isEmpty)
        #expect(!machine.holdsActions)
        // The last report completes the send and the flush: neither resumes inside rd_kafka_flush, where a batch
        // that the flush's caller enqueues next would be sent at once instead of lingering.
        let last = machine.delivered(for: id, failure: nil, partition: 0, offset: 5)
        #expect(last.isEmpty)
        #expect(machine.holdsActions, "the poll thread makes rd_kafka_flush return (rd_kafka_yield)")
        #expect(!machine.wantsImmediateSend, "the next turn polls: a batch enqueued after flush() returned lingers")
        let released = machine.immediateSendEnded()  // rd_kafka_flush returned
        #expect(Self.resumed(released) == ["send:ok:EventReceipt(0@5)", "flush"])
        #expect(!machine.holdsActions)
        let enteredAgain = machine.startImmediateSendIfWanted()
        #expect(!enteredAgain)
        // Outside librdkafka's flush, transitions resume at once again.
        let idleFlush = machine.flush(waiter: "idle flush")
        #expect(Self.resumed(idleFlush) == ["idle flush"])
    }

    @Test("close's wait for no outstanding delivery wants librdkafka's flush; what resumes meanwhile is held too")
    func closeWantsImmediateSend() {
        var machine = Machine()
        let id = machine.startSend()
        machine.reserve(1, for: id)
        let closing = machine.waitUntilIdle(waiter: "close")
        #expect(closing.isEmpty)
        #expect(machine.wantsImmediateSend)
        let entered = machine.startImmediateSendIfWanted()
        #expect(entered)
        let sealed = machine.seal(id, waiter: "send")
        #expect(sealed.isEmpty)
        let flushing = machine.flush(waiter: "flush")
        #expect(flushing.isEmpty)
        let delivered = machine.delivered(for: id, failure: nil, partition: 1, offset: 0)
        #expect(delivered.isEmpty)
        #expect(!machine.wantsImmediateSend)
        let released = machine.immediateSendEnded()
        #expect(Self.resumed(released) == ["send:ok:EventReceipt(1@0)", "flush", "close"])
        let again = machine.immediateSendEnded()
        #expect(again.isEmpty)
    }

    @Test(
        "an immediate send wants librdkafka's flush from its seal until its last report, whatever else is in flight; a normal send lingers"
    )
    func immediateSendWantsFlush() {
        var machine = Machine()
        let normal = machine.startSend()
        machine.reserve(1, for: normal)
        let sealedNormal = machine.seal(normal, waiter: "normal")
        #expect(sealedNormal.isEmpty)
        #expect(!machine.wantsImmediateSend, "a normal send's messages linger")
        let relay = machine.startSend()
        machine.reserve(2, for: relay)
        #expect(!machine.wantsImmediateSend, "not before its seal: more messages may come")
        let sealed = machine.seal(relay, waiter: "relay", immediate: true)
        #expect(sealed.isEmpty)
        #expect(machine.wantsImmediateSend)
        let entered = machine.startImmediateSendIfWanted()
        #expect(entered)
        let first = machine.delivered(for: relay, failure: nil, partition: 0, offset: 1)
        #expect(first.isEmpty)
        #expect(machine.wantsImmediateSend, "one report still awaited")
        let last = machine.delivered(for: relay, failure: nil, partition: 0, offset: 2)
        #expect(last.isEmpty)
        #expect(!machine.wantsImmediateSend, "the immediate send is over; the normal one lingers again")
        #expect(Self.resumed(machine.immediateSendEnded()) == ["relay:ok:EventReceipt(0@2)"])
        // An immediate send complete at its seal (every report already in) wants nothing.
        let early = machine.startSend()
        machine.reserve(1, for: early)
        let report = machine.delivered(for: early, failure: nil, partition: 3, offset: 0)
        #expect(report.isEmpty)
        let sealedEarly = machine.seal(early, waiter: "early", immediate: true)
        #expect(Self.resumed(sealedEarly) == ["early:ok:EventReceipt(3@0)"])
        #expect(!machine.wantsImmediateSend)
    }
}
