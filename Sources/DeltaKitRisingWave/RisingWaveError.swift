/// An error from RisingWave (or PostgreSQL) via libpq; carried as `underlying`.
///
/// Never contains credentials.
public struct RisingWaveError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The SQLSTATE code (e.g. `42P01`), when the server sent one. RisingWave before v2.5 reports `XX000`
    /// for almost everything.
    public var sqlState: String?
    /// The server's or libpq's message.
    public var message: String
    /// The server's detail line, if any.
    public var detail: String?
    /// The server's hint, if any.
    public var hint: String?
    /// The statement that failed, if any.
    public var statement: String?
    /// `true` when the connection itself failed (refused, lost, authentication).
    public var isConnectionError: Bool

    /// Creates an error.
    public init(
        sqlState: String?,
        message: String,
        detail: String? = nil,
        hint: String? = nil,
        statement: String? = nil,
        isConnectionError: Bool = false
    ) {
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.statement = statement
        self.isConnectionError = isConnectionError
    }

    public var description: String {
        var s = sqlState.map { "[\($0)] " } ?? ""
        s += message
        if let detail { s += " — detail: \(detail)" }
        if let hint { s += " — hint: \(hint)" }
        if let statement {
            s += " — statement: \(statement.count > 300 ? String(statement.prefix(300)) + "…" : statement)"
        }
        return s
    }
}
