/// The change feed of an ``InMemoryStateStore``: the snapshot (if asked for), then every later change.
public struct InMemoryChangeFeed<Record: ChangeRecord>: AsyncSequence, Sendable {
    public typealias Element = ChangeFeedElement<Record>
    public typealias Failure = any Error

    let initial: [Element]
    let stream: AsyncThrowingStream<Element, any Error>

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(initial: initial.makeIterator(), rest: stream.makeAsyncIterator())
    }

    /// Iterates the feed.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var initial: IndexingIterator<[Element]>
        var rest: AsyncThrowingStream<Element, any Error>.AsyncIterator

        public mutating func next() async throws -> Element? {
            if let element = initial.next() { return element }
            return try await rest.next()
        }
    }
}
