/// One field's value in an event row: what the hot path keeps instead of a typed record.
///
/// Canonical — a value as it reads back after a trip through the wire, as in-process stores hold events — so two
/// values are equal exactly when the typed fields they stand for are equal, and rows are compared,
/// hashed (as keys) and ordered without building a record. A `String` of up to 15 UTF-8 bytes is stored inline by
/// Swift itself (no allocation); every other case is a plain value.
package enum RowValue: Hashable, Sendable {
    case null
    /// Every integer type (all fit 64 signed bits: larger unsigned values are refused), an integer enum's raw value.
    case integer(Int64)
    case bool(Bool)
    /// A `Double`, or a `Float` (the `Float`'s value, widened).
    case double(Double)
    /// A `String`, a URL's text, a string enum's raw value (as the enum declares it).
    case string(String)
    /// A `Date`: microseconds since 1970, canonical (`EventTimestamp.canonicalMicroseconds`: what the `Date` a text
    /// reads as formats back to).
    case timestamp(Int64)
    /// A `UUID`'s 16 bytes, big-endian in two words (so they order like its lowercase text).
    case uuid(UInt64, UInt64)
    /// A `Decimal`'s canonical text (`Decimal.description`).
    case decimal(String)

    /// Hashes the payload alone for the common key kinds — an integer, a string — (one value into the hasher, not
    /// the case's tag first): a row value is a key of the store's index at every event. Values of different cases
    /// never compare equal, so sharing a hash costs at most a collision.
    package func hash(into hasher: inout Hasher) {
        switch self {
        case .integer(let value): hasher.combine(value)
        case .string(let text): hasher.combine(text)
        case .null: hasher.combine(0 as UInt8)
        case .bool(let value): hasher.combine(value)
        case .double(let value): hasher.combine(value)
        case .timestamp(let value): hasher.combine(value)
        case .uuid(let high, let low):
            hasher.combine(high)
            hasher.combine(low)
        case .decimal(let text): hasher.combine(text)
        }
    }
}

/// The envelope of an event row: order, timestamp and operation.
package struct RowHeader: Sendable {
    /// The event's order (`event_order`).
    package var order: Int64
    /// The event's timestamp in microseconds since 1970, as `ChangeEvent.timestamp` holds it.
    package var micros: Int64
    /// The event's operation; in a list of visible changes, the change's kind.
    package var operation: ChangeOperation

    package init(order: Int64, micros: Int64, operation: ChangeOperation) {
        self.order = order
        self.micros = micros
        self.operation = operation
    }
}

/// Event rows of one record type, stored flat: a header per row and `width` values per row (the record's fields
/// in the schema's order, the key among them; a delete has `null` in every field but the key).
///
/// Not generic, so the loops over it run specialized whatever the record type; appending to a list whose
/// capacity is already there allocates nothing (strings longer than 15 bytes aside).
package struct RowList: Sendable {
    /// Values per row: the number of fields of the record.
    package let width: Int
    package private(set) var headers: [RowHeader] = []
    package private(set) var values: [RowValue] = []

    package init(width: Int) { self.width = width }

    /// The number of rows.
    package var count: Int { headers.count }
    package var isEmpty: Bool { headers.isEmpty }

    /// The index of row `row`'s first value in ``values``.
    @inline(__always)
    package func base(_ row: Int) -> Int { row &* width }

    /// Value `field` of row `row`.
    @inline(__always)
    package func value(_ row: Int, _ field: Int) -> RowValue { values[row &* width &+ field] }

    package mutating func reserveCapacity(_ rows: Int) {
        headers.reserveCapacity(rows)
        values.reserveCapacity(rows * width)
    }

    package mutating func removeAll(keepingCapacity: Bool = true) {
        headers.removeAll(keepingCapacity: keepingCapacity)
        values.removeAll(keepingCapacity: keepingCapacity)
    }

    /// Starts a row of `null`s and returns its index: the decoder fills in its values, then ``finishRow(_:)`` or
    /// ``abandonRow()``.
    @inline(__always)
    package mutating func beginRow() -> Int {
        for _ in 0..<width { values.append(.null) }
        return values.count &- width
    }

    /// Sets value `field` of the row begun at `base`.
    @inline(__always)
    package mutating func set(_ base: Int, _ field: Int, _ value: RowValue) { values[base &+ field] = value }

    @inline(__always)
    package mutating func finishRow(_ header: RowHeader) { headers.append(header) }

    /// Appends a row whose values are moved out of `row` (``width`` of them), which is left uninitialized.
    @inline(__always)
    package mutating func append(moving row: UnsafeMutableBufferPointer<RowValue>, header: RowHeader) {
        for index in 0..<width { values.append(row.moveElement(from: index)) }
        headers.append(header)
    }

    /// Removes the last row.
    package mutating func removeLastRow() {
        headers.removeLast()
        values.removeLast(width)
    }

    /// Drops the values of a row begun but not finished.
    @inline(__always)
    package mutating func abandonRow() { values.removeLast(width) }

    /// Appends row `row` of `other` (the same width) with `header`.
    @inline(__always)
    package mutating func append(_ other: RowList, row: Int, header: RowHeader? = nil) {
        let start = other.base(row)
        values.append(contentsOf: other.values[start..<start &+ width])
        headers.append(header ?? other.headers[row])
    }

    /// Appends rows `range` of `other` (the same width).
    package mutating func append(contentsOf other: RowList, _ range: Range<Int>) {
        values.append(contentsOf: other.values[other.base(range.lowerBound)..<other.base(range.upperBound)])
        headers.append(contentsOf: other.headers[range])
    }

    /// Inserts row `row` of `other` before row `position`.
    package mutating func insert(_ other: RowList, row: Int, at position: Int) {
        let start = other.base(row)
        values.insert(contentsOf: other.values[start..<start &+ width], at: position &* width)
        headers.insert(other.headers[row], at: position)
    }

    /// Overwrites row `row` with row `source` of `other`.
    @inline(__always)
    package mutating func replace(_ row: Int, with other: RowList, row source: Int) {
        let target = base(row)
        let start = other.base(source)
        for offset in 0..<width { values[target &+ offset] = other.values[start &+ offset] }
        headers[row] = other.headers[source]
    }

    /// Overwrites the header of row `row`.
    @inline(__always)
    package mutating func setHeader(_ row: Int, _ header: RowHeader) { headers[row] = header }

    /// Removes the first `count` rows.
    package mutating func removeFirst(_ count: Int) {
        headers.removeFirst(count)
        values.removeFirst(count * width)
    }

    /// Keeps the rows for which `keep` is `true`, in order.
    package mutating func filter(_ keep: (Int) -> Bool) {
        var kept = RowList(width: width)
        for row in 0..<count where keep(row) { kept.append(self, row: row) }
        self = kept
    }

    /// Whether row `row` of `self` and row `other` of `list` hold equal values (the headers are not compared).
    @inline(__always)
    package func valuesEqual(_ row: Int, _ list: RowList, _ other: Int) -> Bool {
        let a = base(row)
        let b = list.base(other)
        for offset in 0..<width where !RowValue.equal(values[a &+ offset], list.values[b &+ offset]) { return false }
        return true
    }
}

extension RowValue {
    /// Whether two values stand for equal typed values: `==`, except that decimals compare by value.
    @inline(__always)
    package static func equal(_ lhs: RowValue, _ rhs: RowValue) -> Bool {
        if case .decimal(let left) = lhs, case .decimal(let right) = rhs {
            return left == right || DecimalText.compare(left, right) == 0
        }
        return lhs == rhs
    }

    /// `true` when `lhs` sorts before `rhs` as SQL sorts the column (see `RecordSchema.FieldType.precedes`):
    /// numbers, dates and UUIDs by value (a UUID's bytes order like its lowercase text), strings by their UTF-8
    /// bytes, `false` before `true`. Only values of one field are compared; `null` is handled by the caller.
    package static func precedes(_ lhs: RowValue, _ rhs: RowValue) -> Bool {
        switch (lhs, rhs) {
        case (.integer(let a), .integer(let b)): return a < b
        case (.bool(let a), .bool(let b)): return !a && b
        case (.double(let a), .double(let b)): return a < b
        case (.string(let a), .string(let b)): return a.utf8.lexicographicallyPrecedes(b.utf8)
        case (.timestamp(let a), .timestamp(let b)): return a < b
        case (.uuid(let a0, let a1), .uuid(let b0, let b1)): return a0 < b0 || (a0 == b0 && a1 < b1)
        case (.decimal(let a), .decimal(let b)):
            return DecimalText.compare(a, b).map { $0 < 0 } ?? a.utf8.lexicographicallyPrecedes(b.utf8)
        default: return false
        }
    }
}
