/// An event whose message is already encoded: its key's text and its wire JSON exactly as DeltaKit's encoder wrote
/// it, with the order the event is published with. The outbox relay forwards such a row's payload as it is, instead
/// of decoding it into the record type and encoding it again — the same bytes, without the per-event cost of both.
///
/// Made only by ``init(key:json:order:trace:)``, which checks that the JSON ends as DeltaKit's encoder ends every
/// event (`,"op":"<operation>","event_order":<order>,"ts":"<timestamp>"}`) with `order` as its `event_order`; it
/// cannot check the fields before that, so only JSON that DeltaKit's encoder wrote for the sink's record type may be
/// given (the outbox marks such rows).
package struct EncodedEvent: Sendable, Hashable {
    /// The message key's text; its UTF-8 bytes are the key (the record key's `keyBytes`).
    package let key: String
    /// The wire JSON, the message's value.
    package let json: String
    /// The order written in ``json``.
    package let order: Int64
    /// Whether the event is a delete (a sink that sends tombstones follows it with one).
    package let isDelete: Bool
    /// The `ts` value's text in ``json``, as `EventTimestamp.format` wrote it: a tombstone's timestamp header.
    package let timestamp: Substring
    /// The propagation headers of the trace context the event was written in (none when untraced).
    package var trace: [TraceHeader]

    /// The event encoded as `json` under `key`, or `nil` when `json` does not end as DeltaKit's encoder ends an
    /// event with `order` as its `event_order`.
    package init?(key: String, json: String, order: Int64, trace: [TraceHeader] = []) {
        var json = json
        json.makeContiguousUTF8()
        guard let tail = json.utf8.withContiguousStorageIfAvailable({ Self.tail(of: $0, order: order) }) ?? nil else {
            return nil
        }
        let utf8 = json.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: tail.timestamp.lowerBound)
        let end = utf8.index(utf8.startIndex, offsetBy: tail.timestamp.upperBound)
        self.key = key
        self.json = json
        self.order = order
        self.isDelete = tail.isDelete
        self.timestamp = json[start..<end]
        self.trace = trace
    }

    /// Where the order's digits start, measured back from the end of an event's JSON (the digits and everything
    /// after them are ASCII, so this is also their count in characters): what an SQL statement cuts to put another
    /// order in their place. `nil` when `json` does not end as DeltaKit's encoder ends an event with `order`.
    package static func orderDigitsFromEnd(of json: [UInt8], order: Int64) -> (digits: Int, after: Int)? {
        guard let tail = json.withUnsafeBufferPointer({ Self.tail(of: $0, order: order) }) else { return nil }
        return (tail.digits.count, json.count - tail.digits.upperBound)
    }

    /// The end of an event's wire JSON: `,"op":"<operation>","event_order":<order>,"ts":"<timestamp>"}`, with its
    /// digits' and timestamp's positions; `nil` unless `bytes` ends so, with `order` written as the encoder writes
    /// it (no sign but a minus, no leading zero).
    private static func tail(
        of bytes: UnsafeBufferPointer<UInt8>,
        order: Int64
    ) -> (digits: Range<Int>, timestamp: Range<Int>, isDelete: Bool)? {
        let quote = UInt8(ascii: "\"")
        var end = bytes.count
        // `"}` closes the timestamp's string and the object.
        guard end >= 2, bytes[end - 1] == UInt8(ascii: "}"), bytes[end - 2] == quote else { return nil }
        end -= 2
        // The timestamp holds no quote: its opening quote is the first one before.
        var index = end
        while index > 0, bytes[index - 1] != quote { index -= 1 }
        guard index > 0 else { return nil }
        let timestamp = index..<end
        guard matches(bytes, endingAt: index, timestampKey) else { return nil }
        let digitsEnd = index - timestampKey.count
        var digitsStart = digitsEnd
        while digitsStart > 0, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[digitsStart - 1]) {
            digitsStart -= 1
        }
        guard digitsStart < digitsEnd, digitsEnd - digitsStart <= 19 else { return nil }
        let negative = digitsStart > 0 && bytes[digitsStart - 1] == UInt8(ascii: "-")
        guard bytes[digitsStart] != UInt8(ascii: "0") || digitsEnd - digitsStart == 1 else { return nil }
        var magnitude: UInt64 = 0
        for offset in digitsStart..<digitsEnd { magnitude = magnitude * 10 + UInt64(bytes[offset] &- 48) }
        guard order.magnitude == magnitude, (order < 0) == negative else { return nil }
        let orderStart = negative ? digitsStart - 1 : digitsStart
        guard matches(bytes, endingAt: orderStart, orderKey) else { return nil }
        let operationEnd = orderStart - orderKey.count
        for (text, isDelete) in operations where matches(bytes, endingAt: operationEnd, text) {
            return (orderStart..<digitsEnd, timestamp, isDelete)
        }
        return nil
    }

    private static let timestampKey = Array(#","ts":""#.utf8)
    private static let orderKey = Array(#","event_order":"#.utf8)
    /// `,"op":"<operation>"` of each operation, and whether it is the delete.
    private static let operations = ChangeOperation.allCases.map { operation in
        (Array(#","op":""#.utf8) + Array(operation.rawValue.utf8) + [UInt8(ascii: "\"")], operation == .delete)
    }

    private static func matches(_ bytes: UnsafeBufferPointer<UInt8>, endingAt end: Int, _ expected: [UInt8]) -> Bool {
        guard end >= expected.count, end <= bytes.count else { return false }
        var offset = end - expected.count
        for byte in expected {
            guard bytes[offset] == byte else { return false }
            offset += 1
        }
        return true
    }
}

/// One message of a send that mixes events to encode and events already encoded (``EncodedEvent``), in order.
package enum OutgoingEvent<Record: ChangeRecord>: Sendable {
    /// An event the sink encodes, with the trace headers it was written in.
    case event(ChangeEvent<Record>, trace: [TraceHeader])
    /// An event already encoded, sent as it is.
    case encoded(EncodedEvent)
}

/// A sink that sends events already encoded as they are, next to events it encodes itself (``OutgoingEvent``): the
/// outbox relay's send when its sink is one.
package protocol EncodedEventSending<Record>: TraceHeaderSending {
    /// Sends `events` in order, each as `send(contentsOf:traceHeaders:)` sends an event with its trace headers: an
    /// ``EncodedEvent`` becomes the message the sink would make for the event its JSON holds (its key, its JSON as
    /// the value, its trace headers, and a delete's tombstone when the sink sends them).
    func send(_ events: [OutgoingEvent<Record>]) async throws -> EventReceipt

    /// Sends `events`, all already encoded, in order, as ``send(_:)`` sends them: the relay's usual batch, given
    /// without the generic enum so that nothing per event depends on the record type.
    func send(encoded events: [EncodedEvent]) async throws -> EventReceipt
}
