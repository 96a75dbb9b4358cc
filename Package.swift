// swift-tools-version:6.1
//===----------------------------------------------------------------------===//
// DeltaKit — delta writing for server-side Swift.
//===----------------------------------------------------------------------===//

import PackageDescription

let package = Package(
    name: "DeltaKit",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "DeltaKit", targets: ["DeltaKit"]),
        .library(name: "DeltaKitKafka", targets: ["DeltaKitKafka"]),
        .library(name: "DeltaKitRisingWave", targets: ["DeltaKitRisingWave"]),
        .library(name: "DeltaKitSQLite", targets: ["DeltaKitSQLite"]),
        .library(name: "DeltaKitOutbox", targets: ["DeltaKitOutbox"]),
        .library(name: "DeltaKitOutboxPostgresNIO", targets: ["DeltaKitOutboxPostgresNIO"]),
        .library(name: "DeltaKitTesting", targets: ["DeltaKitTesting"]),
        .library(name: "DeltaKitHTTP", targets: ["DeltaKitHTTP"]),
        .executable(name: "UserEvents", targets: ["UserEvents"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
    ],
    targets: [
        // MARK: Core (Foundation, and swift-distributed-tracing's Instrumentation for ServiceContext)
        .target(
            name: "DeltaKit",
            // Instrumentation only (ServiceContext, the instrument's inject/extract): a change feed element carries
            // the trace context of the event that caused it.
            dependencies: [.product(name: "Instrumentation", package: "swift-distributed-tracing")]
        ),

        // MARK: C system libraries — each imported by exactly one folder of its backend
        .systemLibrary(
            name: "CDeltaKitRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"]), .brew(["librdkafka"])]
        ),
        .systemLibrary(
            name: "CDeltaKitLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),

        // MARK: Backends
        .target(
            name: "DeltaKitKafka",
            dependencies: [
                .target(name: "DeltaKit"),
                .target(name: "CDeltaKitRdKafka"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "DeltaKitRisingWave",
            dependencies: [
                .target(name: "DeltaKit"),
                .target(name: "CDeltaKitLibPQ"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // The durable embedded table: latest state in a SQLite file (through GRDB, which links the system
        // SQLite: Debian's libsqlite3-dev).
        .target(
            name: "DeltaKitSQLite",
            dependencies: [
                .target(name: "DeltaKit"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The transactional outbox in PostgreSQL and its relay. Its own target so that RisingWave users do not get
        // swift-service-lifecycle; it reads PostgreSQL through DeltaKitRisingWave's libpq client (package API), so
        // libpq stays bound in one folder and the package has one PostgreSQL client, not two.
        .target(
            name: "DeltaKitOutbox",
            dependencies: [
                .target(name: "DeltaKit"),
                .target(name: "DeltaKitRisingWave"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),

        // Enqueue through postgres-nio, the driver Vapor and Hummingbird apps already hold a transaction on. Its own
        // target so that apps on another driver do not build postgres-nio.
        .target(
            name: "DeltaKitOutboxPostgresNIO",
            dependencies: [
                .target(name: "DeltaKit"),
                .target(name: "DeltaKitOutbox"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),

        // MARK: HTTP — serves any StateStore and its change feed; the core never depends on it
        .target(
            name: "DeltaKitHTTP",
            dependencies: [
                .target(name: "DeltaKit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/openapi.json"), .copy("Resources/dashboard.html")]
        ),

        // MARK: Test support
        .target(
            name: "DeltaKitTesting",
            dependencies: [
                .target(name: "DeltaKit"),
                // OutboxConformance's trace-context check binds an InMemoryTracer with withTracer.
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),

        // MARK: Example
        .executableTarget(
            name: "UserEvents",
            dependencies: [
                .target(name: "DeltaKit"),
                .target(name: "DeltaKitKafka"),
                .target(name: "DeltaKitOutbox"),
                .target(name: "DeltaKitRisingWave"),
                .target(name: "DeltaKitSQLite"),
                .target(name: "DeltaKitHTTP"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Examples/UserEvents"
        ),

        // MARK: Tests
        .testTarget(name: "DeltaKitTests", dependencies: ["DeltaKit", "DeltaKitTesting"]),
        .testTarget(name: "DeltaKitTestingTests", dependencies: ["DeltaKit", "DeltaKitTesting"]),
        .testTarget(
            name: "DeltaKitKafkaTests",
            dependencies: [
                "DeltaKit", "DeltaKitKafka", "DeltaKitTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
        .testTarget(
            name: "DeltaKitRisingWaveTests",
            dependencies: ["DeltaKit", "DeltaKitRisingWave", "DeltaKitTesting"]
        ),
        .testTarget(
            name: "DeltaKitHTTPTests",
            dependencies: [
                "DeltaKit", "DeltaKitHTTP", "DeltaKitSQLite", "DeltaKitTesting", "HTTPTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // A Server-Sent Events client for the HTTP tests and the integration tests (not a product).
        .target(
            name: "HTTPTestSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/HTTPTestSupport"
        ),
        .testTarget(
            name: "DeltaKitSQLiteTests",
            dependencies: [
                "DeltaKit", "DeltaKitSQLite", "DeltaKitTesting",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "DeltaKit", "DeltaKitKafka", "DeltaKitOutbox", "DeltaKitOutboxPostgresNIO", "DeltaKitRisingWave",
                "DeltaKitSQLite", "DeltaKitTesting", "DeltaKitHTTP", "HTTPTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
    ]
)

// MARK: Settings for every Swift target
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    target.swiftSettings = settings
}
