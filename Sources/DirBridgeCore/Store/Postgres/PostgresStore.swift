import Foundation
import PostgresNIO

/// The portal store in a PostgreSQL database: the same tables, columns, rules, migrations
/// and transactions as the SQLite ``PortalStore``, with native `boolean`, `timestamptz`,
/// `jsonb` and `date` columns (see ``PostgresSchema``).
///
/// Several dirbridge processes, on one host or several, may share one PostgreSQL store: the
/// migrations run under an advisory lock, clients are created under one, and the lease rows
/// are locked by the transaction that checks them, so one client is synced by one process at
/// a time. The directory cache of incremental runs is kept as on SQLite.
public final class PostgresStore: PortalStorage {
    public let location: String
    let session: PostgresSession

    /// Connects to `url` and migrates the database (creating the tables on first use); with
    /// `migrating` false (the read-only views), only checks that the schema is this build's,
    /// so that a reporting role without CREATE can read and an empty database stays empty.
    public init(url: String, password: StorePasswordSource = StorePasswordSource(), migrating: Bool = true) throws(StoreError) {
        let address = try PostgresAddress(url: url, password: password)
        location = address.display
        session = try PostgresSession(address)
        if migrating { try migrate() } else { try checkSchema() }
    }

    /// Times as the SQLite store writes them (UTC ISO-8601 to the second), for reading.
    static func iso(_ column: String, as name: String? = nil) -> String {
        "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS \(name ?? column)"
    }

    /// Runs `body`, turning any error into a ``StoreError`` that names `context`.
    func operation<T>(_ context: String? = nil, _ body: () throws -> T) throws(StoreError) -> T {
        do {
            return try body()
        } catch {
            throw Self.storeError(error, context: context)
        }
    }

    /// A store error for a PostgreSQL failure: a rule's trigger, a duplicate, anything else.
    static func storeError(_ error: any Error, context: String? = nil) -> StoreError {
        if let storeError = error as? StoreError { return storeError }
        let prefix = context.map { "\($0): " } ?? ""
        guard let psql = error as? PSQLError else { return StoreError(.postgres, "\(prefix)\(error)") }
        let detail = PostgresSession.describe(psql)
        switch psql.serverInfo?[.sqlState] {
        case "P0001": return StoreError(.invariantViolation, "\(prefix)\(detail)")
        case "23505": return StoreError(.duplicate, "\(prefix)already exists (\(detail))")
        default: return StoreError(.postgres, "\(prefix)\(detail)")
        }
    }

    // MARK: migrations

    private func migrate() throws(StoreError) {
        try operation("migrating the portal store \(location)") {
            try session.transaction { db in
                // One migrating process at a time: several workers may start together.
                try db.execute("SELECT pg_advisory_xact_lock(hashtext('dirbridge-migrations'))")
                try db.execute(PostgresSchema.migrationsTable)
                let applied = Set(try db.rows("SELECT identifier FROM dirbridge_migrations").map { try $0.text("identifier") })
                let unknown = applied.subtracting(StoreSchema.knownIdentifiers)
                if !unknown.isEmpty { throw newerSchema(unknown) }
                for migration in PostgresSchema.migrations where !applied.contains(migration.identifier) {
                    try db.executeScript(migration.sql)
                    try db.execute("INSERT INTO dirbridge_migrations (identifier) VALUES ($1)", PostgresBindings([migration.identifier]))
                }
            }
        }
    }

    /// The migrations in the store that this build does not know: a newer dirbridge wrote it.
    private func newerSchema(_ unknown: Set<String>) -> StoreError {
        StoreError(.newerSchema, "the portal store \(location) was written by a newer dirbridge (migrations "
            + "\(unknown.sorted().joined(separator: ", ")) unknown to dirbridge \(DirBridge.version)): upgrade dirbridge")
    }

    /// For reading only: the schema must be there and be this build's.
    private func checkSchema() throws(StoreError) {
        let applied = try operation("reading the portal store \(location)") {
            try session.exclusive { db -> Set<String>? in
                guard try db.row("SELECT to_regclass('dirbridge_migrations') IS NOT NULL AS present")?.flag("present") == true else { return nil }
                return Set(try db.rows("SELECT identifier FROM dirbridge_migrations").map { try $0.text("identifier") })
            }
        }
        guard let applied else {
            throw StoreError(.missingStore, "no portal store in \(location) (no dirbridge tables): check --store; "
                + "a `dirbridge sync --apply` creates them, views never do")
        }
        let unknown = applied.subtracting(StoreSchema.knownIdentifiers)
        if !unknown.isEmpty { throw newerSchema(unknown) }
        let pending = StoreSchema.identifiers.filter { !applied.contains($0) }
        if !pending.isEmpty {
            throw StoreError(.cannotOpen, "the portal store \(location) lacks migrations \(pending.joined(separator: ", ")) of dirbridge "
                + "\(DirBridge.version), and views never migrate: run a `dirbridge sync --apply` with a role that may create "
                + "tables in it, then try again")
        }
    }

    public func appliedMigrations() throws(StoreError) -> [String] {
        try operation {
            try session.exclusive { db in
                try db.rows("SELECT identifier FROM dirbridge_migrations ORDER BY applied_at, identifier").map { try $0.text("identifier") }
            }
        }
    }

    // MARK: clients

    static let clientColumns = "id, name, parent_id, to_char(membership_end_date, 'YYYY-MM-DD') AS membership_end_date, active, \(iso("created_at"))"

    static func client(_ row: PostgresStoreRow) throws -> ClientRecord {
        ClientRecord(id: try row.int("id"), name: try row.text("name"), parentID: try row.optionalInt("parent_id"),
                     membershipEndDate: try row.optionalText("membership_end_date"), active: try row.flag("active"),
                     createdAt: try row.text("created_at"))
    }

    static func fetchClient(named name: String, db: PostgresSession.Statements) throws -> ClientRecord? {
        try db.row("SELECT \(clientColumns) FROM clients WHERE dirbridge_fold(name) = dirbridge_fold($1) ORDER BY name = $1 DESC, id LIMIT 1",
                   PostgresBindings([name])).map(client)
    }

    public func client(named name: String) throws(StoreError) -> ClientRecord? {
        try operation { try session.exclusive { try Self.fetchClient(named: name, db: $0) } }
    }

    public func clients() throws(StoreError) -> [ClientRecord] {
        try operation { try session.exclusive { try $0.rows("SELECT \(Self.clientColumns) FROM clients ORDER BY name").map(Self.client) } }
    }

    public func ensureClient(_ spec: ClientSpec, editor: String) throws(StoreError) -> ClientRecord {
        try operation("client \(spec.name)") {
            try session.transaction { db in try Self.ensureClient(spec, editor: editor, db: db) }
        }
    }

    /// ``ensureClient(_:editor:)`` inside an open transaction; clients are created one
    /// process at a time (an advisory lock per name), so two workers never both create one.
    static func ensureClient(_ spec: ClientSpec, editor: String, db: PostgresSession.Statements) throws -> ClientRecord {
        let now = Date()
        var parentID: Int64?
        if let parentName = spec.parentName {
            parentID = try ensureClient(named: parentName, parentID: nil, endDate: nil, updateFields: false, editor: editor, now: now, db: db).id
        }
        return try ensureClient(named: spec.name, parentID: parentID, endDate: spec.membershipEndDate, updateFields: true,
                                editor: editor, now: now, db: db)
    }

    private static func ensureClient(
        named name: String, parentID: Int64?, endDate: String?, updateFields: Bool, editor: String, now: Date,
        db: PostgresSession.Statements
    ) throws -> ClientRecord {
        try db.execute("SELECT pg_advisory_xact_lock(hashtext('dirbridge-client:' || dirbridge_fold($1)))", PostgresBindings([name]))
        if var existing = try fetchClient(named: name, db: db) {
            let parentID = parentID ?? existing.parentID
            let endDate = endDate ?? existing.membershipEndDate
            guard updateFields, existing.parentID != parentID || existing.membershipEndDate != endDate else { return existing }
            var changes: [ChangesJSON.Entry] = []
            if existing.parentID != parentID {
                changes.append(("parent_id", PortalStore.text(existing.parentID.map { String($0) }), PortalStore.text(parentID.map { String($0) })))
            }
            if existing.membershipEndDate != endDate {
                changes.append(("membership_end_date", PortalStore.text(existing.membershipEndDate), PortalStore.text(endDate)))
            }
            try db.execute("UPDATE clients SET parent_id = $1, membership_end_date = $2::date WHERE id = $3",
                           PostgresBindings([parentID, endDate, existing.id]))
            try insertHistory(db: db, clientID: existing.id, entity: "client", entityID: existing.id, action: .updated,
                              changes: ChangesJSON.object(changes), editor: editor, runID: nil, at: now)
            existing.parentID = parentID
            existing.membershipEndDate = endDate
            return existing
        }
        guard let clientID = try db.row(
            "INSERT INTO clients (name, parent_id, membership_end_date, active, created_at) VALUES ($1, $2, $3::date, true, $4) RETURNING id",
            PostgresBindings([name, parentID, endDate, now]))?.int("id")
        else { throw StoreError(.postgres, "inserting client \(name) returned no id") }
        try db.execute("""
            INSERT INTO user_groups (client_id, name, is_default, source, external_id, created_at)
            VALUES ($1, $2, true, 'portal', NULL, $3)
            """, PostgresBindings([clientID, defaultUserGroupName, now]))
        var changes: [ChangesJSON.Entry] = [("name", .null, .text(name)), ("active", .null, .flag(true))]
        if let parentID { changes.append(("parent_id", .null, .text(String(parentID)))) }
        if let endDate { changes.append(("membership_end_date", .null, .text(endDate))) }
        try insertHistory(db: db, clientID: clientID, entity: "client", entityID: clientID, action: .created,
                          changes: ChangesJSON.object(changes), editor: editor, runID: nil, at: now)
        return ClientRecord(id: clientID, name: name, parentID: parentID, membershipEndDate: endDate, active: true,
                            createdAt: StoreTime.text(now))
    }

    static func insertHistory(
        db: PostgresSession.Statements, clientID: Int64, entity: String, entityID: Int64, action: HistoryAction, changes: String,
        editor: String, runID: Int64?, at: Date, reason: String? = nil
    ) throws {
        try db.execute("""
            INSERT INTO history (client_id, entity, entity_id, action, changes, editor, run_id, at, reason)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)
            """, PostgresBindings([clientID, entity, entityID, action.rawValue, changes, editor, runID, at, reason]))
    }

    // MARK: state

    static let userGroupColumns = "id, client_id, name, is_default, source, external_id, \(iso("created_at"))"

    static func userGroup(_ row: PostgresStoreRow) throws -> StoredUserGroup {
        StoredUserGroup(id: try row.int("id"), clientID: try row.int("client_id"), name: try row.text("name"),
                        isDefault: try row.flag("is_default"), source: RecordSource(rawValue: try row.text("source")) ?? .portal,
                        externalID: try row.optionalText("external_id"), createdAt: try row.text("created_at"))
    }

    /// Every `client_users` column, the attributes' from the catalogue (``UserAttribute``).
    static func userColumns(of table: String? = nil) -> String {
        let prefix = table.map { $0 + "." } ?? ""
        return ((["id", "client_id"] + UserAttribute.allCases.map(\.column)).map { prefix + $0 }
            + [iso(prefix + "created_at", as: "created_at"), iso(prefix + "updated_at", as: "updated_at")]).joined(separator: ", ")
    }

    static func user(_ row: PostgresStoreRow) throws -> StoredUser {
        var fields = PortalFieldValues()
        for field in PortalField.allCases { fields[field] = try row.optionalText(field.rawValue) }
        let user = PortalUser(
            email: fields[.email] ?? "", fields: fields, role: try row.text(UserAttribute.role.column),
            globalAdmin: try row.flag(UserAttribute.globalAdmin.column), groupManager: try row.flag(UserAttribute.groupManager.column),
            hasLogin: try row.flag(UserAttribute.hasLogin.column), enabled: try row.flag(UserAttribute.enabled.column),
            source: RecordSource(rawValue: try row.text(UserAttribute.source.column)) ?? .portal,
            externalID: try row.optionalText(UserAttribute.externalID.column), externalDN: try row.optionalText(UserAttribute.externalDN.column))
        return StoredUser(id: try row.int("id"), clientID: try row.int("client_id"), userGroupID: try row.int("user_group_id"), user: user,
                          createdAt: try row.text("created_at"), updatedAt: try row.text("updated_at"))
    }

    public func loadState(clientID: Int64, sharing: StoredUserSharing?) throws(StoreError) -> ClientState {
        try operation("loading client \(clientID)") {
            try session.transaction("REPEATABLE READ") { db in try Self.readState(clientID: clientID, db: db, sharing: sharing) }
        }
    }

    static func readState(clientID: Int64, db: PostgresSession.Statements, locking: Bool = false, sharing: StoredUserSharing? = nil) throws -> ClientState {
        let lock = locking ? " FOR SHARE" : ""
        guard let client = try db.row("SELECT \(clientColumns) FROM clients WHERE id = $1", PostgresBindings([clientID])).map(client) else {
            throw StoreError(.unknownClient, "no client with id \(clientID) in the portal store")
        }
        let groups = try db.rows("SELECT \(userGroupColumns) FROM user_groups WHERE client_id = $1 ORDER BY id\(lock)", PostgresBindings([clientID]))
            .map(userGroup)
        // Taken here, not at the first row: the rows are shared on the connection's event loop.
        sharing?.indexed()
        let users = try db.values("SELECT \(userColumns()) FROM client_users WHERE client_id = $1 ORDER BY id\(lock)", PostgresBindings([clientID])) { row in
            var loaded = try user(row)
            sharing?.share(&loaded)
            return loaded
        }
        return ClientState(client: client, userGroups: groups, users: users)
    }

    public func changeCounter(clientID: Int64) throws(StoreError) -> Int64 {
        try operation("reading the change counter of client \(clientID)") {
            try session.exclusive { db in try Self.counter(clientID: clientID, db: db) }
        }
    }

    /// Inside a write transaction: creates the client's `store_changes` row if missing and
    /// locks it until the commit.
    static func lockCounter(clientID: Int64, db: PostgresSession.Statements) throws {
        try db.execute("INSERT INTO store_changes (client_id, counter) VALUES ($1, 0) ON CONFLICT (client_id) DO NOTHING", PostgresBindings([clientID]))
        try db.execute("SELECT counter FROM store_changes WHERE client_id = $1 FOR UPDATE", PostgresBindings([clientID]))
    }

    static func counter(clientID: Int64, db: PostgresSession.Statements) throws -> Int64 {
        try db.row("SELECT counter FROM store_changes WHERE client_id = $1", PostgresBindings([clientID]))?.int("counter") ?? 0
    }

    // MARK: runs

    public func recordRun(_ run: SyncRunRecord) throws(StoreError) -> Int64 {
        try operation("recording the sync run") {
            try session.transaction { db in
                let runID = try Self.insertRun(run, db: db)
                try db.execute("UPDATE sync_runs SET finished_at = $1, summary = $2::jsonb WHERE id = $3",
                               PostgresBindings([run.finishedAt ?? Date(), ChangesJSON.counts(run.summary), runID]))
                return runID
            }
        }
    }

    static func insertRun(_ run: SyncRunRecord, db: PostgresSession.Statements) throws -> Int64 {
        guard let id = try db.row("""
            INSERT INTO sync_runs (client_id, mapping, directory, mode, status, started_at, finished_at,
                                   summary, error, entries_read, plan_hash, incremental, dirbridge_version, worker)
            VALUES ($1, $2, $3, $4, $5, $6, NULL, '{}', $7, $8, $9, $10, $11, $12) RETURNING id
            """, PostgresBindings([run.clientID, run.mapping, run.directory, run.mode.rawValue, run.status.rawValue, run.startedAt,
                                   run.error, run.entriesRead.map(Int64.init), run.planHash, run.incremental, DirBridge.version,
                                   StoreSchema.worker]))?.int("id")
        else { throw StoreError(.postgres, "inserting the sync run returned no id") }
        return id
    }

    public func appliedRun(planHash: String) throws(StoreError) -> (id: Int64, finishedAt: String?)? {
        try operation("looking up sync runs") {
            try session.exclusive { db in
                try db.row("""
                    SELECT id, \(Self.iso("finished_at")) FROM sync_runs
                    WHERE plan_hash = $1 AND mode = 'apply' AND status = 'succeeded' ORDER BY id LIMIT 1
                    """, PostgresBindings([planHash])).map { (id: try $0.int("id"), finishedAt: try $0.optionalText("finished_at")) }
            }
        }
    }

    public func lastSync(clientID: Int64) throws(StoreError) -> LastSync? {
        try operation("looking up sync runs") {
            try session.exclusive { db in
                try db.row("""
                    SELECT id, started_at, worker FROM sync_runs
                    WHERE client_id = $1 AND mode = 'apply' AND status IN ('succeeded', 'refused') ORDER BY id DESC LIMIT 1
                    """, PostgresBindings([clientID])).map {
                    LastSync(runID: try $0.int("id"), startedAt: try $0.decode("started_at", as: Date.self), worker: try $0.optionalText("worker"))
                }
            }
        }
    }

    // MARK: leases

    static func leaseHolder(client: String, db: PostgresSession.Statements) throws -> LeaseHolder? {
        try leaseRow(client: client, db: db)?.holder
    }

    /// The lease row with whether it expired by the database's clock (workers on several
    /// hosts compare against one clock, not each their own).
    private static func leaseRow(client: String, db: PostgresSession.Statements) throws -> (holder: LeaseHolder, expired: Bool)? {
        try db.row("""
            SELECT holder, pid, host, process, \(iso("acquired_at")), \(iso("expires_at")), expires_at <= now() AS expired
            FROM leases WHERE dirbridge_fold(client) = dirbridge_fold($1)
            """, PostgresBindings([client])).map {
            (LeaseHolder(holder: try $0.text("holder"), pid: Int32(try $0.decode("pid", as: Int32.self)), host: try $0.text("host"),
                         acquiredAt: try $0.text("acquired_at"), expiresAt: try $0.text("expires_at"), process: try $0.optionalText("process")),
             try $0.decode("expired", as: Bool.self))
        }
    }

    public func tryLease(client: String, holder: String, ttl: TimeInterval) throws(StoreError) -> Result<StoreLease, LeaseError> {
        let token = UUID().uuidString
        let host = ProcessInfo.processInfo.hostName
        let result = try operation("taking the lease of client \(client)") {
            try session.transaction { db -> Result<Void, LeaseError> in
                // Lease attempts on one client queue here, whichever host they come from.
                try db.execute("SELECT pg_advisory_xact_lock(hashtext('dirbridge-lease:' || dirbridge_fold($1)))", PostgresBindings([client]))
                if let current = try Self.leaseRow(client: client, db: db), !current.expired, !current.holder.processIsGone {
                    return .failure(.held(client: client, by: current.holder))
                }
                try db.execute("DELETE FROM leases WHERE dirbridge_fold(client) = dirbridge_fold($1)", PostgresBindings([client]))
                try db.execute("""
                    INSERT INTO leases (client, holder, token, pid, host, process, acquired_at, expires_at)
                    VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), clock_timestamp() + make_interval(secs => $7))
                    """, PostgresBindings([client, holder, token, Int32(getpid()), host, LeaseHolder.currentProcess, ttl]))
                return .success(())
            }
        }
        // Built once the transaction committed: a lease object whose row never landed would
        // give it back from inside the failed transaction's lock.
        return result.map { StoreLease(store: self, client: client, token: token) }
    }

    /// Inside a write transaction: locks the lease row until the commit and throws unless it
    /// is still this lease's (a fencing token), so a run that lost its lease writes nothing.
    static func verify(_ lease: StoreLease, db: PostgresSession.Statements) throws {
        let token = try db.row("SELECT token FROM leases WHERE dirbridge_fold(client) = dirbridge_fold($1) FOR UPDATE", PostgresBindings([lease.client]))?
            .text("token")
        guard token == lease.token else {
            throw StoreLease.lost(client: lease.client, holder: try leaseHolder(client: lease.client, db: db))
        }
    }

    public func releaseLease(client: String, token: String) {
        _ = try? session.exclusive { db in
            try db.execute("DELETE FROM leases WHERE dirbridge_fold(client) = dirbridge_fold($1) AND token = $2", PostgresBindings([client, token]))
        }
    }

    public func renewLease(client: String, token: String, ttl: TimeInterval) throws {
        try session.transaction { db in
            let changed = try db.execute("UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $1) WHERE dirbridge_fold(client) = dirbridge_fold($2) AND token = $3",
                                         PostgresBindings([ttl, client, token]))
            if changed != 1 { throw StoreLease.lost(client: client, holder: try Self.leaseHolder(client: client, db: db)) }
        }
    }

    public func releaseOwnLease(client: String) throws(StoreError) {
        _ = try operation("releasing the lease of client \(client)") {
            try session.exclusive { db in
                try db.execute("DELETE FROM leases WHERE dirbridge_fold(client) = dirbridge_fold($1) AND pid = $2 AND host = $3 AND (process IS NULL OR process = $4)",
                               PostgresBindings([client, Int32(getpid()), ProcessInfo.processInfo.hostName, LeaseHolder.currentProcess]))
            }
        }
    }

    public func leaseHolder(client: String) throws(StoreError) -> LeaseHolder? {
        try operation("reading the lease of client \(client)") { try session.exclusive { try Self.leaseHolder(client: client, db: $0) } }
    }
}
