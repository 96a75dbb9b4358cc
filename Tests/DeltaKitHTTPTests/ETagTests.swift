import DeltaKit
import DeltaKitTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import DeltaKitHTTP

@Suite("Entity tags and If-None-Match (RFC 9110)")
struct ETagTests {
    @Test("a row's tag is its order and a hash of its body; without an order, the hash alone")
    func tagForm() {
        let body = Data(#"{"age":25,"id":1,"name":"Alice"}"#.utf8)
        let tag = ETag.of(body, order: 42)
        #expect(tag.hasPrefix("\"42-") && tag.hasSuffix("\""))
        #expect(ETag.of(body, order: 42) == tag, "the same version, the same tag")
        #expect(
            ETag.of(Data(#"{"age":26,"id":1,"name":"Alice"}"#.utf8), order: 42) != tag,
            "a tie that changes the body"
        )
        let unordered = ETag.of(body, order: nil)
        #expect(!unordered.contains("-") && unordered.hasPrefix("\"") && unordered.count > 2)
    }

    @Test("the tag's text: the order in decimal (any Int64), a dash, the body's FNV-1a hash in lowercase hex")
    func tagText() {
        var generator = SystemRandomNumberGenerator()
        let orders: [Int64?] =
            [nil, 0, 1, 9, 10, -1, -10, .max, .min]
            + (0..<200).map { _ in Int64.random(in: .min ... .max, using: &generator) }
        for (index, order) in orders.enumerated() {
            let body = Data((0..<(index % 40)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in body {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
            let expected = "\"" + (order.map { "\($0)-" } ?? "") + String(hash, radix: 16) + "\""
            #expect(ETag.of(body, order: order) == expected, "order \(String(describing: order)), \(body.count) bytes")
        }
    }

    @Test("If-None-Match: weak comparison, *, lists, commas inside tags, malformed lists")
    func matching() {
        let tag = #""7-abc""#
        #expect(ETag.matches(tag, tag))
        #expect(ETag.matches("W/\(tag)", tag), "weak comparison ignores W/")
        #expect(ETag.matches("*", tag))
        #expect(ETag.matches(#""x", "y",W/"7-abc""#, tag))
        #expect(ETag.matches(#" , ,"7-abc" , "#, tag), "empty list elements and whitespace")
        #expect(ETag.matches(#""a,b", "7-abc""#, tag), "a comma inside an opaque tag does not split it")
        #expect(!ETag.matches(#""a,"7-abc""#, tag), "a quote ends the tag: '\"a,\"' then garbage")
        #expect(!ETag.matches(#""7-ab""#, tag))
        #expect(!ETag.matches("7-abc", tag), "an unquoted tag is malformed")
        #expect(!ETag.matches(#"w/"7-abc""#, tag), "W/ is case-sensitive")
        #expect(!ETag.matches(#""x" "7-abc""#, tag), "two tags need a comma between them")
        #expect(!ETag.matches("", tag))
        #expect(!ETag.matches(#""7-abc"#, tag), "an unterminated tag")
    }

    @Test("a store that gives no order is tagged by its body and still answers 304")
    func storeWithoutOrder() async throws {
        let server = try StateServer(tables: [ServedTable("plain", store: PlainStore())])
        try await Application(router: server.router()).test(.router) { client in
            let row = try await client.execute(uri: "/v1/tables/plain/rows/1", method: .get)
            #expect(row.status == .ok)
            let tag = try #require(row.headers[.eTag])
            #expect(tag == ETag.of(Data(row.body.readableBytesView), order: nil))
            let cached = try await client.execute(
                uri: "/v1/tables/plain/rows/1",
                method: .get,
                headers: [.ifNoneMatch: tag]
            )
            #expect(cached.status == .notModified)
        }
    }
}
