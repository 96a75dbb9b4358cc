import Logging
import Synchronization

/// A swift-log handler that keeps every message, for asserting what a component logged.
struct CapturingLogHandler: LogHandler {
    final class Store: Sendable {
        let entries = Mutex<[(Logger.Level, String)]>([])
        var messages: [String] { entries.withLock { $0.map(\.1) } }
    }
    let store: Store
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.entries.withLock { $0.append((event.level, "\(event.message)")) }
    }

    static func logger(_ label: String) -> (Logger, Store) {
        let store = Store()
        return (Logger(label: label, factory: { _ in CapturingLogHandler(store: store) }), store)
    }
}
