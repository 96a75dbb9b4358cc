import ArgumentParser

/// The HTTP API's goals (issue 22), driven by Benchmarks/run: resume across reconnections, fan-out to many
/// change-stream clients, and one-row reads next to Hummingbird's own plain-text route (under `wrk`).
@main
struct HTTPBenchmarks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "HTTPBenchmarks",
        abstract: "DeltaKitHTTP benchmarks (driven by Benchmarks/run).",
        subcommands: [Resume.self, Fanout.self, Serve.self, Plaintext.self]
    )
}
