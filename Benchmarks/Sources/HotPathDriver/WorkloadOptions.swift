public import ArgumentParser
import Foundation
public import HotPathWorkloads

/// What the counting runners take: which workload, how big a batch, how many iterations — and the order they run
/// it in: prepare every iteration's input, run the warm-up, then the measured iterations.
public struct WorkloadOptions: ParsableArguments {
    @Argument(help: "The workload (see `HotPathCounts list`).") public var workload: String
    @Option(help: "Events per iteration (one batch).") public var events = 1_000
    @Option(help: "Distinct keys the events cycle through.") public var keys = 1_000
    @Option(help: "Iterations run before measuring (the state reaches its steady size).") public var warmup = 2
    @Option(help: "Measured iterations.") public var iterations = 5
    @Option(help: "Where a SQLite workload keeps its file.") public var directory = NSTemporaryDirectory()

    public init() {}

    /// The workload, with the input of every iteration (warm-up and measured) prepared.
    public func prepared() throws -> any Workload {
        let workload = try Workloads.make(workload, events: events, keys: keys, directory: directory)
        try workload.prepare(iterations: warmup + iterations)
        return workload
    }

    /// Runs the warm-up iterations.
    public func runWarmup(_ workload: any Workload) async throws {
        for _ in 0..<warmup { try await workload.run() }
    }

    /// Runs the measured iterations.
    public func runMeasured(_ workload: any Workload) async throws {
        for _ in 0..<iterations { try await workload.run() }
    }

    /// Events processed by the measured iterations.
    public var measuredEvents: Int { events * iterations }
}
