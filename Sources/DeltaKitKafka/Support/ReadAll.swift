package import DeltaKit

extension KafkaEventSource {
    /// Every event of `topic`, read once from the beginning of every partition to its end, without a group: what a
    /// topic holds, for tests and tools that check it.
    package static func readAll(_ kafka: KafkaConfiguration, topic: String) async throws -> [ChangeEvent<Record>] {
        let source = try await KafkaEventSource(
            configuration: .init(kafka: kafka, topic: topic, groupID: nil, stopWhenCaughtUp: true)
        )
        var events: [ChangeEvent<Record>] = []
        for try await consumed in source.events { events.append(consumed.event) }
        try await source.close()
        return events
    }
}
