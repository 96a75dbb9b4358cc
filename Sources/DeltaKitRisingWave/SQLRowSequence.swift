/// Rows of a streamed statement; see ``RisingWaveConnection/rows(_:_:)``.
struct SQLRowSequence: AsyncSequence, Sendable {
    typealias Element = SQLRow
    typealias Failure = any Error
    let connection: RisingWaveConnection
    let sql: String
    let parameters: [String?]

    func makeAsyncIterator() -> Iterator { Iterator(sequence: self) }

    struct Iterator: AsyncIteratorProtocol {
        let sequence: SQLRowSequence
        private var stream: Int?
        private var buffer: [SQLRow] = []
        private var index = 0
        private var finished = false

        init(sequence: SQLRowSequence) { self.sequence = sequence }

        mutating func next() async throws -> SQLRow? {
            while index == buffer.count {
                if finished { return nil }
                if stream == nil {
                    stream = try await sequence.connection.startStream(sequence.sql, sequence.parameters)
                }
                guard let chunk = try await sequence.connection.nextChunk(stream!) else {
                    finished = true
                    return nil
                }
                buffer = chunk
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}
