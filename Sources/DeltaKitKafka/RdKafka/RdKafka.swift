// The only folder that imports librdkafka. Nothing here is public; no C type leaves this folder.
import CDeltaKitRdKafka
import DeltaKit
import Foundation
import Logging
import Synchronization

/// Facts about the librdkafka library in use.
package enum RdKafka {
    /// `rd_kafka_version_str()` of the library loaded at run time.
    package static var versionString: String { String(cString: rd_kafka_version_str()) }
    /// `rd_kafka_version()` of the library loaded at run time (e.g. `0x020002ff` for 2.0.2).
    package static var version: Int { Int(rd_kafka_version()) }
    /// `RD_KAFKA_VERSION` of the headers DeltaKit was built against.
    package static var headerVersion: Int { Int(RD_KAFKA_VERSION) }

    static func error(_ err: rd_kafka_resp_err_t, message: String? = nil, fatal: Bool = false) -> KafkaError {
        KafkaError(
            code: KafkaError.Code(rawValue: err.rawValue),
            name: String(cString: rd_kafka_err2name(err)),
            message: message ?? String(cString: rd_kafka_err2str(err)),
            isFatal: fatal
        )
    }

    /// librdkafka's error for `code`, with librdkafka's name and, unless `message` is given, its text.
    static func error(_ code: KafkaError.Code, message: String? = nil) -> KafkaError {
        error(rd_kafka_resp_err_t(rawValue: code.rawValue), message: message)
    }
}

/// A topic partition.
package struct PartitionID: Hashable, Sendable, CustomStringConvertible {
    package var topic: String
    package var partition: Int32
    package init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    package var description: String { "\(topic)[\(partition)]" }
}

/// The text librdkafka wrote into an error buffer.
func errorText(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
