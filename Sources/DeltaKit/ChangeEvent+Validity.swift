import Foundation

extension ChangeEvent {
    /// Checks the event against DeltaKit's validity rule (see `Documentation/semantics.md`).
    ///
    /// A typed event is valid when its record can be written to the wire and to a column: every field is a
    /// supported scalar, every floating-point value is finite, and every unsigned integer fits a 64-bit
    /// signed column. (The rest of the rule — a known `op`, a non-null key and order, a delete that carries
    /// no values, no null in a non-optional field — is enforced by the type itself for typed events and by
    /// ``init(jsonData:)`` for events read from the wire.) Every sink, fake and store in DeltaKit applies
    /// exactly this check, so an invalid event fails the same way everywhere and never changes state.
    ///
    /// - Throws: ``DeltaKitError`` with code ``DeltaKitError/Code/serializationFailed`` naming the field.
    public func validate() throws {
        var scratch: [UInt8] = []
        try encodeJSON(into: &scratch)
    }

    /// The event exactly as a consumer reads it after a trip through the wire: validated, with every `Date`
    /// truncated to microseconds and every `Float` or `Decimal` as its decimal text gives it back.
    ///
    /// In-process stores and fakes apply events in this form, so an event compares equal whichever
    /// backend carried it.
    ///
    /// - Throws: ``DeltaKitError`` (``DeltaKitError/Code/serializationFailed``) when the event is invalid.
    public func canonicalized() throws -> ChangeEvent { try canonicalized(schema: try Record.schema) }

    /// ``canonicalized()`` with the schema already looked up (batch callers look it up once).
    @inline(__always)
    package func canonicalized(schema: RecordSchema) throws -> ChangeEvent {
        guard schema.changesInRoundTrip, record != nil else {
            // Every typed value of these fields is valid and travels unchanged: nothing to check or convert.
            if schema.hasFallibleFields { try validate() }
            return self
        }
        let wire = try jsonData()
        do {
            return try ChangeEvent(jsonData: wire)
        } catch {
            throw DeltaKitError(
                code: .serializationFailed,
                message: "\(Record.self) with key \(key) does not read back from its own wire form: \(error)",
                underlying: error
            )
        }
    }
}
