/// The names of the envelope fields that sit next to the record's own fields on the wire.
public enum ChangeEventField {
    /// `"op"`: insert, update or delete.
    public static let operation = "op"
    /// `"event_order"`: the event's order (``ChangeEvent/order``).
    public static let order = "event_order"
    /// `"ts"`: the event's timestamp (``ChangeEvent/timestamp``).
    public static let timestamp = "ts"
}
