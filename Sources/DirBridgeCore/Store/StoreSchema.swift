import Foundation
import GRDB

/// The portal store's schema: the portal's tables (clients, user_groups, client_users, history, invitations, sync_runs; their columns are a contract others read) and dirbridge's own additions,
/// as GRDB migrations applied in order.
///
/// Migrations are append-only: a released identifier is never edited or removed, so a store
/// written by an older dirbridge opens with a newer one. A store that holds an identifier
/// this build does not know was written by a newer dirbridge and is refused.
public enum StoreSchema {
    /// The portal's own tables: clients, user groups, client users, history, invitations,
    /// sync runs, with their uniqueness rules.
    public static let portalSchema = "v1-portal-schema"
    /// dirbridge's additions: history reasons, sync run details, sync state, leases, and
    /// the triggers that enforce the portal's flag rules on every write.
    public static let dirbridgeExtras = "v2-dirbridge-extras"

    /// Scheduled and incremental sync: the sync state and the lease keyed by client name
    /// (a first run holds the lease before its client exists), and the directory cache that
    /// incremental runs patch.
    public static let incrementalSync = "v3-incremental-sync"

    /// Planning only what changed: the directory cache's lookup columns (external id, DN,
    /// email) and `store_touches`, the log of portal-side edits since the last incremental apply.
    public static let affectedPlanning = "v4-affected-planning"

    /// Several workers: `sync_runs.worker`, the process (`host:pid`) that ran each sync.
    public static let workers = "v5-workers"

    /// Leases name the holder's process beyond `host` and `pid`: the boot and the PID
    /// namespace (`leases.process`), so that containers sharing a host name are told apart.
    public static let leaseProcess = "v6-lease-process"

    /// Indexes that count a client's users for the guards of an incremental run: directory
    /// users, enabled or not, and enabled Global Admins (``populationIndexesSQL``).
    public static let populationIndexes = "v7-population-indexes"

    /// Every migration identifier this build knows, in order.
    public static let identifiers = [portalSchema, dirbridgeExtras, incrementalSync, affectedPlanning, workers, leaseProcess, populationIndexes]
    public static let knownIdentifiers = Set(identifiers)


    /// The message of the trigger refusing Global Admin outside the Default User Group.
    public static let globalAdminRule =
        "Global Admin may only be set on a user of the client's Default User Group"
    /// The message of the trigger refusing Group Manager outside a custom user group.
    public static let groupManagerRule =
        "Group Manager may only be set on a user of a custom user group"
    /// The message of the trigger refusing a user group of another client.
    public static let sameClientRule =
        "a client user's user group must belong to the same client"
    /// The message of the trigger refusing to change which group is the default one.
    public static let defaultGroupRule =
        "a user group cannot change client or whether it is the Default User Group"

    /// An SQL string literal for a constant message (quotes doubled).
    private static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// The body of the triggers that keep a client user's group, Global Admin and Group
    /// Manager consistent, on insert and on update.
    private static let clientUserRules = """
        BEGIN
            SELECT RAISE(ABORT, \(literal(sameClientRule)))
            WHERE NOT EXISTS (SELECT 1 FROM user_groups
                              WHERE id = NEW.user_group_id AND client_id = NEW.client_id);
            SELECT RAISE(ABORT, \(literal(globalAdminRule)))
            WHERE NEW.global_admin = 1
              AND NOT EXISTS (SELECT 1 FROM user_groups
                              WHERE id = NEW.user_group_id AND is_default = 1);
            SELECT RAISE(ABORT, \(literal(groupManagerRule)))
            WHERE NEW.group_manager = 1
              AND NOT EXISTS (SELECT 1 FROM user_groups
                              WHERE id = NEW.user_group_id AND is_default = 0);
        END;
        """

    /// The migrator with every migration this build knows, in order.
    public static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        registerPortalSchema(in: &migrator)
        registerDirbridgeExtras(in: &migrator)
        registerIncrementalSync(in: &migrator)
        registerAffectedPlanning(in: &migrator)
        migrator.registerMigration(workers) { db in try db.execute(sql: workersSQL) }
        migrator.registerMigration(leaseProcess) { db in try db.execute(sql: leaseProcessSQL) }
        migrator.registerMigration(populationIndexes) { db in try db.execute(sql: populationIndexesSQL) }
        return migrator
    }

    /// Registers the first migration only; tests use it to build a store as an older
    /// dirbridge would have left it.
    public static func registerPortalSchema(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(portalSchema) { db in
            try db.execute(sql: """
                CREATE TABLE clients (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL UNIQUE,
                    parent_id INTEGER REFERENCES clients(id),
                    membership_end_date TEXT,
                    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
                    created_at TEXT NOT NULL
                );
                CREATE TABLE user_groups (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    client_id INTEGER NOT NULL REFERENCES clients(id),
                    name TEXT NOT NULL,
                    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
                    source TEXT NOT NULL DEFAULT 'portal' CHECK (source IN ('directory', 'portal')),
                    external_id TEXT,
                    created_at TEXT NOT NULL,
                    CHECK (is_default = 0 OR name = 'Default User Group')
                );
                CREATE UNIQUE INDEX user_groups_client_name
                    ON user_groups(client_id, name COLLATE NOCASE);
                CREATE UNIQUE INDEX user_groups_one_default
                    ON user_groups(client_id) WHERE is_default = 1;
                CREATE UNIQUE INDEX user_groups_client_external_id
                    ON user_groups(client_id, external_id) WHERE external_id IS NOT NULL;
                CREATE TABLE client_users (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    client_id INTEGER NOT NULL REFERENCES clients(id),
                    email TEXT NOT NULL,
                    first_name TEXT,
                    last_name TEXT,
                    title TEXT,
                    cell_phone TEXT,
                    office_phone TEXT,
                    extension TEXT,
                    location TEXT,
                    role TEXT NOT NULL DEFAULT 'Guest',
                    user_group_id INTEGER NOT NULL REFERENCES user_groups(id),
                    global_admin INTEGER NOT NULL DEFAULT 0 CHECK (global_admin IN (0, 1)),
                    group_manager INTEGER NOT NULL DEFAULT 0 CHECK (group_manager IN (0, 1)),
                    has_login INTEGER NOT NULL DEFAULT 0 CHECK (has_login IN (0, 1)),
                    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
                    source TEXT NOT NULL DEFAULT 'portal' CHECK (source IN ('directory', 'portal')),
                    external_id TEXT,
                    external_dn TEXT,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                );
                CREATE UNIQUE INDEX client_users_client_email
                    ON client_users(client_id, email COLLATE NOCASE);
                CREATE UNIQUE INDEX client_users_client_external_id
                    ON client_users(client_id, external_id) WHERE external_id IS NOT NULL;
                CREATE INDEX client_users_user_group ON client_users(user_group_id);
                CREATE TABLE sync_runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    client_id INTEGER REFERENCES clients(id),
                    mapping TEXT NOT NULL,
                    directory TEXT NOT NULL,
                    mode TEXT NOT NULL CHECK (mode IN ('dry-run', 'apply')),
                    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'refused')),
                    started_at TEXT NOT NULL,
                    finished_at TEXT,
                    summary TEXT NOT NULL DEFAULT '{}',
                    error TEXT
                );
                CREATE TABLE history (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    client_id INTEGER NOT NULL REFERENCES clients(id),
                    entity TEXT NOT NULL CHECK (entity IN ('user', 'user_group', 'client')),
                    entity_id INTEGER NOT NULL,
                    action TEXT NOT NULL,
                    changes TEXT NOT NULL DEFAULT '{}',
                    editor TEXT NOT NULL,
                    run_id INTEGER REFERENCES sync_runs(id),
                    at TEXT NOT NULL
                );
                CREATE INDEX history_entity ON history(client_id, entity, entity_id);
                CREATE INDEX history_run ON history(run_id);
                CREATE TABLE invitations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    client_id INTEGER NOT NULL REFERENCES clients(id),
                    user_id INTEGER NOT NULL REFERENCES client_users(id),
                    email TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    sent_at TEXT
                );
                CREATE INDEX invitations_user ON invitations(user_id);
                """)
        }
    }

    /// Registers the second migration: dirbridge's columns, tables and triggers.
    static func registerDirbridgeExtras(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(dirbridgeExtras) { db in
            try db.execute(sql: """
                ALTER TABLE history ADD COLUMN reason TEXT;
                ALTER TABLE sync_runs ADD COLUMN entries_read INTEGER;
                ALTER TABLE sync_runs ADD COLUMN plan_hash TEXT;
                ALTER TABLE sync_runs ADD COLUMN incremental INTEGER NOT NULL DEFAULT 0
                    CHECK (incremental IN (0, 1));
                ALTER TABLE sync_runs ADD COLUMN dirbridge_version TEXT;
                CREATE INDEX sync_runs_client ON sync_runs(client_id, id);
                CREATE TABLE sync_state (
                    client_id INTEGER NOT NULL REFERENCES clients(id),
                    key TEXT NOT NULL,
                    value TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    PRIMARY KEY (client_id, key)
                );
                CREATE TABLE leases (
                    client_id INTEGER PRIMARY KEY REFERENCES clients(id),
                    holder TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    host TEXT NOT NULL,
                    acquired_at TEXT NOT NULL,
                    expires_at TEXT NOT NULL
                );
                CREATE TRIGGER client_users_rules_on_insert BEFORE INSERT ON client_users
                \(clientUserRules)
                CREATE TRIGGER client_users_rules_on_update
                BEFORE UPDATE OF client_id, user_group_id, global_admin, group_manager ON client_users
                \(clientUserRules)
                CREATE TRIGGER user_groups_default_is_fixed
                BEFORE UPDATE OF is_default, client_id ON user_groups
                WHEN NEW.is_default <> OLD.is_default OR NEW.client_id <> OLD.client_id
                BEGIN
                    SELECT RAISE(ABORT, \(literal(defaultGroupRule)));
                END;
                """)
        }
    }

    /// Registers the third migration. `sync_state` and `leases` of v2 were never written by
    /// a release, so they are replaced by tables keyed by client name.
    static func registerIncrementalSync(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(incrementalSync) { db in
            try db.execute(sql: """
                DROP TABLE sync_state;
                DROP TABLE leases;
                CREATE TABLE sync_state (
                    client TEXT NOT NULL COLLATE NOCASE,
                    key TEXT NOT NULL,
                    value TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    PRIMARY KEY (client, key)
                );
                CREATE TABLE leases (
                    client TEXT PRIMARY KEY COLLATE NOCASE,
                    holder TEXT NOT NULL,
                    token TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    host TEXT NOT NULL,
                    acquired_at TEXT NOT NULL,
                    expires_at TEXT NOT NULL
                );
                CREATE TABLE directory_cache (
                    client TEXT NOT NULL COLLATE NOCASE,
                    kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),
                    key TEXT NOT NULL,
                    entry BLOB NOT NULL,
                    PRIMARY KEY (client, kind, key)
                ) WITHOUT ROWID;
                CREATE TABLE store_changes (
                    client_id INTEGER PRIMARY KEY,
                    counter INTEGER NOT NULL
                );
                """)
            // Every write to a client's users or user groups, by dirbridge, the portal or plain
            // SQL, bumps the client's counter: an incremental run that finds the directory and
            // the counter unchanged since its last apply knows its plan is empty.
            for table in ["client_users", "user_groups"] {
                for (event, rows) in [("INSERT", ["NEW"]), ("UPDATE", ["NEW", "OLD"]), ("DELETE", ["OLD"])] {
                    // An update that moves a row to another client counts for both clients.
                    let bumps = rows.map { row in
                        """
                        INSERT INTO store_changes (client_id, counter) SELECT \(row).client_id, 1
                        WHERE \(row == "OLD" && event == "UPDATE" ? "OLD.client_id <> NEW.client_id" : "1")
                        ON CONFLICT (client_id) DO UPDATE SET counter = counter + 1;
                        """
                    }.joined(separator: "\n")
                    try db.execute(sql: """
                        CREATE TRIGGER \(table)_counted_\(event.lowercased()) AFTER \(event) ON \(table)
                        BEGIN
                        \(bumps)
                        END;
                        """)
                }
            }
        }
    }

    /// The fifth migration, the same on both stores.
    static let workersSQL = "ALTER TABLE sync_runs ADD COLUMN worker TEXT"

    /// The sixth migration, the same on both stores (PostgreSQL adds indexes to it).
    static let leaseProcessSQL = "ALTER TABLE leases ADD COLUMN process TEXT"

    /// The seventh migration (PostgreSQL's booleans spell the admins' condition its own way).
    ///
    /// An incremental run loads only the users a change can affect, but its guards count the
    /// whole client (``ClientPopulation``). Counted from the table, that read every row. From
    /// these indexes the directory users are a range of a narrow index and the enabled Global
    /// Admins a handful of entries. At 100k users (alternating runs on one host), the plan stage
    /// of a run after 120 changes went from 0.048–0.059 s to 0.016–0.018 s, the whole run from
    /// 0.20–0.21 s to 0.16–0.18 s. The price is on inserts: a first sync's write stage took
    /// 0.06–0.11 s longer (of about 2.2 s), though its rows all share one key of the first index
    /// and so go in at its end.
    static let populationIndexesSQL = """
        CREATE INDEX client_users_population ON client_users(client_id, source, enabled);
        CREATE INDEX client_users_enabled_admins ON client_users(client_id) WHERE global_admin = 1 AND enabled = 1;
        """

    /// The counts of ``ClientPopulation`` for client `?1`, each from the indexes of ``populationIndexesSQL``.
    static let populationSQL = """
        SELECT (SELECT COUNT(*) FROM client_users WHERE client_id = ?1 AND source = 'directory' AND enabled = 1) AS enabled_directory,
               (SELECT COUNT(*) FROM client_users WHERE client_id = ?1 AND source = 'directory') AS directory,
               (SELECT COUNT(*) FROM client_users WHERE client_id = ?1 AND global_admin = 1 AND enabled = 1) AS admins
        """

    /// The worker a run records: `host:pid`.
    static var worker: String { "\(ProcessInfo.processInfo.hostName):\(getpid())" }

    /// Registers the fourth migration: what lets an incremental run plan only the users a
    /// change can affect.
    ///
    /// - `directory_cache` gains a user entry's external id, normalised DN and mapped email
    ///   (lowercased), so that a changed group's members, a portal-edited user's entry and an
    ///   email that two entries share are found without reading the whole cache.
    /// - `store_touches` logs every update or deletion of a client user or user group, by
    ///   dirbridge, the portal or plain SQL. An incremental apply empties its client's log in
    ///   its transaction, so the log holds exactly the edits made since. Inserts are not
    ///   logged: a new row cannot change the plan of a directory user already linked by its
    ///   external id (ids and emails are unique per client).
    static func registerAffectedPlanning(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(affectedPlanning) { db in
            try db.execute(sql: """
                ALTER TABLE directory_cache ADD COLUMN external_id TEXT;
                ALTER TABLE directory_cache ADD COLUMN dn TEXT;
                ALTER TABLE directory_cache ADD COLUMN email TEXT;
                CREATE INDEX directory_cache_external_id ON directory_cache(client, external_id) WHERE external_id IS NOT NULL;
                CREATE INDEX directory_cache_dn ON directory_cache(client, dn) WHERE dn IS NOT NULL;
                CREATE INDEX directory_cache_email ON directory_cache(client, email) WHERE email IS NOT NULL;
                CREATE TABLE store_touches (
                    client_id INTEGER NOT NULL,
                    entity TEXT NOT NULL CHECK (entity IN ('user', 'user_group')),
                    entity_id INTEGER NOT NULL,
                    external_id TEXT
                );
                CREATE INDEX store_touches_client ON store_touches(client_id);
                CREATE TRIGGER client_users_touched_update AFTER UPDATE ON client_users
                BEGIN
                    INSERT INTO store_touches (client_id, entity, entity_id, external_id)
                    VALUES (OLD.client_id, 'user', OLD.id, OLD.external_id);
                    INSERT INTO store_touches (client_id, entity, entity_id, external_id)
                    SELECT NEW.client_id, 'user', NEW.id, NEW.external_id
                    WHERE NEW.client_id <> OLD.client_id OR NEW.external_id IS NOT OLD.external_id;
                END;
                CREATE TRIGGER client_users_touched_delete AFTER DELETE ON client_users
                BEGIN
                    INSERT INTO store_touches (client_id, entity, entity_id, external_id)
                    VALUES (OLD.client_id, 'user', OLD.id, OLD.external_id);
                END;
                CREATE TRIGGER user_groups_touched_update AFTER UPDATE ON user_groups
                BEGIN
                    INSERT INTO store_touches (client_id, entity, entity_id) VALUES (OLD.client_id, 'user_group', OLD.id);
                END;
                CREATE TRIGGER user_groups_touched_delete AFTER DELETE ON user_groups
                BEGIN
                    INSERT INTO store_touches (client_id, entity, entity_id) VALUES (OLD.client_id, 'user_group', OLD.id);
                END;
                """)
        }
    }
}
