import ArgumentParser
import DeltaKit
import DeltaKitHTTP
import DeltaKitKafka
import DeltaKitRisingWave
import DeltaKitSQLite
import Foundation
import Logging
import ServiceLifecycle

/// Serves the latest state over HTTP: the DeltaKitHTTP API, its OpenAPI document and the dashboard page.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the latest state over HTTP: a JSON API, a live change stream and a dashboard page.",
        discussion: """
            Read-only. Routes: GET / (the dashboard), /openapi.json, /v1/tables, /v1/tables/users/rows, \
            /v1/tables/users/rows/{id}, /v1/tables/users/changes (Server-Sent Events). With --state the file is \
            followed while `materialize --state FILE` writes it; with --brokers the topic is materialized in \
            memory first; with --risingwave the view is read. Listens on loopback unless --host says otherwise. \
            SIGINT/SIGTERM stop accepting connections, end the change streams and let requests in flight finish.
            """
    )
    @OptionGroup var source: SourceOptions
    @Option(help: "The address to listen on (default: loopback only).")
    var host = "127.0.0.1"
    @Option(parsing: .unconditional, help: "The port to listen on (0…65535; 0 picks a free one).")
    var port = 8080
    @Option(
        parsing: .unconditional,
        help: "Seconds a read with ?visibleAfter=RECEIPT waits for the receipt before answering 503 (1…300)."
    )
    var visibilityTimeout = 10
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0…65535, got \(port)") }
        guard (1...300).contains(visibilityTimeout) else {
            throw ValidationError("--visibility-timeout must be 1…300 seconds, got \(visibilityTimeout)")
        }
        guard !host.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("--host must be an address, e.g. 127.0.0.1")
        }
    }

    func run() async throws {
        logging.bootstrap()
        try await reportingErrors {
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            var heldFeed: SQLiteChangeFeed<DemoUser>?
            let table: ServedTable
            if source.risingwave != nil {
                let store = try await source.risingWaveStore()
                table = ServedTable(
                    "users",
                    store: store,
                    waitUntilVisible: { receipt, timeout in try await store.waitUntilVisible(receipt, timeout: timeout)
                    }
                )
            } else if source.state != nil {
                let store = try source.stateStore()
                // The file records changes only while a feed of it is open, in any process; the server holds one
                // (never read, so it costs no polling) for as long as it runs, so that a client that reconnects with
                // Last-Event-ID resumes without a gap even when no other client was connected meanwhile.
                heldFeed = try await store.changes(from: .now)
                table = ServedTable(
                    "users",
                    store: store,
                    waitUntilVisible: { receipt, timeout in
                        try await Self.waitForPositions(of: store, receipt, timeout: timeout)
                    }
                )
            } else {
                let store = try InMemoryStateStore<DemoUser>(historyLimit: 0)
                let materializer = try await KafkaMaterializer(
                    configuration: .init(kafka: source.kafka, topic: source.topic),
                    store: store,
                    onMalformed: { message in printError("skipped \(message)") },
                    onSourceEvent: { event in
                        if case .recovered = event { printError("\(event)") } else { printError("warning: \(event)") }
                    }
                )
                services.append(.init(service: materializer, successTerminationBehavior: .gracefullyShutdownGroup))
                table = ServedTable(
                    "users",
                    store: store,
                    waitUntilVisible: { receipt, timeout in
                        try await materializer.waitUntilVisible(receipt, timeout: timeout)
                    }
                )
            }
            let server = try StateServer(
                tables: [table],
                configuration: .init(visibilityTimeout: .seconds(visibilityTimeout))
            )
            var logger = Logger(label: "UserEvents.serve")
            logger.logLevel = logging.verbose ? .info : .warning
            let host = host
            let app = server.application(host: host, port: port, logger: logger) { port in
                printError("serving http://\(host):\(port)/ (Ctrl-C stops)")
            }
            services.append(.init(service: app, successTerminationBehavior: .gracefullyShutdownGroup))
            let signal = try await runUntilInterrupted(services)
            withExtendedLifetime(heldFeed) {}
            if let signal { throw ExitCode(interruptedBy: signal) }
        }
    }

    /// Read-your-writes over a state file another process writes: the file records the next offset to read per
    /// partition with every batch, so an event at `offset` is in the file once the partition's position is past it.
    static func waitForPositions(
        of store: SQLiteStateStore<DemoUser>,
        _ receipt: EventReceipt,
        timeout: Duration
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let positions = try await store.positions()
            let behind = receipt.offsets.filter { partition, offset in (positions[partition] ?? 0) <= offset }
            if behind.isEmpty { return }
            guard clock.now < deadline else {
                throw DeltaKitError(
                    code: .timedOut,
                    message: "the state file has not applied \(EventReceipt(offsets: behind)) within \(timeout)"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
