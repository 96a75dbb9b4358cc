/// Control of librdkafka's in-process mock cluster (`test.mock.num.brokers`), for fault-injection tests.
package struct KafkaMockCluster: Sendable {
    let handle: RdKafkaHandle

    /// Bootstrap servers of the mock cluster (other clients can connect to it).
    package var bootstrapServers: String { handle.mockBootstrapServers ?? "" }
    /// Takes broker `id` (1-based) down or brings it back.
    package func setBroker(_ id: Int32, up: Bool) { handle.mockSetBroker(id, up: up) }
    /// Fails the next `count` Produce requests with the broker error `errorCode`.
    package func failProduceRequests(count: Int, errorCode: Int32) {
        handle.mockFailProduceRequests(count: count, errorCode: errorCode)
    }
    /// Makes broker `broker` the leader of `topic[partition]`.
    package func setLeader(topic: String, partition: Int32, broker: Int32) {
        handle.mockSetLeader(topic: topic, partition: partition, broker: broker)
    }
    /// Delays every response of broker `id` by `milliseconds` (its round-trip time).
    package func setRoundTripTime(broker id: Int32, milliseconds: Int32) {
        handle.mockSetRoundTripTime(broker: id, milliseconds: milliseconds)
    }
    /// Creates a topic on the mock cluster.
    package func createTopic(_ name: String, partitions: Int32) { handle.mockCreateTopic(name, partitions: partitions) }
}

extension KafkaEventSink {
    /// The mock cluster this sink runs, when configured with `test.mock.num.brokers`.
    package var mockCluster: KafkaMockCluster? {
        core.handle.mockBootstrapServers == nil ? nil : KafkaMockCluster(handle: core.handle)
    }
}
