import ArgumentParser
import Foundation
import HotPathDriver
import HotPathWorkloads
import MallocInterposerSwift

#if canImport(Glibc)
import Glibc
#endif

/// The micro-benchmarks' allocations per event, counted by ordo-one's malloc-interposer (the library
/// ordo-one/benchmark counts with) over a fixed number of iterations of a fixed input.
@main
struct HotPathMallocs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "HotPathMallocs",
        abstract: "Count the allocations of the measured iterations (malloc-interposer); prints mallocs/event.",
        discussion: """
            Prints `mallocs_per_event mallocs events`. The interposer counts every thread (a store's writer \
            thread too). Without LD_PRELOAD of libMallocInterposerSwift.so the command runs itself again with it \
            (the library is built next to this executable).
            """
    )
    @OptionGroup var options: WorkloadOptions

    func run() async throws {
        try Interposer.ensureLoaded()
        let workload = try options.prepared()
        try await options.runWarmup(workload)
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        try await options.runMeasured(workload)
        MallocInterposerSwift.unhook()
        let mallocs = Int(MallocInterposerSwift.getStatistics().mallocCount)
        let perEvent = Double(mallocs) / Double(options.measuredEvents)
        print(String(format: "%.3f %d %d", perEvent, mallocs, options.measuredEvents))
        _ = workload.checksum
    }
}

/// The malloc interposer counts only when its library is preloaded (Linux) before `main`.
enum Interposer {
    struct NotLoaded: Error, CustomStringConvertible {
        var description: String
    }

    /// Whether allocations made now are counted: reading the environment into a dictionary allocates, in a
    /// library the optimizer cannot see into (an unused `malloc`, even a `strdup`, it may remove).
    static var isCounting: Bool {
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        let environment = ProcessInfo.processInfo.environment
        MallocInterposerSwift.unhook()
        let counted = MallocInterposerSwift.getStatistics().mallocCount > 0 && !environment.isEmpty
        MallocInterposerSwift.initialize()
        return counted
    }

    /// Returns when allocations are counted; otherwise runs this process again with the interposer preloaded (the
    /// library next to the executable), or throws when that was already tried.
    static func ensureLoaded() throws {
        if isCounting { return }
        #if os(Linux)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let library = URL(fileURLWithPath: executable).deletingLastPathComponent()
            .appendingPathComponent("libMallocInterposerSwift.so").path
        guard ProcessInfo.processInfo.environment["LD_PRELOAD"]?.contains(library) != true,
            FileManager.default.fileExists(atPath: library)
        else {
            throw NotLoaded(description: "the malloc interposer does not count (LD_PRELOAD=\(library))")
        }
        setenv("LD_PRELOAD", library, 1)
        execv(executable, CommandLine.unsafeArgv)
        throw NotLoaded(description: "could not run \(executable) again with LD_PRELOAD: errno \(errno)")
        #else
        throw NotLoaded(description: "the malloc interposer does not count: run with DYLD_INSERT_LIBRARIES")
        #endif
    }
}
