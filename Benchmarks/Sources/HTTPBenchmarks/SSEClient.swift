import NIOCore
import NIOHTTP1
import NIOPosix

/// One server-sent event as the client saw it: its `id:` (if any) and its `data:` bytes.
struct ReceivedEvent {
    var id: String?
    var data: [UInt8]
}

/// A minimal Server-Sent Events client over NIO: HTTP/1.1 GET, NIO's response decoder (chunked bodies), and a line
/// scanner for `id:` and `data:` — no allocation beyond the event's bytes, so one thread keeps up with far more
/// events than the server under test delivers.
final class SSEHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let path: String
    private let headers: [(String, String)]
    /// Called on the channel's event loop for each event; returns `false` to close the connection at once.
    private let onEvent: (ReceivedEvent) -> Bool
    /// Called once the response head arrives (with its status) — the stream is open.
    private let onOpen: (Int) -> Void
    private var line: [UInt8] = []
    private var id: String?
    private var data: [UInt8] = []
    private var closing = false

    init(
        path: String,
        headers: [(String, String)] = [],
        onOpen: @escaping (Int) -> Void,
        onEvent: @escaping (ReceivedEvent) -> Bool
    ) {
        self.path = path
        self.headers = headers
        self.onOpen = onOpen
        self.onEvent = onEvent
        line.reserveCapacity(256)
    }

    func channelActive(context: ChannelHandlerContext) {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1")
        head.headers.add(name: "Accept", value: "text/event-stream")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            onOpen(Int(head.status.code))
        case .body(let buffer):
            buffer.withUnsafeReadableBytes { bytes in
                // Line by line: each line's bytes are appended in one copy, not byte by byte, so that the client's
                // own cost (and its delay before it stamps an event received) stays small.
                var start = bytes.startIndex
                while start < bytes.endIndex, !closing {
                    guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                        line.append(contentsOf: bytes[start...])
                        return
                    }
                    line.append(contentsOf: bytes[start..<newline])
                    endLine(context)
                    start = newline + 1
                }
            }
        case .end:
            context.close(promise: nil)
        }
    }

    private func endLine(_ context: ChannelHandlerContext) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        if line.isEmpty {
            guard !data.isEmpty || id != nil else { return }
            let event = ReceivedEvent(id: id, data: data)
            id = nil
            data.removeAll(keepingCapacity: true)
            if !onEvent(event) {
                closing = true
                context.close(promise: nil)
            }
            return
        }
        if line.starts(with: Self.dataPrefix) {
            data.append(contentsOf: line[Self.dataPrefix.count...])
        } else if line.starts(with: Self.idPrefix) {
            id = String(decoding: line[Self.idPrefix.count...], as: UTF8.self)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private static let dataPrefix = Array("data: ".utf8)
    private static let idPrefix = Array("id: ".utf8)
}

/// Connects an SSE client to `127.0.0.1:port`; the future completes when the connection is up.
func connectSSE(
    on loop: any EventLoop,
    port: Int,
    receiveBuffer: Int? = nil,
    autoRead: Bool = true,
    makeHandler: @escaping @Sendable () -> SSEHandler
) -> EventLoopFuture<any Channel> {
    var bootstrap = ClientBootstrap(group: loop)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelOption(.autoRead, value: autoRead)
    if let receiveBuffer {
        bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
    }
    return
        bootstrap
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(makeHandler())
            }
        }
        .connect(host: "127.0.0.1", port: port)
}
