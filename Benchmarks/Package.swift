// swift-tools-version:6.1
//===----------------------------------------------------------------------===//
// DeltaKit's benchmarks — a package of their own, so the root manifest lists only what the library and its
// example need (as swift-nio does). Driven by Benchmarks/run and scripts/check-benchmarks.
//===----------------------------------------------------------------------===//

import PackageDescription

let package = Package(
    name: "DeltaKitBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "DeltaKit", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        // MARK: The micro-benchmarks: workloads through DeltaKit's public API, run by ordo-one/benchmark (HotPath:
        // `swift package --disable-sandbox benchmark`) and by the counting runners (HotPathCounts under callgrind,
        // HotPathMallocs with the malloc interposer) for scripts/check-benchmarks.
        .target(
            name: "HotPathWorkloads",
            dependencies: [
                .product(name: "DeltaKit", package: "DeltaKit"),
                .product(name: "DeltaKitSQLite", package: "DeltaKit"),
            ]
        ),
        .executableTarget(
            name: "HotPath",
            dependencies: [
                "HotPathWorkloads",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/HotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .target(
            name: "HotPathDriver",
            dependencies: ["HotPathWorkloads", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Instructions: run under callgrind, so without the malloc interposer (valgrind replaces malloc itself).
        .executableTarget(
            name: "HotPathCounts",
            dependencies: [
                "HotPathDriver", "HotPathWorkloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Mallocs: the interposer preloaded (the executable runs itself again with it).
        .executableTarget(
            name: "HotPathMallocs",
            dependencies: [
                "HotPathDriver", "HotPathWorkloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ]
        ),

        // MARK: End to end, against Tansu and PostgreSQL (driven by Benchmarks/run)
        .executableTarget(
            name: "DeltaKitBenchmarks",
            dependencies: [
                .product(name: "DeltaKit", package: "DeltaKit"),
                .product(name: "DeltaKitKafka", package: "DeltaKit"),
                .product(name: "DeltaKitRisingWave", package: "DeltaKit"),
                .product(name: "DeltaKitSQLite", package: "DeltaKit"),
                .product(name: "DeltaKitTesting", package: "DeltaKit"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        // MARK: The HTTP API's goals (issue 22, driven by Benchmarks/run): resume, fan-out (a NIO load client and the
        // served store in a process of its own), and Hummingbird's plain-text route, the floor of the reads goal.
        .executableTarget(
            name: "HTTPBenchmarks",
            dependencies: [
                .product(name: "DeltaKit", package: "DeltaKit"),
                .product(name: "DeltaKitHTTP", package: "DeltaKit"),
                .product(name: "DeltaKitSQLite", package: "DeltaKit"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ]
)

// MARK: Settings for every Swift target (as in the root package)
for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    target.swiftSettings = settings
}
