import DeltaKit
import DeltaKitKafka
import DeltaKitTesting
import Foundation
import Logging

/// Helpers shared by the Kafka integration tests.
enum KafkaTestSupport {
    static func kafka(_ brokers: String) -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: [brokers], connectTimeout: .seconds(15))
    }

    /// A sink on a fresh topic with 4 partitions (Tansu's auto-create default, made explicit).
    static func makeSink(_ brokers: String, topic: String = TestEnvironment.uniqueTopic(), partitions: Int = 4)
        async throws
        -> KafkaEventSink<DemoUser>
    {
        try await KafkaEventSink<DemoUser>(
            configuration: .init(
                kafka: kafka(brokers),
                topic: topic,
                createTopic: .init(partitions: partitions)
            )
        )
    }

    /// The reference state of `events`.
    static func reference(_ events: [ChangeEvent<DemoUser>]) -> [DemoUser] {
        var state = LatestState<DemoUser>()
        for e in events { state.apply(e) }
        return state.snapshot()
    }

    /// Produces raw message values (valid or not) to `topic` with Python's confluent-kafka — a producer that
    /// does not apply DeltaKit's rules — and waits for every acknowledgement.
    static func produceRawViaPython(_ brokers: String, topic: String, values: [[UInt8]]) throws {
        let script = #"""
            import base64, json, sys
            from confluent_kafka import Producer
            brokers, topic = sys.argv[1], sys.argv[2]
            values = [base64.b64decode(v) for v in json.load(sys.stdin)]
            p = Producer({"bootstrap.servers": brokers, "acks": "all"})
            failed = []
            for v in values:
                p.produce(topic, value=v, on_delivery=lambda err, msg: failed.append(err) if err else None)
            if p.flush(30) != 0 or failed:
                raise SystemExit("not acknowledged: %r" % failed)
            """#
        let input = try JSONEncoder().encode(values.map { Data($0).base64EncodedString() })
        _ = try runPython(script, [brokers, topic], input: input)
    }

    static func runPython(_ script: String, _ arguments: [String], input: Data? = nil) throws -> Data {
        let python = ProcessInfo.processInfo.environment["DELTAKIT_PYTHON"] ?? "python3"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python.hasPrefix("/") ? python : "/usr/bin/env")
        process.arguments = (python.hasPrefix("/") ? [] : [python]) + ["-c", script] + arguments
        let output = Pipe()
        process.standardOutput = output
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DeltaKitError(code: .rejected, message: "python helper exited with \(process.terminationStatus)")
        }
        return data
    }

    /// Produces one message with `key`, a null value (a tombstone) and `headers`, with Python's confluent-kafka.
    static func produceTombstoneViaPython(
        _ brokers: String,
        topic: String,
        key: String,
        headers: [String: String]
    ) throws {
        let script = #"""
            import json, sys
            from confluent_kafka import Producer
            brokers, topic, key, headers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
            p = Producer({"bootstrap.servers": brokers, "acks": "all"})
            failed = []
            p.produce(topic, key=key, value=None, headers=list(headers.items()),
                      on_delivery=lambda err, msg: failed.append(err) if err else None)
            if p.flush(30) != 0 or failed:
                raise SystemExit("not acknowledged: %r" % failed)
            """#
        let headerJSON = String(decoding: try JSONEncoder().encode(headers), as: UTF8.self)
        _ = try runPython(script, [brokers, topic, key, headerJSON])
    }

    /// Raw `(key, value)` pairs of a topic (with `partition` and `headers` as JSON), read by Python's
    /// confluent-kafka — an independent reader. A null value is `nil`.
    static func rawMessagesViaPython(_ brokers: String, topic: String) throws -> [[String: String?]] {
        let script = #"""
            import json, sys
            from confluent_kafka import Consumer, TopicPartition, KafkaError
            brokers, topic = sys.argv[1], sys.argv[2]
            c = Consumer({"bootstrap.servers": brokers, "group.id": "raw-reader", "enable.partition.eof": True, "enable.auto.commit": False})
            md = c.list_topics(topic, timeout=15)
            parts = sorted(md.topics[topic].partitions)
            c.assign([TopicPartition(topic, p, -2) for p in parts])
            eof, out = set(), []
            while len(eof) < len(parts):
                m = c.poll(1.0)
                if m is None: continue
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF: eof.add(m.partition()); continue
                    raise Exception(m.error())
                eof.discard(m.partition())
                out.append({"key": m.key().decode() if m.key() is not None else None,
                            "value": m.value().decode() if m.value() is not None else None,
                            "partition": str(m.partition()),
                            "headers": json.dumps({k: v.decode() for k, v in (m.headers() or [])}, sort_keys=True)})
            c.close()
            print(json.dumps(out))
            """#
        return try JSONDecoder().decode([[String: String?]].self, from: runPython(script, [brokers, topic]))
    }
}
