/// Kafka's topic-name rules, shared by every configuration that names a topic (the Kafka sink, source, dead
/// letters and topic admin, and the RisingWave pipeline), so that a name Kafka refuses is refused when the
/// configuration is checked, before anything reaches a broker or a database.
package enum KafkaTopicName {
    /// Checks `name` against Kafka's rule: 1–249 characters of `a–z`, `A–Z`, `0–9`, `.`, `_`, `-`, and neither `.`
    /// nor `..`.
    ///
    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming the topic and the rule.
    package static func validate(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F
                || c == 0x2D
        }
        guard !name.isEmpty, name.utf8.count <= 249, allowed, name != ".", name != ".." else {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message:
                    "invalid Kafka topic name '\(name)': use 1–249 letters, digits, '.', '_' or '-' (and not '.' or '..')"
            )
        }
    }
}
