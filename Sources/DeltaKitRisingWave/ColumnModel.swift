import DeltaKit

/// The columns of a pipeline's objects, derived from the record's schema. The DDL and the reads both take their
/// column lists from here, so a view and the query that reads it cannot disagree.
struct ColumnModel: Sendable {
    /// The record's schema.
    let schema: RecordSchema

    /// Columns DeltaKit adds to the record's (or that RisingWave adds to a query's result); a record field with
    /// one of these names would be ambiguous.
    static let reserved: Set = [
        ChangeEventField.operation, ChangeEventField.order, ChangeEventField.timestamp, "kafka_partition",
        "kafka_offset", "kafka_payload", "kafka_key", "rn", "rw_timestamp",
    ]

    /// - Throws: `DeltaKitError` (`invalidConfiguration`) naming a record field that collides with a column DeltaKit
    ///   adds.
    init(schema: RecordSchema) throws {
        for field in schema.fields where Self.reserved.contains(field.name) {
            throw DeltaKitError(
                code: .invalidConfiguration,
                message: "the record field '\(field.name)' collides with a column DeltaKit adds; rename it"
            )
        }
        self.schema = schema
    }

    /// The SQL type of a record field.
    static func sqlType(_ type: RecordSchema.FieldType) -> String {
        switch type {
        case .bool: "BOOLEAN"
        case .int32: "INT"
        case .int64: "BIGINT"
        case .float: "REAL"
        case .double: "DOUBLE PRECISION"
        case .decimal: "DECIMAL"
        case .string, .uuid: "VARCHAR"
        case .timestamp: "TIMESTAMPTZ"
        }
    }

    /// `(name, SQL type)` of every column of an event: the record's fields, then `op`, `event_order`, `ts`.
    var eventColumns: [(name: String, type: String)] {
        schema.fields.map { ($0.name, Self.sqlType($0.type)) } + [
            (ChangeEventField.operation, "VARCHAR"), (ChangeEventField.order, "BIGINT"),
            (ChangeEventField.timestamp, "TIMESTAMPTZ"),
        ]
    }

    /// The type RisingWave's and PostgreSQL's `information_schema.columns` report for a column of SQL type
    /// `sqlType` (RisingWave: `DataType`'s display names, `src/common/src/types/mod.rs`).
    static func catalogType(_ sqlType: String) -> String {
        switch sqlType {
        case "BOOLEAN": "boolean"
        case "INT": "integer"
        case "BIGINT": "bigint"
        case "REAL": "real"
        case "DOUBLE PRECISION": "double precision"
        case "DECIMAL": "numeric"
        case "VARCHAR": "character varying"
        case "TIMESTAMPTZ": "timestamp with time zone"
        case "JSONB": "jsonb"
        case "BYTEA": "bytea"
        default: sqlType.lowercased()
        }
    }

    /// The columns of the latest-state view: the record's fields, `event_order` and `ts`.
    var stateColumns: [String] {
        schema.fields.map(\.name) + [ChangeEventField.order, ChangeEventField.timestamp]
    }

    /// The history's order, newest first: among equal orders the later Kafka offset first (`::BIGINT`: offsets
    /// are text). The history view and its read share it.
    static func historyOrder() throws -> String {
        "\(try SQLText.identifier(ChangeEventField.order)) DESC, kafka_offset::BIGINT DESC, kafka_partition DESC"
    }
}
