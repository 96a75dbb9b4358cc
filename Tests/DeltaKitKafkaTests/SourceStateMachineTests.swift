import DeltaKit
import Testing

@testable import DeltaKitKafka

/// The source's bookkeeping without librdkafka: waiters and poll loops are plain tokens, time is given, and each
/// test checks what a transition decides.
@Suite("Kafka source state machine")
struct SourceStateMachineTests {
    typealias Machine = SourceStateMachine<String, String>

    static let start = ContinuousClock.now

    static func machine(
        group: Bool = false,
        bufferSize: Int = 10,
        reports: Bool = true,
        refresh: Duration = .seconds(10)
    ) -> Machine {
        Machine(
            settings: .init(
                hasGroup: group,
                bufferSize: bufferSize,
                reportsSourceEvents: reports,
                partitionRefreshInterval: refresh,
                groupStallBeforePause: .seconds(1)
            ),
            now: start
        )
    }

    /// What `actions` do, as text: `resume:W`, `report:…`, `startProbe`.
    static func describe(_ actions: [Machine.Action]) -> [String] {
        actions.map {
            switch $0 {
            case .resume(let waiter): "resume:\(waiter)"
            case .report(let event): "report:\(event)"
            case .startProbe: "startProbe"
            }
        }
    }

    @Test("the poll loop starts once, never after reading was stopped or the source closed; close hands it over once")
    func lifecycle() {
        var machine = Self.machine()
        let started = machine.startPolling { "loop" }
        #expect(started)
        let again = machine.startPolling { "again" }
        #expect(!again, "one loop")
        let stopping = machine.stopReading()
        #expect(stopping == "loop", "graceful shutdown asks the running loop to stop")
        let stoppingAgain = machine.stopReading()
        #expect(stoppingAgain == nil)
        #expect(!machine.isClosed, "closing stays close()'s work")
        let first = machine.close()
        #expect(first.first && first.loop == "loop", "close waits for the loop graceful shutdown stopped")
        let second = machine.close()
        #expect(!second.first && second.loop == nil)

        var stoppedFirst = Self.machine()
        let nothingToStop = stoppedFirst.stopReading()
        #expect(nothingToStop == nil)
        let late = stoppedFirst.startPolling { "late" }
        #expect(!late, "a reader after graceful shutdown starts no loop")
        var closedFirst = Self.machine()
        let closing = closedFirst.close()
        #expect(closing.first && closing.loop == nil)
        let afterClose = closedFirst.startPolling { "late" }
        #expect(!afterClose)
    }

    @Test("one reader: the first who asks gets the items")
    func oneReader() {
        var machine = Self.machine()
        let step5 = machine.takeReader()
        #expect(step5)
        let step6 = machine.takeReader()
        #expect(!step6)
    }

    @Test("the poll takes no more than the room left, and waits for demand once the hand-off is refused")
    func backPressure() {
        var machine = Self.machine(bufferSize: 10)
        let now = Self.start
        let step7 = machine.pollDecision(now: now, demandEpoch: 0, demandEnded: false)
        #expect(
            step7
                == .poll(limit: 10, pause: false, resume: false)
        )
        machine.yielding(6, hasData: true)
        machine.handedOver(2)
        #expect(machine.waiting == 4)
        let step8 = machine.pollDecision(now: now, demandEpoch: 0, demandEnded: false)
        #expect(
            step8
                == .poll(limit: 6, pause: false, resume: false)
        )
        machine.yielding(6, hasData: true)
        let step9 = machine.pollDecision(now: now, demandEpoch: 0, demandEnded: false)
        #expect(step9 == .waitForDemand, "no room")
        machine.handedOver(4)
        // The hand-off refused the next yield at epoch 3: back-pressure engages once, however often it refuses.
        machine.yielding(1, hasData: true)
        machine.yieldRefused(epoch: 3)
        machine.yieldRefused(epoch: 3)
        let step10 = machine.pollDecision(now: now, demandEpoch: 3, demandEnded: false)
        #expect(step10 == .waitForDemand)
        // Demand after the refusal releases it.
        let step11 = machine.pollDecision(now: now, demandEpoch: 4, demandEnded: false)
        #expect(
            step11
                == .poll(limit: 3, pause: false, resume: false)
        )
        let step12 = machine.pollDecision(now: now, demandEpoch: 4, demandEnded: true)
        #expect(step12 == .waitForDemand, "reader gone")
        let statistics = machine.backPressureStatistics
        #expect(statistics.peakBuffered == 10 && statistics.engaged == 1 && statistics.released == 1)
        #expect(statistics.paused == 0)
        #expect(machine.yieldedBatches == 3)
    }

    @Test("in a group, a reader behind for groupStallBeforePause gets the partitions paused (once), then resumed")
    func groupStall() {
        var machine = Self.machine(group: true, bufferSize: 4)
        let now = Self.start
        machine.yielding(4, hasData: true)
        let step13 = machine.pollDecision(now: now, demandEpoch: 0, demandEnded: false)
        #expect(step13 == .waitForDemand)
        let step14 = machine.pollDecision(now: now + .milliseconds(999), demandEpoch: 0, demandEnded: false)
        #expect(
            step14 == .waitForDemand
        )
        let step15 = machine.pollDecision(now: now + .seconds(1), demandEpoch: 0, demandEnded: false)
        #expect(
            step15
                == .poll(limit: 1, pause: true, resume: false),
            "paused, and still polling to serve the group"
        )
        let step16 = machine.pollDecision(now: now + .seconds(2), demandEpoch: 0, demandEnded: false)
        #expect(
            step16
                == .poll(limit: 1, pause: false, resume: false)
        )
        machine.handedOver(4)
        let step17 = machine.pollDecision(now: now + .seconds(3), demandEpoch: 0, demandEnded: false)
        #expect(
            step17
                == .poll(limit: 4, pause: false, resume: true)
        )
        #expect(machine.backPressureStatistics.paused == 1)
        // A new stall is timed from its own start.
        machine.yielding(4, hasData: true)
        let step18 = machine.pollDecision(now: now + .seconds(4), demandEpoch: 0, demandEnded: false)
        #expect(step18 == .waitForDemand)
    }

    @Test("without a group, a reader behind never gets the partitions paused")
    func noGroupNeverPauses() {
        var machine = Self.machine(group: false, bufferSize: 1)
        machine.yielding(1, hasData: true)
        let step19 = machine.pollDecision(now: Self.start, demandEpoch: 0, demandEnded: false)
        #expect(step19 == .waitForDemand)
        let step20 = machine.pollDecision(now: Self.start + .seconds(60), demandEpoch: 0, demandEnded: false)
        #expect(
            step20 == .waitForDemand
        )
    }

    @Test("the caught-up marker comes once every assigned partition is at its end, once until a message arrives")
    func marker() throws {
        var machine = Self.machine()
        let assignment: Set<Int32> = [0, 1]
        let step21 = machine.messageRead(partition: 0, offset: 0)
        #expect(step21 != nil)
        let step22 = machine.partitionEnded(0, at: 1, assignment: assignment)
        #expect(try #require(step22).marker == false)
        let step23 = machine.partitionEnded(1, at: 0, assignment: assignment)
        #expect(try #require(step23).marker, "both at their end")
        let step24 = machine.partitionEnded(1, at: 0, assignment: assignment)
        #expect(try #require(step24).marker == false, "once")
        let step25 = machine.messageRead(partition: 1, offset: 0)
        #expect(step25 != nil)
        let step26 = machine.partitionEnded(1, at: 1, assignment: assignment)
        #expect(try #require(step26).marker, "again after data")
        machine.partitionsAdded()
        let step27 = machine.partitionEnded(2, at: 0, assignment: [0, 1, 2])
        #expect(
            try #require(step27).marker,
            "an added partition is covered by a new marker"
        )
        let step28 = machine.partitionEnded(0, at: 1, assignment: [])
        #expect(try #require(step28).marker == false, "nothing assigned")
    }

    @Test("caught up only when the application took everything up to the marker; new data ends it; waiters resume")
    func caughtUp() {
        var machine = Self.machine()
        let step29 = machine.waitUntilCaughtUp("early")
        #expect(step29.isEmpty)
        machine.yielding(3, hasData: true)  // two events and the marker
        machine.handedOver(3)
        machine.yielding(1, hasData: true)  // an event behind the marker, not taken yet
        let step30 = machine.markCaughtUp()
        #expect(step30.isEmpty)
        #expect(!machine.isCaughtUp)
        machine.handedOver(1)
        let step31 = machine.markCaughtUp()
        #expect(Self.describe(step31) == ["resume:early"])
        #expect(machine.isCaughtUp)
        let step32 = machine.waitUntilCaughtUp("late")
        #expect(Self.describe(step32) == ["resume:late"], "at once when caught up")
        machine.yielding(1, hasData: false)  // a marker alone keeps it
        #expect(machine.isCaughtUp)
        machine.yielding(1, hasData: true)
        #expect(!machine.isCaughtUp)
        let step33 = machine.markCaughtUp()
        #expect(step33.isEmpty, "nothing waits any more")
    }

    @Test("a connection problem is reported once and starts one probe; the next message reports the recovery")
    func connectionProblem() {
        var machine = Self.machine(group: true)
        _ = machine.messageRead(partition: 0, offset: 7)
        let step34 = machine.clientProblem("down", allBrokersDown: true)
        #expect(
            Self.describe(step34)
                == ["report:\(KafkaSourceEvent.connectionProblem("down"))", "startProbe"]
        )
        let step35 = machine.clientProblem("still down", allBrokersDown: true)
        #expect(step35.isEmpty, "once, one probe")
        #expect(!machine.isHoldingBack, "a group's positions are the group's: nothing is held back")
        #expect(machine.shouldKeepProbing)
        let step36 = machine.messageRead(partition: 0, offset: 8)
        #expect(step36 == .init(recovered: true, wentBack: nil))
        #expect(!machine.shouldKeepProbing)
        let step37 = machine.clusterAnswered()
        #expect(step37 == .stop, "a message already proved it")
        let step38 = machine.probeEnded()
        #expect(!step38)
        let step39 = machine.clientProblem("again", allBrokersDown: false)
        #expect(Self.describe(step39).last == "startProbe")
    }

    @Test("offsets that go back are reported with what was expected; partition ends count like messages")
    func offsetsWentBack() throws {
        var machine = Self.machine()
        _ = machine.messageRead(partition: 0, offset: 41)
        let step40 = machine.messageRead(partition: 0, offset: 42)
        #expect(step40 == .init())
        let step41 = machine.messageRead(partition: 0, offset: 5)
        #expect(step41 == .init(recovered: false, wentBack: 43))
        let step42 = machine.partitionEnded(0, at: 6, assignment: [0])
        #expect(try #require(step42).observation == .init())
        let step43 = machine.partitionEnded(0, at: 2, assignment: [0])
        #expect(
            try #require(step43).observation
                == .init(recovered: false, wentBack: 6)
        )
    }

    @Test("without onSourceEvent nothing is tracked, and a problem in a group starts no probe")
    func withoutReports() {
        var machine = Self.machine(group: true, reports: false)
        _ = machine.messageRead(partition: 0, offset: 9)
        let step44 = machine.clientProblem("down", allBrokersDown: true)
        #expect(step44.isEmpty)
        let step45 = machine.messageRead(partition: 0, offset: 0)
        #expect(step45 == .init())
    }

    @Test("the cluster answers after a problem: the probe checks the last offsets seen")
    func probeChecksLastOffsets() {
        var machine = Self.machine(group: true)
        _ = machine.messageRead(partition: 0, offset: 3)
        _ = machine.messageRead(partition: 1, offset: 10)
        _ = machine.clientProblem("down", allBrokersDown: true)
        let step46 = machine.clusterAnswered()
        #expect(step46 == .checkLastOffsets([0: 3, 1: 10]))
        #expect(!machine.shouldKeepProbing)
        let step47 = machine.clusterAnswered()
        #expect(step47 == .stop)
    }

    @Test("no group, every broker lost: messages are held back until the continuity check re-positions reading")
    func heldBackUntilRepositioned() throws {
        var machine = Self.machine(group: false, reports: false)
        let started = machine.startPolling { "loop" }
        #expect(started)
        _ = machine.messageRead(partition: 0, offset: 0)
        let step48 = machine.clientProblem("one broker", allBrokersDown: false)
        #expect(step48.isEmpty, "one broker of several")
        #expect(!machine.isHoldingBack)
        let step49 = machine.clientProblem("all down", allBrokersDown: true)
        #expect(Self.describe(step49) == ["startProbe"])
        #expect(machine.isHoldingBack)
        let step50 = machine.messageRead(partition: 0, offset: 1)
        #expect(step50 == nil, "held back")
        let step51 = machine.partitionEnded(0, at: 2, assignment: [0])
        #expect(step51 == nil, "held back")
        let step52 = machine.partitionRefreshDue(now: Self.start + .seconds(60))
        #expect(!step52, "no discovery while held back")
        let step53 = machine.clusterAnswered()
        #expect(step53 == .verifyContinuity(problemsBefore: 1))
        // A problem during the check: it does not count, and the probe goes on.
        _ = machine.clientProblem("all down again", allBrokersDown: true)
        #expect(machine.problems == 2)
        let step54 = machine.probeEnded()
        #expect(step54, "the probe starts again while reading is held back")
        let step55 = machine.clusterAnswered()
        #expect(step55 == .verifyContinuity(problemsBefore: 2))
        let step56 = machine.continuityCheckAnswered()
        #expect(Self.describe(step56).isEmpty, "no onSourceEvent: nothing to report")
        machine.repositioned()
        #expect(!machine.isHoldingBack)
        let step57 = machine.messageRead(partition: 0, offset: 1)
        #expect(step57 != nil)
        let step58 = machine.partitionEnded(0, at: 2, assignment: [0])
        #expect(try #require(step58).marker, "ends are seen anew")
        let step59 = machine.probeEnded()
        #expect(!step59)
    }

    @Test("the continuity check reports the recovery; a log found to differ, or a close, ends the probing")
    func continuityOutcomes() {
        var diverging = Self.machine(group: false)
        _ = diverging.clientProblem("all down", allBrokersDown: true)
        let step60 = diverging.continuityCheckAnswered()
        #expect(
            Self.describe(step60) == ["report:\(KafkaSourceEvent.recovered)"]
        )
        let step61 = diverging.continuityCheckAnswered()
        #expect(step61.isEmpty, "once")
        diverging.diverge()
        let step62 = diverging.probeEnded()
        #expect(!step62, "another log: nothing more is read")

        var closing = Self.machine(group: false)
        _ = closing.clientProblem("all down", allBrokersDown: true)
        _ = closing.close()
        #expect(!closing.shouldKeepProbing)
        let step63 = closing.probeEnded()
        #expect(!step63)
    }

    @Test("the last delivered message of each partition is kept for the continuity check")
    func delivered() {
        var machine = Self.machine()
        let first = MessageFingerprint(offset: 4, timestamp: 1, digest: 11)
        let second = MessageFingerprint(offset: 9, timestamp: 2, digest: 22)
        let other = MessageFingerprint(offset: 0, timestamp: 3, digest: 33)
        machine.recordDelivered([0: first])
        machine.recordDelivered([0: second, 1: other])
        #expect(machine.delivered == [0: second, 1: other])
    }

    @Test("partitions are looked up every partitionRefreshInterval; a failed addition is retried at the next poll")
    func partitionRefresh() {
        var machine = Self.machine(refresh: .seconds(10))
        let start = Self.start
        let step64 = machine.partitionRefreshDue(now: start + .seconds(9))
        #expect(!step64)
        let step65 = machine.partitionRefreshDue(now: start + .seconds(10))
        #expect(step65)
        let step66 = machine.partitionRefreshDue(now: start + .seconds(11))
        #expect(!step66)
        machine.partitionRefreshFailed(now: start + .seconds(11))
        let step67 = machine.partitionRefreshDue(now: start + .seconds(11))
        #expect(step67)
    }

    @Test("asked once per partition run, the machine reports what it reports when asked at every message")
    func askedPerRun() {
        // Batches of runs: consecutive messages of one partition, some going back within a run, some after a
        // connection problem (a recovery to report) and some while reading is held back.
        var generator = SystemRandomNumberGenerator()
        var next: [Int32: Int64] = [0: 0, 1: 0, 2: 0]
        for _ in 0..<200 {
            var everyMessage = Self.machine()
            var perRun = Self.machine()
            var run = RowIntake.Run()
            var expected: [String] = []
            var found: [String] = []
            var asked = 0
            var messages = 0
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                let partition = Int32.random(in: 0...2, using: &generator)
                if Int.random(in: 0..<8, using: &generator) == 0 {
                    let all = Bool.random(using: &generator)
                    _ = everyMessage.clientProblem("down", allBrokersDown: all)
                    _ = perRun.clientProblem("down", allBrokersDown: all)
                }
                if Int.random(in: 0..<8, using: &generator) == 0 {
                    everyMessage.repositioned()
                    perRun.repositioned()
                }
                let length = Int.random(in: 1...8, using: &generator)
                for index in 0..<length {
                    if Int.random(in: 0..<10, using: &generator) == 0 {
                        next[partition]! -= Int64.random(in: 1...5, using: &generator)  // went back
                    }
                    let offset = next[partition]!
                    next[partition]! += Int64.random(in: 1...2, using: &generator)
                    let endsRun = index == length - 1
                    messages += 1
                    let reference = everyMessage.messageRead(partition: partition, offset: offset)
                    expected.append(reference.map { "\(partition)@\(offset): \($0)" } ?? "\(partition)@\(offset): held")
                    let read = run.read(partition: partition, offset: offset, endsRun: endsRun) {
                        previous -> Machine.Observation? in
                        asked += 1
                        if let previous, perRun.messageRead(partition: partition, offset: previous) == nil {
                            return nil
                        }
                        return perRun.messageRead(partition: partition, offset: offset)
                    }
                    switch read {
                    case .continues: found.append("\(partition)@\(offset): \(Machine.Observation())")
                    case .taken(let observation): found.append("\(partition)@\(offset): \(observation)")
                    case .heldBack: found.append("\(partition)@\(offset): held")
                    }
                }
            }
            #expect(found == expected)
            #expect(everyMessage.isHoldingBack == perRun.isHoldingBack)
            _ = everyMessage.clientProblem("probe", allBrokersDown: false)
            _ = perRun.clientProblem("probe", allBrokersDown: false)
            #expect(everyMessage.clusterAnswered() == perRun.clusterAnswered(), "the same last offsets")
            #expect(asked <= messages)
        }
    }

    @Test("a run of messages that follow one another asks the machine at its first and last message only")
    func runAsksTwice() {
        var machine = Self.machine()
        var run = RowIntake.Run()
        var asked: [Int64] = []
        for offset in Int64(10)...20 {
            _ = run.read(partition: 3, offset: offset, endsRun: offset == 20) { previous -> Machine.Observation? in
                asked.append(offset)
                #expect(previous == nil)
                return machine.messageRead(partition: 3, offset: offset)
            }
        }
        #expect(asked == [10, 20])
        #expect(!run.checked, "the next run asks again")
    }
}
