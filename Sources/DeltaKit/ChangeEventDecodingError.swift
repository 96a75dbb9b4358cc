/// Raised when bytes are not a valid change event; names the field and the offending value.
public struct ChangeEventDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The JSON field at fault, or `nil` when the input is not a JSON object at all.
    public var field: String?
    /// The offending value as it appeared in the input (JSON text), or `nil` when it was missing.
    public var value: String?
    /// What is wrong and what was expected.
    public var reason: String

    /// Creates a decoding error.
    public init(field: String?, value: String?, reason: String) {
        self.field = field
        self.value = value
        self.reason = reason
    }

    public var description: String {
        var s = "invalid change event"
        if let field { s += ": field '\(field)'" }
        if let value { s += " has value \(value)" }
        return s + ": \(reason)"
    }
}
