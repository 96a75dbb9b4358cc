import DeltaKit
import DeltaKitKafka
import Testing

@testable import DeltaKitRisingWave

@Suite("Smoke: services reachable from Swift")
struct SmokeTests {
    @Test("librdkafka reports its version, creates a topic and fetches its metadata from the broker", .requiresKafka)
    func kafka() async throws {
        let brokers = try TestEnvironment.requireKafka()
        print("librdkafka version: \(KafkaTopicAdmin.librdkafkaVersion)")
        #expect(!KafkaTopicAdmin.librdkafkaVersion.isEmpty)
        let admin = try KafkaTopicAdmin(configuration: KafkaConfiguration(bootstrapServers: [brokers]))
        #expect(try await admin.checkConnection() >= 1)
        let topic = TestEnvironment.uniqueTopic("smoke")
        #expect(try await admin.ensureTopic(topic, partitions: 3) == true)
        #expect(try await admin.ensureTopic(topic, partitions: 3) == false, "a second ensureTopic is a no-op")
        let partitions = try await admin.partitions(of: topic)
        #expect(partitions == [0, 1, 2])
        #expect(try await admin.topics().contains(topic))
    }
}

extension SmokeTests {
    @Test("libpq runs SELECT 1 on PostgreSQL", .requiresPostgres)
    func postgres() async throws {
        let url = try TestEnvironment.requirePostgres()
        print("libpq version: \(RisingWaveConnection.libpqVersion)")
        let connection = try await RisingWaveConnection(configuration: .init(url: url))
        let rows = try await connection.query("SELECT 1 AS one")
        #expect(rows.count == 1)
        #expect(try rows[0].decode("one", as: Int.self) == 1)
    }
}
