import DeltaKit
import DeltaKitTesting
import Logging
import Testing

@testable import DeltaKitKafka

/// Configuration lowering and validation: no broker needed.
@Suite("Kafka configuration")
struct KafkaConfigurationTests {
    func dictionary(_ pairs: [(String, String)]) -> [String: String] {
        Dictionary(pairs, uniquingKeysWith: { _, later in later })
    }

    @Test("the sink's defaults are an ordered, loss-free producer with the Java partitioner")
    func sinkDefaults() {
        let properties = dictionary(KafkaEventSink<DemoUser>.Configuration(topic: "t").properties)
        #expect(properties["bootstrap.servers"] == "localhost:9092")
        #expect(properties["enable.idempotence"] == "true")
        #expect(properties["acks"] == "all")
        #expect(properties["max.in.flight.requests.per.connection"] == "1", "every acknowledgement is the event's own")
        #expect(properties["partitioner"] == "murmur2_random")
        #expect(properties["linger.ms"] == "5")
        #expect(properties["message.timeout.ms"] == "120000")
        #expect(properties["queue.buffering.max.messages"] == "100000")
        #expect(properties["compression.codec"] == "none")
        #expect(properties["socket.nagle.disable"] == "true")
    }

    @Test("additional properties are applied last and win")
    func escapeHatch() {
        var configuration = KafkaEventSink<DemoUser>.Configuration(topic: "t")
        configuration.kafka.additionalProperties = ["linger.ms": "50", "statistics.interval.ms": "1000"]
        let properties = dictionary(configuration.properties)
        #expect(properties["linger.ms"] == "50")
        #expect(properties["statistics.interval.ms"] == "1000")
    }

    @Test("every client gets the cluster's settings, then its own, then additionalProperties")
    func everyClientGetsAdditionalProperties() {
        let kafka = KafkaConfiguration(
            security: .init(protocol: .saslSSL, saslMechanism: .plain),
            additionalProperties: ["sasl.mechanisms": "SCRAM-SHA-256", "fetch.wait.max.ms": "250"]
        )
        let clients: [(String, [(String, String)])] = [
            ("admin", kafka.properties),
            ("sink", KafkaEventSink<DemoUser>.Configuration(kafka: kafka, topic: "t").properties),
            ("source", KafkaEventSource<DemoUser>.Configuration(kafka: kafka, topic: "t").properties),
            ("dead letters", RawMessageSink.Settings(kafka: kafka).properties),
            ("probe", ProbeSettings(kafka: kafka, groupID: "p", extra: [("fetch.wait.max.ms", "100")]).properties),
        ]
        for (client, pairs) in clients {
            let properties = dictionary(pairs)
            #expect(properties["security.protocol"] == "sasl_ssl", "\(client)")
            #expect(properties["sasl.mechanisms"] == "SCRAM-SHA-256", "\(client): additionalProperties win")
            #expect(properties["fetch.wait.max.ms"] == "250", "\(client): additionalProperties win")
        }
    }

    @Test("the partitioner and the SASL mechanism are librdkafka's names")
    func closedSets() {
        var configuration = KafkaEventSink<DemoUser>.Configuration(topic: "t", partitioner: .fnv1aRandom)
        configuration.kafka.security = .init(protocol: .saslPlaintext, saslMechanism: .scramSHA256)
        let properties = dictionary(configuration.properties)
        #expect(properties["partitioner"] == "fnv1a_random")
        #expect(properties["sasl.mechanisms"] == "SCRAM-SHA-256")
        #expect(properties["security.protocol"] == "sasl_plaintext")
    }

    @Test("security settings map to librdkafka; secrets stay out of descriptions")
    func security() {
        let kafka = KafkaConfiguration(
            bootstrapServers: ["a:9093", "b:9093"],
            security: .init(
                protocol: .saslSSL,
                saslMechanism: .scramSHA512,
                saslUsername: "app",
                saslPassword: "hunter2",
                caLocation: "/etc/ca.pem"
            )
        )
        let properties = dictionary(kafka.properties)
        #expect(properties["bootstrap.servers"] == "a:9093,b:9093")
        #expect(properties["security.protocol"] == "sasl_ssl")
        #expect(properties["sasl.mechanisms"] == "SCRAM-SHA-512")
        #expect(properties["sasl.password"] == "hunter2")
        #expect(properties["ssl.ca.location"] == "/etc/ca.pem")
        #expect(!kafka.description.contains("hunter2"))
    }

    @Test("the source's consumer settings: EOF for caught-up, manual offset store, group or no group")
    func sourceProperties() {
        let group = dictionary(
            KafkaEventSource<DemoUser>.Configuration(topic: "t", groupID: "deltakit", sessionTimeout: .seconds(6))
                .properties
        )
        #expect(group["enable.partition.eof"] == "true")
        #expect(group["enable.auto.offset.store"] == "false")
        #expect(group["enable.auto.commit"] == "true")
        #expect(group["group.id"] == "deltakit")
        #expect(group["session.timeout.ms"] == "6000")
        #expect(group["heartbeat.interval.ms"] == "2000")
        #expect(group["auto.offset.reset"] == "earliest")
        let direct = dictionary(
            KafkaEventSource<DemoUser>.Configuration(topic: "t", startPosition: .latest).properties
        )
        #expect(direct["enable.auto.commit"] == "false")
        #expect(direct["auto.offset.reset"] == "latest")
    }

    @Test(
        "topic names follow Kafka's rules",
        arguments: ["", ".", "..", "a b", "a/b", "ü", String(repeating: "x", count: 250)]
    )
    func badTopics(name: String) {
        #expect(throws: DeltaKitError.self) { try KafkaTopicName.validate(name) }
    }

    @Test("valid topic names pass", arguments: ["user-events", "a.b_c-1", String(repeating: "x", count: 249)])
    func goodTopics(name: String) throws {
        try KafkaTopicName.validate(name)
    }

    @Test("durations become whole milliseconds, saturating instead of trapping")
    func milliseconds() {
        #expect(Duration.milliseconds(5).milliseconds() == 5)
        #expect(Duration.seconds(2).milliseconds() == 2000)
        #expect(Duration.microseconds(10).milliseconds(minimum: 1) == 1)
        #expect(Duration.seconds(Int64.max).milliseconds() == Int64.max)
        #expect(Duration.seconds(Int64.max).int32Milliseconds() == Int32.max)
    }

    @Test("a source reads every partition from the start by default: no consumer group, no committed offsets")
    func sourceDefaultHasNoGroup() {
        #expect(KafkaEventSource<DemoUser>.Configuration(topic: "t").groupID == nil)
    }

    /// Runs `body` and returns the `invalidConfiguration` error it threw, or records an issue.
    func invalid(_ body: () async throws -> Void) async -> DeltaKitError? {
        do {
            try await body()
            Issue.record("no error")
        } catch let error as DeltaKitError {
            #expect(error.code == .invalidConfiguration, "\(error)")
            return error
        } catch {
            Issue.record("unexpected \(error)")
        }
        return nil
    }

    @Test(
        "malformed bootstrap servers fail at construction, naming the value",
        arguments: ["garbage", ":99999", "", "http://localhost:9092", "localhost:0", "host:port", "a b:1"]
    )
    func badServers(server: String) async {
        let error = await invalid { _ = try KafkaTopicAdmin(configuration: .init(bootstrapServers: [server])) }
        #expect(error?.message.contains("bootstrapServers") == true)
        #expect(error?.message.contains("'\(server)'") == true)
    }

    @Test(
        "valid bootstrap servers pass",
        arguments: ["localhost:9092", "PLAINTEXT://b1:9092", "[::1]:9092", "10.0.0.1:1", "a:1,b:2"]
    )
    func goodServers(server: String) throws {
        try KafkaConfiguration(bootstrapServers: [server]).validate()
    }

    @Test("an empty server list fails at once instead of waiting out the timeout")
    func emptyServers() async {
        let clock = ContinuousClock()
        let start = clock.now
        let error = await invalid {
            _ = try await KafkaEventSink<DemoUser>(
                configuration: .init(kafka: .init(bootstrapServers: [], connectTimeout: .seconds(60)), topic: "t")
            )
        }
        #expect(error?.message.contains("bootstrapServers is empty") == true)
        #expect(clock.now - start < .seconds(30))
    }

    @Test("out-of-range numbers fail with the field, the value and the range, never a trap")
    func outOfRange() async {
        let huge = KafkaConfiguration(connectTimeout: .seconds(Int64.max))
        var error = await invalid { _ = try KafkaTopicAdmin(configuration: huge) }
        #expect(error?.message.contains("connectTimeout") == true)
        error = await invalid { _ = try KafkaTopicAdmin(configuration: .init(connectTimeout: .seconds(-1))) }
        #expect(error?.message.contains("connectTimeout") == true)
        for (field, settings) in [
            ("partitions", KafkaEventSink<DemoUser>.Configuration.TopicSettings(partitions: 0)),
            ("partitions", .init(partitions: Int.max)),
            ("replicationFactor", .init(replicationFactor: 1 << 40)),
        ] {
            error = await invalid {
                _ = try await KafkaEventSink<DemoUser>(configuration: .init(topic: "t", createTopic: settings))
            }
            #expect(error?.message.hasPrefix(field) == true, "\(String(describing: error))")
        }
        var sink = KafkaEventSink<DemoUser>.Configuration(topic: "t")
        sink.linger = .seconds(-1)
        error = await invalid { try sink.validate() }
        #expect(error?.message.contains("linger is") == true)
        sink = KafkaEventSink<DemoUser>.Configuration(topic: "t", queueMaxMessages: 0)
        error = await invalid { try sink.validate() }
        #expect(error?.message.contains("queueMaxMessages is 0") == true)
        sink = KafkaEventSink<DemoUser>.Configuration(topic: "t", maxInFlightRequests: 6)
        error = await invalid { try sink.validate() }
        #expect(error?.message.contains("maxInFlightRequests is 6") == true, "\(String(describing: error))")
        sink = KafkaEventSink<DemoUser>.Configuration(topic: "t", acks: .leader)
        error = await invalid { try sink.validate() }
        #expect(error?.message.contains("acks") == true)
        let source = KafkaEventSource<DemoUser>.Configuration(topic: "t", bufferSize: 0)
        error = await invalid { _ = try await KafkaEventSource<DemoUser>(configuration: source) }
        #expect(error?.message.contains("bufferSize is 0") == true)
        let longSession = KafkaEventSource<DemoUser>.Configuration(topic: "t", sessionTimeout: .seconds(1 << 40))
        error = await invalid { try longSession.validate() }
        #expect(error?.message.contains("sessionTimeout") == true)
        var slowFetch = KafkaEventSource<DemoUser>.Configuration(topic: "t")
        #expect(slowFetch.properties.contains { $0 == ("fetch.wait.max.ms", "100") })
        slowFetch.fetchWait = .seconds(301)
        error = await invalid { try slowFetch.validate() }
        #expect(error?.message.contains("fetchWait") == true)
        let admin = try? KafkaTopicAdmin(configuration: .init())
        error = await invalid { _ = try await admin?.ensureTopic("t", partitions: -3) }
        #expect(error?.message.contains("partitions is -3") == true)
    }

    @Test(
        "a property the library sets itself and relies on is refused in additionalProperties, naming it and why",
        arguments: [
            ("enable.partition.eof", "false", "end-of-partition"), ("enable.auto.offset.store", "true", "acknowledged"),
            ("group.id", "g", "groupID"), ("auto.offset.reset", "latest", "startPosition"),
            ("bootstrap.servers", "a:1", "bootstrapServers"), ("delivery.report.only.error", "true", "delivery report"),
        ]
    )
    func reservedSourceProperties(name: String, value: String, reason: String) async {
        var configuration = KafkaEventSource<DemoUser>.Configuration(topic: "t")
        configuration.kafka.additionalProperties = [name: value, "statistics.interval.ms": "1000"]
        let error = await invalid { _ = try await KafkaEventSource<DemoUser>(configuration: configuration) }
        #expect(error?.message.contains("additionalProperties sets '\(name)'") == true, "\(String(describing: error))")
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
        #expect(error?.message.contains("remove it from additionalProperties") == true)
    }

    @Test(
        "the sink refuses acks, enable.idempotence and delivery.report.only.error in additionalProperties",
        arguments: [
            "acks", "request.required.acks", "enable.idempotence", "delivery.report.only.error", "bootstrap.servers",
        ]
    )
    func reservedSinkProperties(name: String) async {
        var configuration = KafkaEventSink<DemoUser>.Configuration(topic: "t")
        configuration.kafka.additionalProperties = [name: "1"]
        let error = await invalid { _ = try await KafkaEventSink<DemoUser>(configuration: configuration) }
        #expect(
            error?.message.contains("additionalProperties sets '\(name)', which KafkaEventSink") == true
                || error?.message.contains("additionalProperties sets '\(name)', which every DeltaKit client") == true,
            "\(String(describing: error))"
        )
        // Properties the library does not rely on stay allowed (they are what additionalProperties is for).
        configuration.kafka.additionalProperties = ["linger.ms": "50", "security.protocol": "plaintext"]
        #expect(throws: Never.self) { try configuration.validate() }
    }

    @Test("fetch.queue.backoff.ms is 10 ms on a librdkafka that has it (2.2+), left out before, and accepted")
    func fetchQueueBackoff() throws {
        let properties = KafkaEventSource<DemoUser>.Configuration(topic: "t").properties
        let backoff = properties.first { $0.0 == "fetch.queue.backoff.ms" }?.1
        #expect(backoff == (RdKafka.version >= 0x0202_0000 ? "10" : nil), "librdkafka \(RdKafka.versionString)")
        // The loaded librdkafka accepts every property the source sets (no broker is contacted).
        _ = try RdKafkaHandle(
            kind: .consumer,
            properties: properties,
            callbacks: RdKafkaCallbacks(logger: Logger(label: "test"))
        )
    }

    @Test("an unknown property fails at construction with librdkafka's own message, no broker needed")
    func unknownProperty() {
        let error = #expect(throws: DeltaKitError.self) {
            _ = try KafkaTopicAdmin(configuration: .init(additionalProperties: ["no.such.thing": "1"]))
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("No such configuration property") == true)
        #expect(error?.message.contains("no.such.thing") == true)
    }

    @Test("a rejected secret is not echoed")
    func rejectedSecret() {
        let error = #expect(throws: DeltaKitError.self) {
            _ = try KafkaTopicAdmin(configuration: .init(additionalProperties: ["sasl.password.bogus": "hunter2"]))
        }
        #expect(error?.message.contains("hunter2") == false)
    }

    @Test("the librdkafka version is reported")
    func version() {
        #expect(!KafkaTopicAdmin.librdkafkaVersion.isEmpty)
        #expect(RdKafka.headerVersion >= 0x0200_0000)
    }
}
