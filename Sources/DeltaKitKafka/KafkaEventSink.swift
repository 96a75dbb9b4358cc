public import DeltaKit
public import Logging
public import Metrics
public import ServiceLifecycle

/// An `EventSink` that publishes change events to a Kafka topic with librdkafka.
///
/// - Each message is keyed by the record key (`keyBytes`), so per-key order holds on
///   any number of partitions; the value is the event's wire JSON.
/// - `send` returns once the broker acknowledged the event. A batch keeps many messages in flight.
///   When librdkafka's local queue is full the caller is suspended, never failed and never dropped.
/// - The first failed delivery stops the sink: that send throws `deliveryFailed`
///   with the librdkafka error, and every later call throws `closed`. Nothing is
///   silently skipped; recreate the sink and resend from the last acknowledged event.
/// - One dedicated thread polls librdkafka; no thread of Swift's cooperative pool ever blocks.
/// - As a swift-service-lifecycle `Service`, graceful shutdown waits for every outstanding delivery.
///
/// ```swift
/// let sink = try await KafkaEventSink<User>(configuration: .init(
///     kafka: .init(bootstrapServers: ["localhost:9092"]), topic: "user-events"))
/// try await sink.send(.insert(User(id: 1, name: "Alice", age: 25), order: clock.next()))
/// try await sink.close()
/// ```
public final class KafkaEventSink<Record: ChangeRecord>: EventSink, EncodedEventSending, Service {
    /// The topic events go to.
    public let topic: String
    let core: SinkCore
    /// ``Configuration/sendsTombstones``.
    private let sendsTombstones: Bool

    /// Creates the producer, checks that a broker answers, creates the topic if asked to, and starts polling.
    ///
    /// - Throws: `DeltaKitError` — `invalidConfiguration` with
    ///   librdkafka's own message for an unknown or invalid property, or
    ///   `connectionFailed` naming the servers when no broker answers within
    ///   ``KafkaConfiguration/connectTimeout``.
    ///
    /// - Parameters:
    ///   - configuration: Producer settings.
    ///   - logger: Receives librdkafka's logs and the sink's own. Default: a logger labelled `deltakit.kafka.sink`.
    ///   - metricsFactory: Where the sink's metrics go. Default: `MetricsSystem.factory` (the bootstrapped backend).
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "deltakit.kafka.sink"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) async throws {
        let handle = try RdKafkaHandle.client(.producer, configuration, logger: logger)
        let topic = configuration.topic
        let core = SinkCore(
            handle: handle,
            topic: topic,
            wording: .init(
                name: "the Kafka sink for '\(topic)'",
                message: "event",
                recovery: "create a new sink and resend from the last acknowledged event"
            ),
            shutdownTimeout: configuration.shutdownTimeout,
            logger: logger,
            metrics: SinkMetrics(topic: topic, factory: metricsFactory),
            threadName: "deltakit-kafka-producer"
        )
        let timeout = configuration.kafka.connectTimeout.int32Milliseconds(minimum: 100)
        do {
            _ = try await BlockingCalls.run {
                try handle.clusterMetadata(timeoutMs: timeout)
            }
        } catch let error as KafkaError {
            await core.shutdown()
            throw DeltaKitError.kafkaUnreachable(configuration.kafka, error, callbacks: handle.callbacks)
        }
        if let settings = configuration.createTopic {
            do {
                try await KafkaTopicAdmin(handle: handle, configuration: configuration.kafka).ensureTopic(
                    topic,
                    partitions: settings.partitions,
                    replicationFactor: settings.replicationFactor,
                    config: settings.config
                )
            } catch {
                await core.shutdown()
                throw error
            }
        }
        do {
            // Learn the topic's partitions and leaders now, not on the first send.
            try await BlockingCalls.run {
                _ = try handle.warmUp(topic: topic, timeoutMs: timeout)
            }
        } catch let error as KafkaError {
            logger.debug("metadata for '\(topic)' not available yet: \(error)")
        }
        self.topic = topic
        self.sendsTombstones = configuration.sendsTombstones
        self.core = core
        logger.debug(
            "Kafka sink ready",
            metadata: [
                KafkaTelemetry.Key.topic: "\(topic)",
                KafkaTelemetry.Key.servers: "\(configuration.kafka.serversDescription)",
                KafkaTelemetry.Key.librdkafkaVersion: "\(RdKafka.versionString)",
            ]
        )
    }

    deinit { core.abandon() }

    /// Sends one event and returns once the broker acknowledged it, with its partition and offset.
    @discardableResult
    public func send(_ event: ChangeEvent<Record>) async throws -> EventReceipt {
        try await send(contentsOf: [event])
    }

    /// Sends the events in order, keeping many in flight, and returns once all are acknowledged.
    ///
    /// If one fails, the events enqueued before it are still awaited, the rest are not sent, and the call
    /// throws `deliveryFailed`.
    ///
    /// - Returns: Per partition, the highest offset acknowledged for these events.
    ///
    /// When a trace context is current (a span is active), every message carries its propagation headers, as the
    /// bootstrapped instrument writes them (`traceparent` for a W3C tracer); without one no header is added.
    @discardableResult
    public func send(contentsOf events: [ChangeEvent<Record>]) async throws -> EventReceipt {
        try core.checkOpen()
        // One writer for the whole send: the record's layout is looked up once, the writer allocated once.
        let writer = WireEventWriter(layout: try WireLayout.of(Record.self))
        let tombstones = sendsTombstones
        // Once per send, not per event: without a current context this is one task-local read.
        let trace = TraceHeaders.current()
        return try await core.send(count: events.count) { index, messages in
            try messages.append(events[index], writer: writer, tombstone: tombstones, trace: trace)
        }
    }

    /// Sends `events` in order, each with its own trace headers (`traceHeaders[i]` with `events[i]`): the outbox
    /// relay's send, which forwards the context each row was written in.
    package func send(
        contentsOf events: [ChangeEvent<Record>],
        traceHeaders: [[TraceHeader]]
    ) async throws -> EventReceipt {
        try core.checkOpen()
        let writer = WireEventWriter(layout: try WireLayout.of(Record.self))
        let tombstones = sendsTombstones
        // Immediate, as the relay's sends are: it waits for nothing but the batch's acknowledgements.
        return try await core.send(count: events.count, immediate: true) { index, messages in
            try messages.append(
                events[index],
                writer: writer,
                tombstone: tombstones,
                trace: index < traceHeaders.count ? traceHeaders[index] : []
            )
        }
    }

    /// Sends `events` in order: each event to encode with its own trace headers, as
    /// `send(contentsOf:traceHeaders:)` does, and each event already encoded as it is (its key, its JSON, its trace
    /// headers, a delete's tombstone): the outbox relay's send, which forwards the payloads DeltaKit's enqueue wrote.
    package func send(_ events: [OutgoingEvent<Record>]) async throws -> EventReceipt {
        try core.checkOpen()
        let writer = WireEventWriter(layout: try WireLayout.of(Record.self))
        let tombstones = sendsTombstones
        let headers = tombstoneHeaders
        // Immediate: the relay waits for the batch's acknowledgements before anything else (it deletes the rows
        // then), so lingering after its last message would only delay it (and every row committed meanwhile).
        return try await core.send(count: events.count, immediate: true) { index, messages in
            switch events[index] {
            case .event(let event, let trace):
                try messages.append(event, writer: writer, tombstone: tombstones, trace: trace)
            case .encoded(let encoded):
                messages.append(encoded, tombstoneHeaders: headers)
            }
        }
    }

    /// Sends `events`, all already encoded, in order, as ``send(_:)`` sends them.
    package func send(encoded events: [EncodedEvent]) async throws -> EventReceipt {
        try core.checkOpen()
        let headers = tombstoneHeaders
        return try await core.send(count: events.count, immediate: true) { index, messages in
            messages.append(events[index], tombstoneHeaders: headers)
        }
    }

    /// The names of a tombstone's order and timestamp headers when this sink sends tombstones, `nil` otherwise.
    private var tombstoneHeaders: (order: String, timestamp: String)? {
        sendsTombstones ? (Configuration.tombstoneOrderHeader, Configuration.tombstoneTimestampHeader) : nil
    }

    /// How often a sender waited because librdkafka's queue was full (``Configuration/queueMaxMessages``).
    package var queueFullWaits: Int { core.queueFullWaits }
    /// How many ``flush()`` calls have determined which sends they wait for (for tests).
    package var flushesStarted: Int { core.flushesStarted }

    /// Returns once every event sent before the call is acknowledged.
    ///
    /// Batches waiting for ``Configuration/linger`` are sent at once rather than when it ends; a batch sent after
    /// `flush()` returned waits for it again.
    ///
    /// - Throws: the sink's failure if an event could not be delivered.
    public func flush() async throws {
        await core.waitForSendsInProgress()
        if let failure = core.failure { throw failure }
    }

    /// Stops accepting events, waits up to ``Configuration/shutdownTimeout`` for outstanding deliveries,
    /// purges (and reports as failed) any still pending after that, and stops the poll thread. Batches waiting for
    /// ``Configuration/linger`` are sent at once rather than when it ends.
    ///
    /// - Throws: `deliveryFailed` when events had to be purged.
    public func close() async throws {
        try await core.close()
    }

    /// Runs until graceful shutdown (or cancellation), then ``close()``s: nothing in flight is lost on SIGTERM.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }
}
