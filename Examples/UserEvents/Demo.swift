import ArgumentParser
import DeltaKit
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
            let store = try InMemoryStateStore<DemoUser>(historyLimit: 20)
            var events = DemoEvents(seed: generator.resolvedSeed, clock: HybridLogicalClock())
            // Memory stays bounded whatever --count is: the store keeps the latest state per user and the
            // newest 20 events, and the "Sent:" lines go out in chunks (one per event with --interval, so each
            // shows when it is sent).
            var sent = ""
            for i in 0..<generator.count {
                let event = events.next()
                // What a consumer would read back from a topic: the event through its wire form.
                try await store.apply(try ChangeEvent<DemoUser>(jsonData: try event.jsonData()))
                guard format == .table else { continue }
                sent += "Sent: \(event)\n"
                if generator.interval.duration > .zero || sent.utf8.count >= 65_536 {
                    try Console.output.write(sent)
                    sent = ""
                }
                if generator.interval.duration > .zero, i + 1 < generator.count {
                    try await Task.sleep(for: generator.interval.duration)
                }
            }
            try Console.output.write(sent)
            let history = try await store.history(limit: 20)
            let snapshot = try await store.snapshot()
            switch format {
            case .table:
                try Console.output.line("\nEvent history (newest 20):")
                try Console.output.line(Render.historyTable(history))
                try Console.output.line("\nLatest state (\(snapshot.count) users):")
                try Console.output.line(Render.snapshotTable(snapshot))
            case .csv:
                try Console.output.lines(Render.csv(snapshot))
            case .json:
                try Console.output.line(try Render.json(snapshot))
            }
        }
    }
}
