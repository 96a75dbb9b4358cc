/// The kind of change a ``ChangeEvent`` describes.
///
/// On the wire this is the demo's `op` field: `"insert"`, `"update"` or `"delete"`.
/// Insert and update are both *upserts* for the merge semantics (see ``LatestStateMerge``);
/// they are kept apart because applications and audit trails care about the difference.
public enum ChangeOperation: String, Codable, Hashable, Sendable, CaseIterable {
    /// A new record for a key.
    case insert
    /// A new version of an existing record.
    case update
    /// The key's record is gone; the event carries no record.
    case delete
}
