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
