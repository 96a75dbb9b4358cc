import DeltaKit
import Foundation
import Hummingbird
import ServiceLifecycle
import Synchronization

/// Pumps a change feed to one Server-Sent Events client through a bounded buffer.
///
/// Three tasks: one fills the buffer (from a feed of the client's own, or by following the table's shared feed,
/// whose ``Broadcaster`` pushes into it), one adds a heartbeat comment when the stream has been idle, one writes
/// the buffer to the client. Nothing that fills the buffer waits for the client: when the buffer is full — the
/// client stopped reading — the stream ends with ``Outcome/slowClient`` and the writer is cancelled, which closes
/// the connection. So a stalled client holds at most `bufferLimit` events (and the chunk being written) and never
/// slows the store (or the materializer writing it).
enum ChangeStream {
    /// How a stream ended.
    enum Outcome: Equatable, Sendable {
        /// The feed ended (the store stopped it).
        case feedEnded
        /// The client did not read fast enough: its buffer filled up.
        case slowClient
        /// The server is shutting down gracefully.
        case shutdown
    }

    fileprivate enum Item: Sendable {
        case event(StreamEvent)
        case heartbeat
        case end(Outcome)
        case failure(String)
    }

    /// A client's buffer filled up: it is not reading.
    struct Overflow: Error {}

    /// The bounded buffer of one client: events wait here for the client's writer task.
    ///
    /// Pushing never waits: it fails when the buffer is full, so whoever pushes (the client's own feed reader, or
    /// the table's ``Broadcaster`` for every client at once) is never slowed by a client that does not read. The
    /// writer takes everything waiting at once and writes it as one chunk: a client that fell behind (or a server
    /// whose event loops are busy) catches up with one write and one wake-up for many events, rather than one
    /// each. So a client holds at most `limit` waiting events, plus the chunk being written.
    final class Buffer: Sendable {
        private struct State {
            var items: [Item] = []
            var waiter: UnsafeContinuation<Void, Never>?
            var cancelled = false
        }

        private let limit: Int
        private let state = Mutex(State())

        init(limit: Int) {
            self.limit = limit
        }

        /// Adds an event; `false` when the buffer is full.
        func push(_ event: StreamEvent) -> Bool { push(.event(event)) }

        fileprivate func push(_ item: Item) -> Bool {
            // The item goes into the buffer and the writer (when it waits) is only woken: it takes what is there
            // itself, so a wake-up carries no array of its own.
            let result: (accepted: Bool, wake: UnsafeContinuation<Void, Never>?) = state.withLock { state in
                guard state.items.count < limit else { return (false, nil) }
                state.items.append(item)
                defer { state.waiter = nil }
                return (true, state.waiter)
            }
            result.wake?.resume()
            return result.accepted
        }

        /// Everything waiting, at least one item; waits for one when none is. Empty when the task is cancelled.
        fileprivate func take() async -> [Item] {
            while true {
                let ready: [Item]? = state.withLock { state in
                    if !state.items.isEmpty {
                        defer { state.items = [] }
                        return state.items
                    }
                    return state.cancelled ? [] : nil
                }
                if let ready { return ready }
                await withTaskCancellationHandler {
                    // Unsafe rather than checked: the lock hands the continuation to exactly one resumer — a
                    // push or the cancellation handler takes it out of `waiter` under the lock before resuming it —
                    // and a checked one would cost an allocation per wake-up, per client and event.
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state in
                            if !state.items.isEmpty || state.cancelled { return true }
                            state.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = state.withLock { state in
                        state.cancelled = true
                        defer { state.waiter = nil }
                        return state.waiter
                    }
                    waiter?.resume()
                }
            }
        }
    }

    /// Runs the stream until the feed ends, the client falls behind, the server shuts down or the client goes
    /// away (`write` throws).
    ///
    /// - Parameters:
    ///   - events: The feed, already encoded.
    ///   - bufferLimit: How many events (and heartbeats) may wait for the client.
    ///   - heartbeat: How long the stream may be idle before a comment line is sent.
    ///   - write: Writes bytes to the client; it may wait for the client to read, and must stop waiting when
    ///     its task is cancelled.
    static func run(
        events: some AsyncSequence<StreamEvent, any Error> & Sendable,
        bufferLimit: Int,
        heartbeat: Duration,
        write: @escaping @Sendable (ByteBuffer) async throws -> Void
    ) async throws -> Outcome {
        try await run(
            buffer: Buffer(limit: bufferLimit),
            heartbeat: heartbeat,
            feed: { buffer in
                for try await event in events {
                    guard buffer.push(event) else { throw Overflow() }
                }
            },
            write: write
        )
    }

    /// Runs the stream: `feed` fills `buffer` (it returns when the feed ends, and throws ``Overflow`` when the
    /// buffer is full), a heartbeat task adds comments, a writer task writes the buffer to the client.
    static func run(
        buffer: Buffer,
        heartbeat: Duration,
        feed: @escaping @Sendable (Buffer) async throws -> Void,
        write: @escaping @Sendable (ByteBuffer) async throws -> Void
    ) async throws -> Outcome {
        let lastActivity = LastActivity()
        // Yields into the bounded buffer; a full buffer ends the stream, because the client is not reading.
        let push: @Sendable (Item) throws -> Void = { item in
            guard buffer.push(item) else { throw Overflow() }
        }
        return try await withThrowingTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                // The writer: the only task that waits for the client.
                while true {
                    let items = await buffer.take()
                    if items.isEmpty { return nil }
                    var chunk = ByteBuffer()
                    var ending: Outcome?
                    if items.count == 1, case .event(let event) = items[0] {
                        // One event: its shared bytes as they are, without a copy.
                        chunk = event.frame
                    } else {
                        loop: for item in items {
                            switch item {
                            case .event(let event):
                                var frame = event.frame
                                chunk.writeBuffer(&frame)
                            case .heartbeat:
                                chunk.writeString(": heartbeat\n\n")
                            case .end(let outcome):
                                ending = outcome
                                break loop
                            case .failure(let message):
                                chunk.writeString("event: problem\ndata: \(message)\n\n")
                                ending = .feedEnded
                                break loop
                            }
                        }
                    }
                    if chunk.readableBytes > 0 { try await write(chunk) }
                    lastActivity.touch()
                    if let ending { return ending }
                }
            }
            group.addTask {
                do {
                    try await feed(buffer)
                    try push(.end(.feedEnded))
                } catch is Overflow {
                    return .slowClient
                } catch is CancellationError {
                    return nil
                } catch {
                    let problem = Problem.from(error)
                    let json = String(decoding: problem.json, as: UTF8.self)
                    do { try push(.failure(json)) } catch { return .slowClient }
                }
                return nil
            }
            group.addTask {
                while true {
                    let since = lastActivity.instant
                    let due = since + heartbeat
                    if due <= .now {
                        do { try push(.heartbeat) } catch { return .slowClient }
                        lastActivity.touch()
                        try await Task.sleep(for: heartbeat)
                    } else {
                        try await Task.sleep(until: due, clock: .continuous)
                    }
                }
            }
            group.addTask {
                try await gracefulShutdown()
                return .shutdown
            }
            defer { group.cancelAll() }
            while let outcome = try await group.next() {
                if let outcome { return outcome }
            }
            return .feedEnded
        }
    }

    /// When the stream last sent something, shared by the writer and the heartbeat tasks.
    private final class LastActivity: Sendable {
        private let value = Mutex(ContinuousClock.now)
        var instant: ContinuousClock.Instant { value.withLock { $0 } }
        func touch() { value.withLock { $0 = .now } }
    }
}
