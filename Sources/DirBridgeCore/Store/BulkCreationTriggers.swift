import GRDB

/// The two per-row triggers on inserted client users, set aside while a large creation is
/// inserted and replaced by one set-based statement each, inside the apply's transaction.
///
/// `client_users_rules_on_insert` (the portal's group and flag rules) and
/// `client_users_counted_insert` (the client's change counter) run a sub-program for every
/// inserted row: on a first sync of 100,000 users that was about half a second of the write
/// stage (measured with the same multi-row inserts through Python's `sqlite3`). A bulk load
/// does what an experienced DBA does by hand: the two triggers are dropped inside the write
/// transaction, the rows go in, the rules are checked over every inserted row in one query,
/// the counter is raised by the number of rows in one statement, and the triggers are
/// created again from their own stored SQL before the transaction commits.
///
/// - Other connections never see the store without the triggers: the drop, the inserts and
///   the re-creation commit together, and a failure rolls all of them back.
/// - It is used only when every trigger on the tables written meanwhile (`client_users`,
///   `history`, `invitations`, `store_changes`; table names in any case) is exactly what this
///   build's migrations create, by name and SQL byte for byte. A store whose portal added or
///   changed a trigger there keeps the per-row path, so no trigger this code does not know is
///   ever skipped, nor fired fewer times.
/// - The check raises the trigger's own message for the first inserted row (by id) that
///   breaks a rule, naming the user, so the apply fails as the per-row trigger would fail it;
///   also when an insert fails later on (a duplicate email after the broken rule), as the
///   per-row trigger would have stopped at the rule first.
/// - Each bulk apply moves the store's `schema_version` by four (two drops, two creations):
///   other connections re-prepare their statements once, as after any schema change.
struct BulkCreationTriggers {
    /// The triggers set aside, by name, with the SQL that creates them again.
    private let dropped: [(name: String, sql: String)]
    /// Every client user with an id above this one was inserted while the triggers were away.
    private let lastIDBefore: Int64

    /// From this many creations in one apply on, the triggers are set aside; below it they run per row.
    static let minimumCreations = 1_000

    /// The triggers set aside; their bodies are what ``finish(_:)`` does in one statement each.
    static let suspended = ["client_users_rules_on_insert", "client_users_counted_insert"]
    /// The tables written while the triggers are away, lowercased.
    private static let writtenTables = ["client_users", "history", "invitations", "store_changes"]

    /// The triggers on ``writtenTables`` that this build's migrations create: name → SQL, read
    /// from a fresh in-memory store once per process. Nil if that store could not be built.
    private static let expected: [String: String]? = try? {
        let queue = try DatabaseQueue()
        try StoreSchema.migrator.migrate(queue)
        return try queue.read { try triggers($0) }
    }()

    private static func triggers(_ db: Database) throws -> [String: String] {
        let rows = try Row.fetchAll(db, sql: """
            SELECT name, sql FROM sqlite_master
            WHERE type = 'trigger' AND lower(tbl_name) IN (\(writtenTables.map { "'\($0)'" }.joined(separator: ", ")))
            """)
        return Dictionary(rows.map { ($0["name"] as String, $0["sql"] as String) }, uniquingKeysWith: { first, _ in first })
    }

    /// Drops the two insert triggers inside the open transaction, when the store's triggers
    /// are this build's; returns nil (and drops nothing) otherwise.
    static func suspend(_ db: Database) throws -> BulkCreationTriggers? {
        guard let expected else { return nil }
        let present = try triggers(db)
        // Byte for byte: Swift's == would take canonically equivalent text as equal.
        guard present.count == expected.count,
              present.allSatisfy({ name, sql in expected[name].map { sql.hasSameUTF8(as: $0) } ?? false })
        else { return nil }
        // Created again from the store's own text.
        let dropped = suspended.compactMap { name in present[name].map { (name: name, sql: $0) } }
        guard dropped.count == suspended.count else { return nil }
        let lastID = try Int64.fetchOne(db, sql: "SELECT max(id) FROM client_users") ?? 0
        for trigger in dropped { try db.execute(sql: "DROP TRIGGER \(trigger.name)") }
        return BulkCreationTriggers(dropped: dropped, lastIDBefore: lastID)
    }

    /// Checks the rules over the rows inserted since ``suspend(_:)``, raises the change
    /// counter by their number, and creates the triggers again. Throws the rule's
    /// ``StoreError`` (and the caller's transaction rolls back) when a row breaks one.
    func finish(_ db: Database) throws {
        if let broken = try brokenRule(db) { throw broken }
        // What the counting trigger would have added, one per inserted row of each client.
        try db.execute(sql: """
            INSERT INTO store_changes (client_id, counter)
            SELECT client_id, count(*) FROM client_users WHERE id > ? GROUP BY client_id
            ON CONFLICT (client_id) DO UPDATE SET counter = counter + excluded.counter
            """, arguments: [lastIDBefore])
        for trigger in dropped { try db.execute(sql: trigger.sql) }
    }

    /// The error the rules trigger would have raised for the rows inserted so far, if any: its
    /// three checks, in its order, for each row; the first failing row by id.
    func brokenRule(_ db: Database) throws -> StoreError? {
        if let broken = try Row.fetchOne(db, sql: """
            SELECT email, rule FROM (
                SELECT u.id, u.email,
                       CASE WHEN g.id IS NULL OR g.client_id <> u.client_id THEN ?1
                            WHEN u.global_admin = 1 AND g.is_default <> 1 THEN ?2
                            WHEN u.group_manager = 1 AND g.is_default <> 0 THEN ?3 END AS rule
                FROM client_users u LEFT JOIN user_groups g ON g.id = u.user_group_id
                WHERE u.id > ?4)
            WHERE rule IS NOT NULL ORDER BY id LIMIT 1
            """, arguments: [StoreSchema.sameClientRule, StoreSchema.globalAdminRule, StoreSchema.groupManagerRule, lastIDBefore]) {
            return StoreError(.invariantViolation, "client user \(broken["email"] as String): \(broken["rule"] as String)")
        }
        return nil
    }
}
