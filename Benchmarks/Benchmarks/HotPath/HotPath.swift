import Benchmark
import Foundation
import HotPathWorkloads

/// DeltaKit's hot-path micro-benchmarks for `swift package benchmark` (ordo-one/benchmark): each iteration
/// processes one batch of 1,000 events (the scaling factor), so the scaled figures (`*`) are per event. Run from
/// Benchmarks/: `swift package --disable-sandbox benchmark --target HotPath`. Instructions appear where the machine
/// lets ordo-one read the CPU's counters (perf events); CPU time is left out, its 10 ms resolution being longer
/// than an iteration. The repeatable counts that CI checks come from HotPathCounts (callgrind) and HotPathMallocs
/// (the same malloc-interposer) on the same workloads: scripts/check-benchmarks.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        timeUnits: .nanoseconds,
        warmupIterations: 2,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 2_000
    )
    for name in Workloads.names {
        Benchmark(
            name,
            closure: { (benchmark: Benchmark, workload: any Workload) async throws in
                try workload.prepare(iterations: 1)
                benchmark.startMeasurement()
                try await workload.run()
                benchmark.stopMeasurement()
                blackHole(workload.checksum)
            },
            setup: {
                try Workloads.make(
                    name,
                    events: Benchmark.defaultConfiguration.scalingFactor.rawValue,
                    keys: 1_000,
                    directory: NSTemporaryDirectory()
                )
            }
        )
    }
}
