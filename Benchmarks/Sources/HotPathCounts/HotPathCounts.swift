import ArgumentParser
import Foundation
import HotPathDriver
import HotPathWorkloads

#if canImport(Glibc)
import Glibc
#endif

/// The micro-benchmarks run a fixed number of times on a fixed input, so that two runs execute the same
/// instructions: `run` under callgrind for scripts/check-benchmarks and Benchmarks/run (HotPathMallocs counts the
/// allocations; `swift package benchmark`, the HotPath target, runs the same workloads with ordo-one's statistics).
/// This executable does not link the malloc interposer: valgrind cannot run a process whose `malloc` it replaces.
struct HotPathCounts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "HotPathCounts",
        abstract: "Run DeltaKit's hot-path micro-benchmarks a fixed number of times, for counting.",
        subcommands: [List.self, Run.self, Time.self]
    )
}

/// The entry point: the command runs on a detached task while the main thread waits, then the process exits.
/// Valgrind 3.19 (Debian 12's) crashes when an async `main` parks the main thread in `dispatch_main()`'s
/// `sigsuspend`; a main thread that waits on a semaphore and calls `exit` avoids that path.
@main
enum Entry {
    static func main() {
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await HotPathCounts.main()
            done.signal()
        }
        done.wait()
        exit(0)
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the workloads and what each measures.")

    func run() {
        for (name, description) in Workloads.descriptions { print("\(name)\t\(description)") }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prepare, warm up, run the measured iterations (for callgrind); prints the checksum.",
        discussion: """
            Instructions per event = (Ir of a run − Ir of the same run with --baseline) / (events × iterations): \
            the baseline prepares the same input and runs the same warm-up, so the difference is exactly the \
            measured iterations.
            """
    )
    @OptionGroup var options: WorkloadOptions
    @Flag(help: "Prepare and warm up as usual, then skip the measured iterations.") var baseline = false

    func run() async throws {
        let workload = try options.prepared()
        try await options.runWarmup(workload)
        if !baseline { try await options.runMeasured(workload) }
        print(workload.checksum)
    }
}

struct Time: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the measured iterations: prints `cpu_ns_per_event wall_ns_per_event` (noisy; not checked)."
    )
    @OptionGroup var options: WorkloadOptions

    func run() async throws {
        let workload = try options.prepared()
        try await options.runWarmup(workload)
        let cpu = processCPUSeconds()
        let clock = ContinuousClock()
        let start = clock.now
        try await options.runMeasured(workload)
        let wall = clock.now - start
        let usedCPU = processCPUSeconds() - cpu
        let wallSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        let events = Double(options.measuredEvents)
        print(String(format: "%.1f %.1f", usedCPU * 1e9 / events, wallSeconds * 1e9 / events))
        _ = workload.checksum
    }

    /// CPU seconds (user + system, every thread) used by this process so far.
    func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }
}
