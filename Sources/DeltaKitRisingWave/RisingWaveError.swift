/// An error from RisingWave (or PostgreSQL) via libpq; carried as `underlying`.
///
/// Never contains credentials.
public struct RisingWaveError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The SQLSTATE code (e.g. `42P01`), when the server sent one. RisingWave before v2.5 reports `XX000`
    /// for almost everything.
    public internal(set) var sqlState: String?
    /// The server's or libpq's message.
    public internal(set) var message: String
    /// The server's detail line, if any.
    public internal(set) var detail: String?
    /// The server's hint, if any.
    public internal(set) var hint: String?
    /// The statement that failed, if any.
    public internal(set) var statement: String?
    /// `true` when the connection itself failed (refused, lost, authentication).
    public internal(set) var isConnectionError: Bool

    init(
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

    /// The SQLSTATE in brackets, the message, then the detail, hint and statement (shortened) when present.
    public var description: String {
        var text = sqlState.map { "[\($0)] " } ?? ""
        text += message
        if let detail { text += " — detail: \(detail)" }
        if let hint { text += " — hint: \(hint)" }
        if let statement {
            text += " — statement: \(statement.count > 300 ? String(statement.prefix(300)) + "…" : statement)"
        }
        return text
    }
}
