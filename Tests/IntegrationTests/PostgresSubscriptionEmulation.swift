import DeltaKit
import DeltaKitTesting
import Foundation

@testable import DeltaKitRisingWave

/// RisingWave's subscription and cursor protocol on PostgreSQL, as `shared/reference/risingwave.md` §4 and its
/// "Second review" describe v3.0.3 (`session/cursor_manager.rs`, `handler/declare_cursor.rs`):
///
/// - a **checkpoint** (``PostgresEmulation/checkpoint()``; every ``PostgresEmulation/load(_:)`` ends with one) is an
///   epoch whose `rw_timestamp` is the wall clock's milliseconds, strictly increasing; it logs the view's *net*
///   change per key since the previous checkpoint — `Insert`, `Delete`, or `UpdateDelete` then `UpdateInsert` —
///   ordered by key, so ten updates of one key between two checkpoints are logged as one;
/// - `rw_catalog.rw_hummock_snapshot` holds the view's committed epoch in RisingWave's form (milliseconds since
///   2021-04-01, shifted left by 16 bits), reached through `rw_materialized_views` and `rw_schemas` as on RisingWave;
/// - `DECLARE … FULL` pins a snapshot of the committed state (rows with `op = 'Insert'` and a NULL `rw_timestamp`,
///   by key) and continues after the committed epoch; `DECLARE … SINCE t` reads the epochs from `t` on (inclusive),
///   refusing a `t` ahead of the clock or older than the retention with RisingWave's words;
/// - `FETCH n … WITH (timeout = 'Ns')` returns what is there, or waits up to N s for something; unless the emulation
///   is made with `cancellableFetch`, a cancel request does not interrupt the wait (v3.0.3's behaviour);
/// - cursors live in the session (a temporary table): after a reconnect, `FETCH` fails with "Cannot find cursor";
///   ``PostgresEmulation/failNextFetch(_:)`` makes the next `FETCH` fail with any other message RisingWave sends.
///
/// Errors carry SQLSTATE `XX000` and pgwire's wrapping ("Failed to … \n\nCaused by:\n  …"), as v3.0.3 sends them.
/// The feed's statements are RisingWave's; ``PostgresEmulation/rewriteCursorStatement(_:)`` turns the `DECLARE` and
/// `FETCH` it sends into calls of the emulation's functions, and refuses any other shape of them.
extension PostgresEmulation {
    /// The emulated view's table id in `rw_catalog`.
    private static var viewTableID: Int { 1_001 }

    /// An emulation in a database of its own (its `rw_catalog` schema is per database) with the view's subscription.
    static func subscribed(
        _ url: String,
        retention: Duration = .seconds(86_400),
        cancellableFetch: Bool = false
    ) async throws -> PostgresEmulation {
        let database = try await freshDatabase(url)
        var emulation = try await make(database)
        try await emulation.installSubscription(retention: retention, cancellableFetch: cancellableFetch)
        emulation.checkpoints = true
        return emulation
    }

    private func installSubscription(retention: Duration, cancellableFetch: Bool) async throws {
        let view = try SQLText.identifier(pipeline.viewName)
        let source = try SQLText.identifier(pipeline.sourceName)
        let key = try SQLText.identifier(try DemoUser.schema.keyField)
        let names = try pipeline.columns.stateColumns.map { try SQLText.identifier($0) }
        func columns(_ table: String) -> String { names.map { "\(table).\($0)" }.joined(separator: ", ") }
        let nowMilliseconds = Int64(Date().timeIntervalSince1970 * 1_000)
        let retentionMilliseconds = retention.components.seconds * 1_000
        try await connection.execute(
            """
            -- Provisioning emulated the catalog's drift columns already (PostgresEmulation.emulateCatalog): the
            -- subscription's queries need the view's table id and schema too.
            CREATE SCHEMA IF NOT EXISTS rw_catalog;
            DROP VIEW IF EXISTS rw_catalog.rw_materialized_views;
            CREATE TABLE rw_catalog.rw_schemas (id int, name varchar);
            INSERT INTO rw_catalog.rw_schemas VALUES (1, 'public'), (2, 'other');
            CREATE TABLE rw_catalog.rw_materialized_views (id int, name varchar, schema_id int, definition varchar);
            -- A view of the same name in another schema, one epoch behind: the query must pick the right one.
            INSERT INTO rw_catalog.rw_materialized_views VALUES (\(Self.viewTableID), \(try SQLText.literal(pipeline.viewName)), 1),
              (2002, \(try SQLText.literal(pipeline.viewName)), 2);
            CREATE TABLE rw_catalog.rw_hummock_snapshot (table_id int, committed_epoch bigint);
            INSERT INTO rw_catalog.rw_hummock_snapshot VALUES
              (\(Self.viewTableID), (\(nowMilliseconds) - 1617235200000) << 16), (2002, 0);

            CREATE SCHEMA rw_emul;
            CREATE TABLE rw_emul.settings (subscription text, retention_ms bigint, cancellable boolean, last_ms bigint);
            INSERT INTO rw_emul.settings VALUES
              (\(try SQLText.literal(pipeline.subscriptionName)), \(retentionMilliseconds), \(cancellableFetch), \(nowMilliseconds));
            CREATE TABLE rw_emul.mat AS SELECT * FROM \(view) WITH NO DATA;
            CREATE TABLE rw_emul.row_type AS SELECT *, ''::varchar AS op, 0::bigint AS rw_timestamp FROM \(view) WITH NO DATA;
            CREATE TABLE rw_emul.log AS SELECT 0::bigint AS seq, * FROM rw_emul.row_type WITH NO DATA;
            -- Injected FETCH errors, by the number of the FETCH that raises one (a sequence: not undone by the error).
            CREATE SEQUENCE rw_emul.fetches;
            CREATE TABLE rw_emul.faults (ticket bigint, message text);

            CREATE FUNCTION rw_emul.checkpoint() RETURNS bigint LANGUAGE plpgsql AS $$
            DECLARE
              epoch_ms bigint;
            BEGIN
              -- One checkpoint at a time, no source write in between (the log and the committed state must agree).
              LOCK TABLE rw_emul.settings IN EXCLUSIVE MODE;
              LOCK TABLE \(source) IN SHARE MODE;
              SELECT greatest((extract(epoch FROM clock_timestamp()) * 1000)::bigint, last_ms + 1) INTO epoch_ms
                FROM rw_emul.settings;
              INSERT INTO rw_emul.log
              SELECT (SELECT coalesce(max(seq), 0) FROM rw_emul.log) + row_number() OVER (ORDER BY c.k, c.sub),
                     \(columns("c")), c.op, epoch_ms
              FROM (
                SELECT m.\(key) AS k, 0 AS sub, 'Delete' AS op, \(columns("m")) FROM rw_emul.mat AS m
                  WHERE NOT EXISTS (SELECT 1 FROM \(view) AS v WHERE v.\(key) = m.\(key))
                UNION ALL
                SELECT v.\(key), 0, 'Insert', \(columns("v")) FROM \(view) AS v
                  WHERE NOT EXISTS (SELECT 1 FROM rw_emul.mat AS m WHERE m.\(key) = v.\(key))
                UNION ALL
                SELECT m.\(key), 0, 'UpdateDelete', \(columns("m")) FROM rw_emul.mat AS m JOIN \(view) AS v ON v.\(key) = m.\(key)
                  WHERE ROW(\(columns("m"))) IS DISTINCT FROM ROW(\(columns("v")))
                UNION ALL
                SELECT v.\(key), 1, 'UpdateInsert', \(columns("v")) FROM rw_emul.mat AS m JOIN \(view) AS v ON v.\(key) = m.\(key)
                  WHERE ROW(\(columns("m"))) IS DISTINCT FROM ROW(\(columns("v")))
              ) AS c;
              DELETE FROM rw_emul.mat;
              INSERT INTO rw_emul.mat SELECT * FROM \(view);
              UPDATE rw_emul.settings SET last_ms = epoch_ms;
              UPDATE rw_catalog.rw_hummock_snapshot SET committed_epoch = (epoch_ms - 1617235200000) << 16
                WHERE table_id = \(Self.viewTableID);
              RETURN epoch_ms;
            END $$;

            CREATE FUNCTION rw_emul.declare_cursor(cursor_name text, sub text, since bigint) RETURNS void LANGUAGE plpgsql AS $$
            DECLARE
              s rw_emul.settings;
              now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
            BEGIN
              SELECT * INTO s FROM rw_emul.settings;
              IF sub <> s.subscription THEN
                RAISE EXCEPTION USING ERRCODE = '42704',
                  MESSAGE = format(E'Failed to run the query\\n\\nCaused by:\\n  Catalog error: subscription not found: %s', sub);
              END IF;
              CREATE TEMP TABLE IF NOT EXISTS rw_cursors (name text PRIMARY KEY, seek bigint, after_seq bigint, snapshot_left boolean);
              CREATE TEMP TABLE IF NOT EXISTS rw_cursor_snapshots AS
                SELECT ''::text AS cursor_name, 0::bigint AS ord, * FROM rw_emul.mat WITH NO DATA;
              IF EXISTS (SELECT 1 FROM rw_cursors AS c WHERE c.name = cursor_name) THEN
                RAISE EXCEPTION USING ERRCODE = 'XX000',
                  MESSAGE = format(E'Failed to run the query\\n\\nCaused by:\\n  Catalog error: cursor `%s` already exists', cursor_name);
              END IF;
              IF since IS NOT NULL THEN
                IF since > now_ms THEN
                  RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE =
                    E'Failed to run the query\\n\\nCaused by:\\n  Catalog error: rw_timestamp is too large, need to be less than the current unix_millis';
                END IF;
                IF since < now_ms - s.retention_ms THEN
                  RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE =
                    E'Failed to run the query\\n\\nCaused by:\\n  Catalog error: rw_timestamp is too small, need to be large than the current unix_millis - subscription''s retention time';
                END IF;
                INSERT INTO rw_cursors VALUES (cursor_name, since, 0, false);
              ELSE
                -- The snapshot and the epoch it continues after, consistently (no checkpoint in between).
                LOCK TABLE rw_emul.settings IN SHARE MODE;
                INSERT INTO rw_cursor_snapshots SELECT cursor_name, row_number() OVER (ORDER BY m.\(key)), m.* FROM rw_emul.mat AS m;
                INSERT INTO rw_cursors SELECT cursor_name, last_ms + 1, 0, true FROM rw_emul.settings;
              END IF;
            END $$;

            CREATE FUNCTION rw_emul.fetch_cursor(cursor_name text, n int, timeout_s int) RETURNS SETOF rw_emul.row_type
            LANGUAGE plpgsql AS $$
            DECLARE
              c record;
              fault text;
              got bigint;
              logged bigint;
              last bigint;
              cancellable boolean;
              deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
            BEGIN
              SELECT f.message INTO fault FROM rw_emul.faults AS f WHERE f.ticket = nextval('rw_emul.fetches');
              IF fault IS NOT NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE = fault;
              END IF;
              IF to_regclass('pg_temp.rw_cursors') IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE =
                  format(E'Failed to prepare the statement\\n\\nCaused by:\\n  internal error: Cannot find cursor `%s`', cursor_name);
              END IF;
              SELECT * INTO c FROM rw_cursors AS r WHERE r.name = cursor_name;
              IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE =
                  format(E'Failed to prepare the statement\\n\\nCaused by:\\n  internal error: Cannot find cursor `%s`', cursor_name);
              END IF;
              SELECT s.cancellable INTO cancellable FROM rw_emul.settings AS s;
              LOOP
                got := 0;
                IF c.snapshot_left THEN
                  RETURN QUERY SELECT \(columns("p")), 'Insert'::varchar, NULL::bigint FROM rw_cursor_snapshots AS p
                    WHERE p.cursor_name = fetch_cursor.cursor_name ORDER BY p.ord LIMIT n;
                  GET DIAGNOSTICS got = ROW_COUNT;
                  DELETE FROM rw_cursor_snapshots AS p WHERE p.cursor_name = fetch_cursor.cursor_name AND p.ord IN
                    (SELECT q.ord FROM rw_cursor_snapshots AS q WHERE q.cursor_name = fetch_cursor.cursor_name ORDER BY q.ord LIMIT n);
                  IF got < n THEN
                    UPDATE rw_cursors AS r SET snapshot_left = false WHERE r.name = cursor_name;
                    c.snapshot_left := false;
                  END IF;
                END IF;
                IF NOT c.snapshot_left AND got < n THEN
                  RETURN QUERY SELECT \(columns("l")), l.op, l.rw_timestamp FROM rw_emul.log AS l
                    WHERE l.rw_timestamp >= c.seek AND l.seq > c.after_seq ORDER BY l.seq LIMIT n - got;
                  GET DIAGNOSTICS logged = ROW_COUNT;
                  IF logged > 0 THEN
                    SELECT max(x.seq) INTO last FROM (SELECT l.seq FROM rw_emul.log AS l
                      WHERE l.rw_timestamp >= c.seek AND l.seq > c.after_seq ORDER BY l.seq LIMIT logged) AS x;
                    UPDATE rw_cursors AS r SET after_seq = last WHERE r.name = cursor_name;
                    c.after_seq := last;
                    got := got + logged;
                  END IF;
                END IF;
                IF got > 0 OR clock_timestamp() >= deadline THEN
                  RETURN;
                END IF;
                IF cancellable THEN
                  PERFORM pg_sleep(0.02);
                ELSE
                  BEGIN
                    PERFORM pg_sleep(0.02);
                  EXCEPTION WHEN query_canceled THEN
                    NULL;  -- v3.0.3: a waiting FETCH runs out its timeout whatever the client asks
                  END;
                END IF;
              END LOOP;
            END $$;
            """
        )
    }

    /// Commits a checkpoint: the view's net change per key since the previous one becomes one epoch of the log.
    func checkpoint() async throws {
        _ = try await connection.query("SELECT rw_emul.checkpoint()")
    }

    /// The next `FETCH` on any cursor fails once with `message` (RisingWave's words, e.g. "internal error: The cursor
    /// has exceeded its maximum lifetime, …"), wrapped and with SQLSTATE `XX000` as pgwire sends it.
    func failNextFetch(_ message: String) async throws {
        _ = try await connection.query(
            "INSERT INTO rw_emul.faults SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END, $1 FROM rw_emul.fetches",
            ["Failed to execute the statement\n\nCaused by:\n  \(message)"]
        )
    }

    /// The emulation's form of a cursor statement the feed sends: RisingWave's `DECLARE … SUBSCRIPTION CURSOR` and
    /// `FETCH … WITH (timeout)` become calls of the emulation's functions; a `DECLARE` or `FETCH` of any other shape
    /// fails, naming it; other statements pass unchanged.
    @Sendable static func rewriteCursorStatement(_ sql: String) -> String {
        if let declare = sql.wholeMatch(
            of: #/DECLARE "([a-z0-9_]+)" SUBSCRIPTION CURSOR FOR "([a-z0-9_]+)" (FULL|SINCE ([0-9]+))/#
        ) {
            return
                "SELECT rw_emul.declare_cursor('\(declare.1)', '\(declare.2)', \(declare.4.map(String.init) ?? "NULL"))"
        }
        if let fetch = sql.wholeMatch(of: #/FETCH ([0-9]+) FROM "([a-z0-9_]+)" WITH \(timeout = '([0-9]+)s'\)/#) {
            return "SELECT * FROM rw_emul.fetch_cursor('\(fetch.2)', \(fetch.1), \(fetch.3))"
        }
        if sql.hasPrefix("DECLARE") || sql.hasPrefix("FETCH") {
            let quoted = sql.replacingOccurrences(of: "'", with: "''")
            return
                "DO $$ BEGIN RAISE EXCEPTION 'the cursor emulation does not know this statement: %', '\(quoted)'; END $$"
        }
        return sql
    }

    /// A change feed of the emulated store, its statements rewritten for the emulation.
    func changes(
        from start: ChangeFeedStart,
        fetchTimeout: Duration = .seconds(1),
        fetchCount: Int = 500,
        applicationName: String = "deltakit-feed"
    ) async throws -> RisingWaveChangeFeed<DemoUser> {
        var configuration = connection.configuration
        configuration.applicationName = applicationName
        configuration.reconnectBackoff = .milliseconds(50)
        return try await store.changes(
            from: start,
            connection: configuration,
            fetchTimeout: fetchTimeout,
            fetchCount: fetchCount,
            rewrite: Self.rewriteCursorStatement
        )
    }
}

/// The emulated RisingWave store as a `ChangeFeedStore` for `ChangeFeedConformance`: reads go to the store, feeds
/// through the cursor emulation, and `apply` loads events (each load one checkpoint).
final class EmulatedRisingWaveStore: ChangeFeedStore, Sendable {
    typealias Record = DemoUser
    private let emulation: Emulation

    /// Serializes the emulation's loads (offsets per partition count up in it).
    actor Emulation {
        var value: PostgresEmulation
        init(_ value: PostgresEmulation) { self.value = value }
        /// Loads one batch (callers load one batch at a time: the offsets are copied across the wait).
        func load(_ events: [ChangeEvent<DemoUser>]) async throws {
            var copy = value
            try await copy.load(events)
            value = copy
        }
    }

    let store: RisingWaveStateStore<DemoUser>
    private let base: PostgresEmulation

    init(_ emulation: PostgresEmulation) {
        self.base = emulation
        self.emulation = Emulation(emulation)
        self.store = emulation.store
    }

    func apply(_ events: [ChangeEvent<DemoUser>]) async throws { try await emulation.load(events) }

    func snapshot() async throws -> [DemoUser] { try await store.snapshot() }
    func value(forKey key: Int) async throws -> DemoUser? { try await store.value(forKey: key) }
    func history(limit: Int) async throws -> [ChangeEvent<DemoUser>] { try await store.history(limit: limit) }
    func count() async throws -> Int { try await store.count() }
    func changes(from start: ChangeFeedStart) async throws -> RisingWaveChangeFeed<DemoUser> {
        try await base.changes(from: start)
    }
}
