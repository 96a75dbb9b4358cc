import Foundation
import NIOCore
import NIOPosix

/// One server-sent event as a client sees it.
public struct ReceivedEvent: Equatable, Sendable {
    /// The `id:` line, when the event has one.
    public var id: String?
    /// The `event:` line, when the event has one.
    public var event: String?
    /// The `data:` lines, joined.
    public var data: String

    /// The `data:` as the API's change object.
    public var change: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any]
    }

    /// The change object's `kind`.
    public var kind: String? { change?["kind"] as? String }
    /// The change object's `key`, when it is an integer.
    public var key: Int? { change?["key"] as? Int }
}

/// A minimal HTTP/1.1 client for text/event-stream responses over a raw socket: it sends one GET, then yields
/// the events (and comments) of the chunked body as they arrive, so a test can read an endless stream. Shared by
/// the HTTP tests and the integration tests (the change stream over the RisingWave store on PostgreSQL).
public final class EventStreamClient {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var raw: [UInt8] = []
    private var headerDone = false
    private var body: [UInt8] = []
    /// The response's status code.
    public private(set) var status: Int = 0
    /// The response's headers, names lowercased.
    public private(set) var headers: [String: String] = [:]
    /// The comment lines received so far (without the colon).
    public private(set) var comments: [String] = []

    private init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) {
        self.inbound = inbound
    }

    /// Connects, sends `GET path` and reads the response head, then runs `body` with the client; the connection
    /// is closed when `body` returns.
    public static func with<Value: Sendable>(
        port: Int,
        path: String,
        headers: [String: String] = [:],
        _ body: (EventStreamClient) async throws -> Value
    ) async throws -> Value {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            for (name, value) in headers { request += "\(name): \(value)\r\n" }
            request += "\r\n"
            try await outbound.write(ByteBuffer(string: request))
            let client = EventStreamClient(inbound: inbound.makeAsyncIterator())
            while !client.headerDone {
                guard try await client.receive() else { break }
            }
            return try await body(client)
        }
    }

    /// Reads more bytes; `false` at the end of the connection.
    private func receive() async throws -> Bool {
        guard let buffer = try await inbound.next() else { return false }
        raw += buffer.readableBytesView
        parse()
        return true
    }

    private func parse() {
        if !headerDone {
            guard let end = find([13, 10, 13, 10], in: raw) else { return }
            let head = String(decoding: raw[..<end], as: UTF8.self).components(separatedBy: "\r\n")
            status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
            for line in head.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                    .trimmingCharacters(in: .whitespaces)
            }
            raw.removeFirst(end + 4)
            headerDone = true
        }
        // Chunked transfer encoding: size line, bytes, CRLF.
        while let lineEnd = find([13, 10], in: raw) {
            let sizeText = String(decoding: raw[..<lineEnd], as: UTF8.self)
            guard let size = Int(sizeText, radix: 16) else { return }
            guard raw.count >= lineEnd + 2 + size + 2 else { return }
            body += raw[(lineEnd + 2)..<(lineEnd + 2 + size)]
            raw.removeFirst(lineEnd + 2 + size + 2)
        }
    }

    /// The next event, skipping (and keeping) comments; `nil` when the stream ends.
    public func next() async throws -> ReceivedEvent? {
        while true {
            while let end = find([10, 10], in: body) {
                let block = String(decoding: body[..<end], as: UTF8.self)
                body.removeFirst(end + 2)
                var event = ReceivedEvent(id: nil, event: nil, data: "")
                var hasData = false
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") {
                        comments.append(String(line.dropFirst()).trimmingCharacters(in: .whitespaces))
                    } else if line.hasPrefix("id: ") {
                        event.id = String(line.dropFirst(4))
                    } else if line.hasPrefix("event: ") {
                        event.event = String(line.dropFirst(7))
                    } else if line.hasPrefix("data: ") {
                        event.data += String(line.dropFirst(6))
                        hasData = true
                    }
                }
                if hasData { return event }
            }
            guard try await receive() else { return nil }
        }
    }

    /// Reads until a heartbeat comment arrives.
    public func nextHeartbeat() async throws -> Bool {
        while true {
            if comments.contains("heartbeat") { return true }
            if let end = find([10, 10], in: body) {
                let block = String(decoding: body[..<end], as: UTF8.self)
                body.removeFirst(end + 2)
                if block.hasPrefix(": heartbeat") { return true }
                continue
            }
            guard try await receive() else { return false }
        }
    }

    /// The next `count` events.
    public func next(_ count: Int) async throws -> [ReceivedEvent] {
        var events: [ReceivedEvent] = []
        while events.count < count, let event = try await next() { events.append(event) }
        return events
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count)
        where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
