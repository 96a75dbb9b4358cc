import ArgumentParser
import DeltaKit
import DeltaKitTesting
import Foundation

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the demo end to end in memory: send events, then show the history and the latest state."
    )

    @OptionGroup var generator: GeneratorOptions
    @Option(
        help:
            "table: every sent event, the history and the latest state; csv (id,name,age lines) or json: the latest state only, for machines."
    )
    var format: OutputFormat = .table
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            let pipeline = try InMemoryPipeline<DemoUser>(historyLimit: 20)
            var events = DemoEventGenerator(seed: generator.resolvedSeed, clock: HybridLogicalClock())
            for i in 0..<generator.count {
                let event = events.next()
                try await pipeline.sink.send(event)
                if format == .table { printLine("Sent: \(event)") }
                if generator.interval.duration > .zero, i + 1 < generator.count {
                    try await Task.sleep(for: generator.interval.duration)
                }
            }
            let history = try await pipeline.store.history(limit: 20)
            let snapshot = try await pipeline.store.snapshot()
            switch format {
            case .table:
                printLine("\nEvent history (newest 20):")
                printLine(Render.historyTable(history))
                printLine("\nLatest state (\(snapshot.count) users):")
                printLine(Render.snapshotTable(snapshot))
            case .csv:
                Render.csv(snapshot).forEach(printLine)
            case .json:
                printLine(try Render.json(snapshot))
            }
        }
    }
}
