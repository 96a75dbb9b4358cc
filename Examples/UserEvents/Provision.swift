import ArgumentParser
import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave

struct Provision: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create (or drop) the RisingWave source, latest-state view and subscription for the topic."
    )

    @Option(help: "RisingWave URL.")
    var risingwave = "postgres://root@localhost:4566/dev"
    @Option(help: "The Kafka brokers as RisingWave reaches them (inside Docker: redpanda:29092).")
    var rwBrokers = "localhost:9092"
    @Option(
        help:
            "The Kafka brokers as this command reaches them: the topic is created there first if missing (RisingWave refuses a source on a missing topic)."
    )
    var brokers = "localhost:9092"
    @Option(help: "Partitions when creating the topic.")
    var partitions = 4
    @Option(
        help:
            "The topic. The objects are named after it: orders → orders_events, latest_orders_state (user-events keeps user_events, latest_user_state); a topic that could share names with another (a.b, a_b, A_B) is refused."
    )
    var topic = "user-events"
    @Option(help: "Seconds to wait for RisingWave and the brokers before giving up (1…3600).")
    var connectTimeout: Int = 10
    @Flag(help: "Print the SQL without connecting.")
    var dryRun = false
    @Flag(help: "Drop the objects instead of creating them.")
    var teardown = false
    @Flag(
        help:
            "Drop and recreate objects that exist with another definition (provisioning refuses them otherwise); the views are rebuilt from what the topic still retains."
    )
    var replace = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        try validateConnectTimeout(connectTimeout)
        // A topic Kafka refuses, or one whose object names another topic could share: a usage error, before any
        // network (--dry-run included).
        do {
            _ = try RisingWavePipeline<DemoUser>.userEvents(topic: topic, bootstrapServers: rwBrokers)
        } catch let error as DeltaKitError {
            throw ValidationError("--topic: \(error.message)")
        }
    }

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let pipeline = try RisingWavePipeline<DemoUser>.userEvents(topic: topic, bootstrapServers: rwBrokers)
            if dryRun {
                if teardown {
                    pipeline.teardownStatements.forEach { printLine($0 + ";") }
                } else {
                    if replace { pipeline.teardownStatements.forEach { printLine($0 + ";") } }
                    print(pipeline.script, terminator: "")
                }
                return
            }
            let connection = try await RisingWaveConnection(
                configuration: .init(url: risingwave, connectTimeout: .seconds(connectTimeout))
            )
            if !teardown {
                let admin = try KafkaTopicAdmin(
                    configuration: .userEvents(brokers: brokers, connectTimeout: connectTimeout)
                )
                if try await admin.ensureTopic(topic, partitions: partitions) {
                    printLine("Created topic '\(topic)' with \(partitions) partitions.")
                }
            }
            if teardown {
                try await pipeline.teardown(on: connection)
                printLine("Dropped the DeltaKit objects for '\(topic)'.")
            } else {
                try await pipeline.apply(on: connection, replace: replace)
                printLine(
                    "Provisioned source '\(pipeline.sourceName)', views '\(pipeline.viewName)' and '\(pipeline.historyViewName)', and subscription '\(pipeline.subscriptionName)' for topic '\(topic)'."
                )
            }
        }
    }
}
