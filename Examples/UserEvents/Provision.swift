import ArgumentParser
import DeltaKit
import DeltaKitRisingWave
import DeltaKitTesting

struct Provision: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create (or drop) the RisingWave source, latest-state view and subscription for the topic."
    )

    @Option(help: "RisingWave URL.")
    var risingwave = "postgres://root@localhost:4566/dev"
    @Option(help: "The Kafka brokers as RisingWave reaches them (inside Docker: redpanda:29092).")
    var rwBrokers = "localhost:9092"
    @Option(help: "The topic.")
    var topic = "user-events"
    @Flag(help: "Print the SQL without connecting.")
    var dryRun = false
    @Flag(help: "Drop the objects instead of creating them.")
    var teardown = false
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let pipeline = try RisingWavePipeline<DemoUser>.userEvents(topic: topic, bootstrapServers: rwBrokers)
            if dryRun {
                if teardown {
                    pipeline.teardownStatements.forEach { printLine($0 + ";") }
                } else {
                    print(pipeline.script, terminator: "")
                }
                return
            }
            let connection = try await RisingWaveConnection(configuration: .init(url: risingwave))
            if teardown {
                try await pipeline.teardown(on: connection)
                printLine("Dropped the DeltaKit objects for '\(topic)'.")
            } else {
                try await pipeline.apply(on: connection)
                printLine(
                    "Provisioned source '\(pipeline.sourceName)', view '\(pipeline.viewName)' and subscription '\(pipeline.subscriptionName)' for topic '\(topic)'."
                )
            }
        }
    }
}
