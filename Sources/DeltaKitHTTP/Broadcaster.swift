import DeltaKit
import Foundation
import Hummingbird
import Synchronization

/// One live change feed per served table, encoded once and fanned out to every change-stream client.
///
/// Without it each client would open a feed of its own on the store and encode every element itself: the store
/// would hand each change to as many feeds as there are clients (under its lock, inside the materializer's
/// `apply`), and the server would encode each change once per client. The broadcaster reads
/// `store.changes(from: .now)` once, encodes each element once into a ``StreamEvent`` (its bytes, a `ByteBuffer`,
/// are shared by every client that writes it) and pushes it into each subscribed client's bounded buffer.
///
/// **Lifetime.** The first client of the table starts it (``join()`` opens the store's feed before the client's
/// response starts, so a `from=now` client misses no change made after its request); the last client to leave
/// stops it (cancels the task reading the feed, which closes the store's feed). A server's graceful shutdown ends
/// every stream, so the broadcaster stops with the server. When the store ends the shared feed (an error), its
/// subscribers' streams end with that problem, and the next client to come starts a new one. A restarted
/// broadcaster starts with an empty ring.
///
/// **The ring.** The most recent `ringLimit` encoded events with their positions, to join clients without a gap
/// or a repeat:
/// - `from=now` subscribes directly: it gets every event the broadcaster appends from then on.
/// - `Last-Event-ID: P` with `P` in the ring: the events after `P` are replayed from the ring, then live.
/// - `from=snapshot`, or a `P` not in the ring: the client reads a feed of its own (the store's
///   `changes(from:)`) and, after each element with a position `p` that it forwarded, tries to join: when `p` is
///   in the ring, the ring after `p` is replayed and the client subscribes; when it is not yet (the client's feed
///   is ahead of the broadcaster), the client leaves `p` as its "meeting point", and the broadcaster subscribes it
///   the moment it appends `p`; the client then drops its own feed before forwarding anything more from it. A
///   client whose feed never meets the broadcaster's (its positions are older than the broadcaster's start, and the
///   broadcaster stops) simply stays on its own feed: correct, just not shared.
///
/// Positions are compared for equality only (they are opaque strings). Joining relies on the change-feed contract
/// ("positions resume"): what follows a position in the broadcaster's feed is what `.after(position)` would
/// deliver, so a client that switches at `p` sees what follows `p` exactly once.
///
/// **Race freedom.** Everything that decides where a client's events come from happens under one lock, in
/// ``State``: the broadcaster appends to the ring, pushes to the subscribers and subscribes the clients waiting
/// at that position in one step; a client pushes its own element, looks it up in the ring, replays and subscribes
/// (or records its meeting point) in one step. So no event can fall between the ring a client replays and the
/// live events it then receives, and a client's own element and the broadcaster's copy of it are never both
/// delivered. Pushing is a non-blocking `yield` into the client's bounded buffer: a full buffer unsubscribes that
/// client and signals it to close (``ChangeStream/Outcome/slowClient``); the broadcaster never waits for a client,
/// so a stalled client costs the store and the materializer nothing.
final class Broadcaster: Sendable {
    /// Opens the store's feed from `.now`, already encoded.
    typealias Open = @Sendable () async throws -> any AsyncSequence<StreamEvent, any Error> & Sendable

    private let open: Open
    private let ringLimit: Int
    private let state: Mutex<State>

    init(ringLimit: Int = 4_096, open: @escaping Open) {
        self.open = open
        self.ringLimit = ringLimit
        self.state = Mutex(State())
    }

    /// How many clients receive the shared feed now, and how many are on a feed of their own.
    var clients: (shared: Int, own: Int) {
        state.withLock { ($0.subscribers.count, $0.clients - $0.subscribers.count) }
    }

    // MARK: Lifetime

    /// Counts a client in, starting the broadcaster when it is the first, and waits until its feed is open.
    ///
    /// The returned lease counts the client out when it goes (``Lease`` is released when the response that holds
    /// it is dropped, even if its body never ran).
    func join() async throws -> Lease {
        let opened: Task<Void, any Error> = state.withLock { state in
            state.clients += 1
            if let run = state.run {
                guard state.ended else { return run.opened }
                // The store ended the shared feed (an error the subscribers were sent): start a new one, so the
                // clients that come now share again.
                run.opened.cancel()
                state.reset()
            }
            state.generation += 1
            let generation = state.generation
            let (openedTask, pump) = start(generation)
            state.run = Run(generation: generation, opened: openedTask, pump: pump)
            return openedTask
        }
        let lease = Lease(self)
        try await opened.value
        return lease
    }

    private func start(_ generation: UInt64) -> (Task<Void, any Error>, Task<Void, Never>) {
        let (feeds, deliver) = AsyncStream.makeStream(
            of: (any AsyncSequence<StreamEvent, any Error> & Sendable).self,
            bufferingPolicy: .bufferingNewest(1)
        )
        let open = open
        let opened = Task<Void, any Error> {
            deliver.yield(try await open())
            deliver.finish()
        }
        let pump = Task { [weak self] in
            var outcome: Ending = .ended(nil)
            do {
                try await opened.value
                for await feed in feeds {
                    for try await event in feed {
                        guard let self else { return }
                        self.append(event, generation)
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                outcome = .ended(Problem.from(error))
            }
            self?.end(outcome, generation)
        }
        return (opened, pump)
    }

    fileprivate func leave() {
        let stop: Run? = state.withLock { state in
            state.clients -= 1
            guard state.clients == 0 else { return nil }
            defer { state.reset() }
            return state.run
        }
        stop?.opened.cancel()
        stop?.pump.cancel()
    }

    /// Counts one client while it is alive: the response body holds it.
    final class Lease: Sendable {
        private let broadcaster: Broadcaster
        fileprivate init(_ broadcaster: Broadcaster) { self.broadcaster = broadcaster }
        deinit { broadcaster.leave() }
    }

    // MARK: The broadcaster's side

    private func append(_ event: StreamEvent, _ generation: UInt64) {
        let overflowed: [Subscriber] = state.withLock { state in
            guard state.run?.generation == generation else { return [] }
            return state.append(event, ringLimit: ringLimit)
        }
        for subscriber in overflowed { subscriber.signal(.overflow) }
    }

    private func end(_ outcome: Ending, _ generation: UInt64) {
        let ending: [Subscriber] = state.withLock { state in
            guard state.run?.generation == generation else { return [] }
            return state.endBroadcast()
        }
        for subscriber in ending { subscriber.signal(outcome) }
    }

    // MARK: The clients' side

    /// Streams to `buffer`: from `now` (subscribed directly), after `position` (replayed from the ring when it
    /// holds it; otherwise `ownFeed`, or a feed opened here), or from `ownFeed` until it meets the ring. Returns
    /// when the feed ends; throws ``ChangeStream/Overflow`` when the buffer fills, the feed's error otherwise.
    func follow(
        _ start: Start,
        into buffer: ChangeStream.Buffer,
        openOwn: @Sendable (ChangeFeedStart) async throws -> any AsyncSequence<StreamEvent, any Error> & Sendable
    ) async throws {
        let subscriber = Subscriber(buffer)
        defer { state.withLock { $0.remove(subscriber) } }
        var own: (any AsyncSequence<StreamEvent, any Error> & Sendable)?
        switch start {
        case .now:
            state.withLock { $0.subscribe(subscriber, replay: []) }
        case .after(let position):
            let joined = state.withLock { $0.join(subscriber, after: position.description) }
            if !joined { own = try await openOwn(.after(position)) }
        case .own(let feed):
            own = feed
        }
        if let own {
            var switched = false
            for try await event in own {
                if try state.withLock({ try $0.forward(event, from: subscriber) }) {
                    switched = true
                    break
                }
            }
            // An own feed that ended before it met the ring ends the stream as the store ended it.
            guard switched else { return }
        }
        switch await subscriber.ending() {
        case .overflow: throw ChangeStream.Overflow()
        case .ended(nil): return
        case .ended(let problem?): throw problem
        }
    }

    /// Where a client starts.
    enum Start: Sendable {
        /// Live events only.
        case now
        /// The events after a position (`Last-Event-ID`).
        case after(ChangeFeedPosition)
        /// A feed of the client's own (a snapshot, or a position the ring did not hold), until it meets the ring.
        case own(any AsyncSequence<StreamEvent, any Error> & Sendable)
    }

    /// Whether the ring holds `position` now (the handler opens a feed of the client's own when it does not).
    func ringHolds(_ position: ChangeFeedPosition) -> Bool {
        state.withLock { $0.ringIndex[position.description] != nil }
    }

    // MARK: State

    fileprivate enum Ending: Sendable {
        case overflow
        case ended(Problem?)
    }

    /// One client's side of the subscription: its buffer, and how its subscription ended.
    fileprivate final class Subscriber: Sendable {
        let buffer: ChangeStream.Buffer
        private let endings: AsyncStream<Ending>
        private let continuation: AsyncStream<Ending>.Continuation

        init(_ buffer: ChangeStream.Buffer) {
            self.buffer = buffer
            (endings, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        }

        var id: ObjectIdentifier { ObjectIdentifier(self) }

        func signal(_ ending: Ending) {
            continuation.yield(ending)
            continuation.finish()
        }

        /// Waits for the end of the subscription; a cancelled wait (the client went away) returns `.ended(nil)`.
        func ending() async -> Ending {
            for await ending in endings { return ending }
            return .ended(nil)
        }
    }

    private struct Run: Sendable {
        var generation: UInt64
        var opened: Task<Void, any Error>
        var pump: Task<Void, Never>
    }

    /// Everything the lock guards: the ring, the subscribers and the clients waiting at a position.
    private struct State {
        var clients = 0
        var generation: UInt64 = 0
        var run: Run?
        /// The ring: events with positions, oldest first; `ringStart` counts the events dropped from its front.
        var ring: [StreamEvent] = []
        var ringHead = 0
        var ringStart = 0
        /// Position → its index in the whole sequence of appended events (`ringStart` + offset).
        var ringIndex: [String: Int] = [:]
        var subscribers: [ObjectIdentifier: Subscriber] = [:]
        /// Clients on a feed of their own, by the position they forwarded last: subscribed when it is appended.
        var waiting: [String: [ObjectIdentifier: Subscriber]] = [:]
        var meetingPoint: [ObjectIdentifier: String] = [:]
        /// Set when the broadcaster's feed ended: no one joins it any more.
        var ended = false

        mutating func reset() {
            run = nil
            ring = []
            ringHead = 0
            ringStart = 0
            ringIndex = [:]
            waiting = [:]
            meetingPoint = [:]
            ended = false
        }

        /// Appends an event, pushes it to every subscriber and subscribes the clients waiting at its position.
        /// Returns the subscribers whose buffer was full (now unsubscribed).
        mutating func append(_ event: StreamEvent, ringLimit: Int) -> [Subscriber] {
            var overflowed: [Subscriber] = []
            for (id, subscriber) in subscribers where !subscriber.buffer.push(event) {
                subscribers[id] = nil
                overflowed.append(subscriber)
            }
            guard let position = event.id else { return overflowed }
            ring.append(event)
            ringIndex[position] = ringStart + ring.count - ringHead - 1
            if ring.count - ringHead > ringLimit {
                if let dropped = ring[ringHead].id { ringIndex[dropped] = nil }
                ringHead += 1
                ringStart += 1
                // Compact now and then, so the array does not grow without bound.
                if ringHead >= ringLimit {
                    ring.removeFirst(ringHead)
                    ringHead = 0
                }
            }
            if let arrived = waiting.removeValue(forKey: position) {
                for (id, subscriber) in arrived {
                    meetingPoint[id] = nil
                    subscribers[id] = subscriber
                }
            }
            return overflowed
        }

        mutating func endBroadcast() -> [Subscriber] {
            ended = true
            let ending = Array(subscribers.values)
            subscribers = [:]
            ring = []
            ringHead = 0
            ringIndex = [:]
            waiting = [:]
            meetingPoint = [:]
            return ending
        }

        mutating func subscribe(_ subscriber: Subscriber, replay: ArraySlice<StreamEvent>) {
            guard !ended else {
                subscriber.signal(.ended(nil))
                return
            }
            for event in replay where !subscriber.buffer.push(event) {
                subscriber.signal(.overflow)
                return
            }
            subscribers[subscriber.id] = subscriber
        }

        /// Replays the ring after `position` and subscribes, when the ring holds it.
        mutating func join(_ subscriber: Subscriber, after position: String) -> Bool {
            guard !ended, let index = ringIndex[position] else { return false }
            let offset = index - ringStart + ringHead
            subscribe(subscriber, replay: ring[(offset + 1)...])
            return true
        }

        /// A client's own element: dropped if the client has been subscribed meanwhile (the broadcaster delivers
        /// it), otherwise pushed; then, when it has a position, the client joins the ring after it or waits there.
        /// Returns whether the client now receives the shared feed (and drops its own).
        mutating func forward(_ event: StreamEvent, from subscriber: Subscriber) throws -> Bool {
            if subscribers[subscriber.id] != nil { return true }
            guard subscriber.buffer.push(event) else { throw ChangeStream.Overflow() }
            guard let position = event.id else { return false }
            if let previous = meetingPoint.removeValue(forKey: subscriber.id) {
                waiting[previous]?[subscriber.id] = nil
                if waiting[previous]?.isEmpty == true { waiting[previous] = nil }
            }
            if join(subscriber, after: position) { return true }
            if !ended {
                meetingPoint[subscriber.id] = position
                waiting[position, default: [:]][subscriber.id] = subscriber
            }
            return false
        }

        mutating func remove(_ subscriber: Subscriber) {
            subscribers[subscriber.id] = nil
            if let previous = meetingPoint.removeValue(forKey: subscriber.id) {
                waiting[previous]?[subscriber.id] = nil
                if waiting[previous]?.isEmpty == true { waiting[previous] = nil }
            }
        }
    }
}
