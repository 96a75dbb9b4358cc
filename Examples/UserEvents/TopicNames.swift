import DeltaKit
import DeltaKitKafka
import DeltaKitRisingWave
import Foundation

extension RisingWavePipeline where Record == DemoUser {
    /// The CLI's objects for a topic, named after it so that two topics never share them: the source is
    /// `<stem>_events` and the view `latest_<stem>_state`, where the stem is the topic with `-` written `_`
    /// (`orders` gives `orders_events` and `latest_orders_state`). The demo's topic `user-events` keeps the
    /// original demo's names, `user_events` and `latest_user_state`.
    ///
    /// The mapping is one-to-one: it takes topics of lower-case letters and digits in words joined by single `-`,
    /// starting with a letter, of at most 41 characters (the longest derived name, `latest_<stem>_state_progress`,
    /// then fits RisingWave's 63). Any other topic (`a.b`, `a_b`, `A_B`, `a--b`, `1a` would share names with
    /// `a-b` or another topic) and the topic `user` (it would share the demo's names) are refused, saying to use
    /// such a topic or to create the pipeline in code with explicit `sourceName` and `viewName`.
    static func userEvents(topic: String, bootstrapServers: String = "localhost:9092") throws -> Self {
        try KafkaTopicName.validate(topic)
        let stem: String
        if topic == "user-events" {
            stem = "user"
        } else {
            let words = topic.split(separator: "-", omittingEmptySubsequences: false)
            let isWord: (Substring) -> Bool = { word in
                !word.isEmpty && word.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
            }
            guard words.allSatisfy(isWord), let first = topic.unicodeScalars.first, ("a"..."z").contains(first),
                topic.unicodeScalars.count <= 41, topic != "user"
            else {
                throw DeltaKitError(
                    code: .invalidConfiguration,
                    message:
                        "the CLI cannot name RisingWave objects after topic '\(topic)' without sharing them with another topic: its names take topics of lower-case letters and digits in words joined by single '-', starting with a letter, at most 41 characters, and not 'user' (the demo's user-events has those names; 'a.b', 'a_b' and 'A_B' would all be 'a_b'); use such a topic, or create the pipeline in code with explicit sourceName and viewName"
                )
            }
            stem = topic.replacingOccurrences(of: "-", with: "_")
        }
        return try RisingWavePipeline(
            configuration: .init(
                topic: topic,
                bootstrapServers: bootstrapServers,
                sourceName: stem + "_events",
                viewName: "latest_\(stem)_state"
            )
        )
    }
}
