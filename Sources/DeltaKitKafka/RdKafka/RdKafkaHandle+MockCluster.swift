// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

extension RdKafkaHandle {
    // MARK: Mock cluster (librdkafka's in-process test broker, `test.mock.num.brokers`)

    /// Bootstrap servers of the mock cluster, when this client runs one.
    var mockBootstrapServers: String? {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return nil }
        return String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    func mockSetBroker(_ id: Int32, up: Bool) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        _ = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
    }

    /// Makes the next `count` Produce requests fail with `errorCode` (e.g. `NOT_LEADER_FOR_PARTITION` = 6).
    func mockFailProduceRequests(count: Int, errorCode: Int32) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        var errors = [rd_kafka_resp_err_t](repeating: rd_kafka_resp_err_t(rawValue: errorCode), count: count)
        rd_kafka_mock_push_request_errors_array(cluster, 0, count, &errors)  // ApiKey 0 = Produce
    }

    func mockSetRoundTripTime(broker: Int32, milliseconds: Int32) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        _ = rd_kafka_mock_broker_set_rtt(cluster, broker, milliseconds)
    }

    func mockSetLeader(topic: String, partition: Int32, broker: Int32) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        _ = rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker)
    }

    func mockCreateTopic(_ name: String, partitions: Int32) {
        guard let cluster = rd_kafka_handle_mock_cluster(pointer) else { return }
        _ = rd_kafka_mock_topic_create(cluster, name, partitions, 1)
    }
}
