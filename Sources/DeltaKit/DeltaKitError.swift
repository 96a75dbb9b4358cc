/// An error raised by DeltaKit or one of its backends.
///
/// The ``code`` says what kind of failure it is; ``message`` says what failed and how to fix it;
/// ``underlying`` carries the backend's own error (a librdkafka error code, a SQLSTATE) when there is one.
public struct DeltaKitError: Error, Sendable, CustomStringConvertible {
    /// A kind of failure. New codes may be added in minor releases, so switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case connectionFailed, timedOut, serializationFailed, rejected, closed, invalidConfiguration
            case deliveryFailed, queryFailed, changesUnavailable, storageFailed, incompatibleStore
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A broker or database could not be reached.
        public static let connectionFailed = Code(.connectionFailed)
        /// An operation did not finish within its deadline.
        public static let timedOut = Code(.timedOut)
        /// An event or row could not be encoded or decoded.
        public static let serializationFailed = Code(.serializationFailed)
        /// The service refused the request (authorization, invalid topic, bad SQL…).
        public static let rejected = Code(.rejected)
        /// The component was shut down, or stopped after an earlier failure.
        public static let closed = Code(.closed)
        /// A configuration value or a record declaration is invalid.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// An event was not acknowledged as durable.
        public static let deliveryFailed = Code(.deliveryFailed)
        /// A query failed on the server.
        public static let queryFailed = Code(.queryFailed)
        /// A change feed cannot deliver the changes after a position: the consumer fell too far behind, or
        /// resumed from a position the store no longer retains. Start the feed again from a snapshot.
        public static let changesUnavailable = Code(.changesUnavailable)
        /// Local storage failed: a state file could not be read or written (unreadable or corrupt file, full
        /// disk, permissions). The underlying error carries the storage engine's code.
        public static let storageFailed = Code(.storageFailed)
        /// A state file belongs to another topic or record schema, or was written by an incompatible version:
        /// it is never reused or replaced silently. Point the store at another file, or delete this one to rebuild.
        public static let incompatibleStore = Code(.incompatibleStore)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What failed and, where known, how to fix it.
    public var message: String
    /// The backend's own error, when there is one.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(code: Code, message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// `true` when retrying the same operation later may succeed.
    public var isRetryable: Bool {
        code == .connectionFailed || code == .timedOut
    }

    public var description: String {
        if let underlying { return "\(code): \(message) (underlying: \(underlying))" }
        return "\(code): \(message)"
    }
}

extension DeltaKitError {
    /// An ``Code/invalidConfiguration`` error naming the setting, its value and what is allowed.
    package static func invalidValue(_ name: String, _ value: Any, allowed: String) -> DeltaKitError {
        DeltaKitError(code: .invalidConfiguration, message: "\(name) is \(value); allowed: \(allowed)")
    }

    /// Throws ``invalidValue(_:_:allowed:)`` unless `value` is in `range`.
    package static func check<T: Comparable>(_ value: T, in range: ClosedRange<T>, _ name: String) throws {
        guard range.contains(value) else {
            let allowed =
                if let upper = range.upperBound as? Int, upper == .max {
                    "\(range.lowerBound) or more"
                } else {
                    "\(range.lowerBound)…\(range.upperBound)"
                }
            throw invalidValue(name, value, allowed: allowed)
        }
    }

    /// Throws unless `duration` is in `range`.
    package static func check(_ duration: Duration, in range: ClosedRange<Duration>, _ name: String) throws {
        guard range.contains(duration) else {
            throw invalidValue(name, duration, allowed: "\(range.lowerBound)…\(range.upperBound)")
        }
    }
}
