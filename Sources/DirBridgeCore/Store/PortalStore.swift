import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// The portal's SQLite store: opens (or creates) the file, migrates it, and is the only way
/// dirbridge reads and writes the portal's tables.
///
/// It owns a GRDB `DatabasePool` (WAL mode, foreign keys on) and is safe to share between
/// tasks. Every write runs in one transaction: it is written whole or not at all. The
/// portal's rules (Global Admin only in the Default User Group, Group Manager only in a
/// custom group) are SQLite triggers, so they hold for the portal's own writes too.
///
/// ```swift
/// let store = try PortalStore(path: "portal.sqlite")
/// let client = try store.ensureClient(ClientSpec(name: "Acme Corp"))
/// let state = try store.loadState(clientID: client.id)
/// ```
public final class PortalStore: PortalStorage, DirectoryCacheStoring {
    /// The store file's path.
    public let path: String
    public var location: String { path }
    let pool: DatabasePool

    /// Opens the store at `path`, creating it when `createIfMissing` (read-only views pass
    /// false and get a ``StoreError/Code/missingStore`` error instead), and migrates it.
    ///
    /// A store migrated by a newer dirbridge is refused (``StoreError/Code/newerSchema``).
    public init(path: String, createIfMissing: Bool = true) throws(StoreError) {
        self.path = path
        if !createIfMissing && !FileManager.default.fileExists(atPath: path) {
            throw StoreError(.missingStore, "no portal store at \(path): check --store (views never create a store)")
        }
        let opening = try StoreOpening(path: path, createIfMissing: createIfMissing)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = "dirbridge.store"
        configuration.prepareDatabase { db in
            // 16 MB of page cache. A larger apply spills its pages to the WAL before it commits,
            // which costs no time at 100k users: 32 MB only added 16 MB to a first sync's peak.
            // A larger apply gets more for its transaction (``PageCache/kilobytes(forRows:)``).
            try db.execute(sql: "PRAGMA cache_size = -\(PageCache.defaultKilobytes)")
            // Statement journals in memory: every insert with triggers and foreign keys keeps one,
            // and on disk a 100k-user apply wrote 2.2 GB to it (a few pages per statement, rewritten).
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        do {
            pool = try opening.retryingBusy { try DatabasePool(path: path, configuration: configuration) }
        } catch {
            let detail = (error as? DatabaseError)?.message ?? "\(error)"
            throw StoreError(.cannotOpen, "cannot open the portal store \(path): \(detail)")
        }
        let migrator = StoreSchema.migrator
        let unknown = try storeOperation("reading the migrations of \(path)") {
            try opening.retryingBusy {
                try pool.read { db in try migrator.appliedIdentifiers(db).subtracting(StoreSchema.knownIdentifiers) }
            }
        }
        if !unknown.isEmpty {
            throw StoreError(
                .newerSchema,
                "the portal store \(path) was written by a newer dirbridge (migrations "
                    + "\(unknown.sorted().joined(separator: ", ")) unknown to dirbridge \(DirBridge.version)): "
                    + "upgrade dirbridge")
        }
        try storeOperation("migrating the portal store \(path)") { try opening.retryingBusy { try migrator.migrate(pool) } }
    }

    /// The migrations applied to this store, in order.
    public func appliedMigrations() throws(StoreError) -> [String] {
        try storeOperation { try pool.read { try StoreSchema.migrator.appliedMigrations($0) } }
    }

    // MARK: - Clients

    /// The client with this name (exact match first, then case-insensitive), or nil.
    public func client(named name: String) throws(StoreError) -> ClientRecord? {
        try storeOperation { try pool.read { try Self.fetchClient(named: name, db: $0) } }
    }

    /// Every client, by name.
    public func clients() throws(StoreError) -> [ClientRecord] {
        try storeOperation {
            try pool.read { db in
                try ClientRecord.order(ClientRecord.Columns.name).fetchAll(db)
            }
        }
    }

    /// The client a mapping names (matched case-insensitively), created with its Default
    /// User Group (and its parent, if missing) on first use; a changed membership end date
    /// or parent is updated, one left out of the spec is kept.
    ///
    /// Each creation or update writes a `history` row (entity `client`, no run).
    public func ensureClient(_ spec: ClientSpec, editor: String) throws(StoreError) -> ClientRecord {
        try storeOperation("client \(spec.name)") {
            try pool.write { db in try Self.ensureClient(spec, editor: editor, db: db) }
        }
    }

    /// ``ensureClient(_:editor:)`` inside an open transaction (an apply creating its client).
    static func ensureClient(_ spec: ClientSpec, editor: String, db: Database) throws -> ClientRecord {
        let now = StoreTime.text(Date())
        var parentID: Int64?
        if let parentName = spec.parentName {
            parentID = try ensureClient(named: parentName, parentID: nil, endDate: nil,
                                        updateFields: false, editor: editor, now: now, db: db).id
        }
        return try ensureClient(named: spec.name, parentID: parentID, endDate: spec.membershipEndDate,
                                updateFields: true, editor: editor, now: now, db: db)
    }

    private static func ensureClient(
        named name: String, parentID: Int64?, endDate: String?, updateFields: Bool, editor: String,
        now: String, db: Database
    ) throws -> ClientRecord {
        if var existing = try fetchClient(named: name, db: db) {
            // A spec that leaves the parent or end date out keeps the stored one.
            let parentID = parentID ?? existing.parentID
            let endDate = endDate ?? existing.membershipEndDate
            guard updateFields, existing.parentID != parentID || existing.membershipEndDate != endDate else {
                return existing
            }
            var changes: [ChangesJSON.Entry] = []
            if existing.parentID != parentID {
                changes.append(("parent_id", text(existing.parentID.map { String($0) }), text(parentID.map { String($0) })))
            }
            if existing.membershipEndDate != endDate {
                changes.append(("membership_end_date", text(existing.membershipEndDate), text(endDate)))
            }
            try db.execute(
                sql: "UPDATE clients SET parent_id = ?, membership_end_date = ? WHERE id = ?",
                arguments: [parentID, endDate, existing.id])
            try insertHistory(
                db: db, clientID: existing.id, entity: "client", entityID: existing.id, action: .updated,
                changes: ChangesJSON.object(changes), editor: editor, runID: nil, at: now, reason: nil)
            existing.parentID = parentID
            existing.membershipEndDate = endDate
            return existing
        }
        try db.execute(
            sql: "INSERT INTO clients (name, parent_id, membership_end_date, active, created_at) VALUES (?, ?, ?, 1, ?)",
            arguments: [name, parentID, endDate, now])
        let clientID = db.lastInsertedRowID
        try db.execute(
            sql: """
                INSERT INTO user_groups (client_id, name, is_default, source, external_id, created_at)
                VALUES (?, ?, 1, 'portal', NULL, ?)
                """,
            arguments: [clientID, defaultUserGroupName, now])
        var changes: [ChangesJSON.Entry] = [("name", .null, .text(name)), ("active", .null, .flag(true))]
        if let parentID { changes.append(("parent_id", .null, .text(String(parentID)))) }
        if let endDate { changes.append(("membership_end_date", .null, .text(endDate))) }
        try insertHistory(
            db: db, clientID: clientID, entity: "client", entityID: clientID, action: .created,
            changes: ChangesJSON.object(changes), editor: editor, runID: nil, at: now, reason: nil)
        return ClientRecord(id: clientID, name: name, parentID: parentID, membershipEndDate: endDate, active: true,
                            createdAt: now)
    }

    // MARK: - State

    /// Every user group and client user of a client, read in one transaction.
    ///
    /// Rows are read with cursors, so 100,000 users cost one query, not one per user.
    public func loadState(clientID: Int64, sharing: StoredUserSharing?) throws(StoreError) -> ClientState {
        try storeOperation("loading client \(clientID)") {
            try pool.read { db in try Self.readState(clientID: clientID, db: db, sharing: sharing) }
        }
    }

    /// ``loadState(clientID:sharing:)`` inside a transaction the caller holds.
    static func readState(clientID: Int64, db: Database, sharing: StoredUserSharing? = nil) throws -> ClientState {
        guard let client = try ClientRecord.fetchOne(db, key: clientID) else {
            throw StoreError(.unknownClient, "no client with id \(clientID) in the portal store")
        }
        let groups = try StoredUserGroup.filter(StoredUserGroup.Columns.clientID == clientID).order(StoredUserGroup.Columns.id).fetchAll(db)
        var users: [StoredUser] = []
        // The client's rows in id order. Where they lie mostly together (a client's users are
        // mostly created by its first sync), a scan of their id range takes them in table order,
        // skipping other clients' rows: 100k users load in about half the time of the email
        // index, whose rows must be fetched one by one and sorted.
        let span = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS count, MIN(id) AS low, MAX(id) AS high FROM client_users WHERE client_id = ?",
                                    arguments: [clientID])
        let count: Int64 = span?["count"] ?? 0
        users.reserveCapacity(Int(count))
        let selection = "SELECT \(StoredUser.orderedSelection) FROM client_users"
        let statement: Statement
        let arguments: StatementArguments
        if let low: Int64 = span?["low"], let high: Int64 = span?["high"], count * 2 >= high - low + 1 {
            statement = try db.makeStatement(sql: "\(selection) WHERE +client_id = ? AND id BETWEEN ? AND ? ORDER BY id")
            arguments = [clientID, low, high]
        } else {
            statement = try db.makeStatement(sql: "\(selection) WHERE client_id = ? ORDER BY id")
            arguments = [clientID]
        }
        let rows = try Row.fetchCursor(statement, arguments: arguments)
        if let sharing {
            try readSharing(rows, of: statement, into: &users, sharing: sharing)
        } else {
            while let row = try rows.next() { users.append(StoredUser(orderedRow: row)) }
        }
        return ClientState(client: client, userGroups: groups, users: users)
    }

    /// Rows read per chunk whose values are shared on another thread while this one reads the next.
    static let sharingChunk = 4_096

    /// Reads the rows of `statement` (stepped by `rows`) into `users`, each user's values shared
    /// with `sharing`.
    ///
    /// This thread only copies each chunk's column bytes out of SQLite (``StoredUserRows``); the
    /// chunk's users are made on another thread while this one reads the next chunk, and a
    /// value with the bytes of one the directory holds takes its storage there, without a String
    /// of its own. Made here, the Strings were most of a full resync's load (100k users: about a
    /// String allocation per column, most freed on the sharing thread, contending for this
    /// thread's allocator lock). One chunk is shared at a time (the sharing is used by one
    /// thread at a time, in row order), and the users keep the rows' order.
    private static func readSharing(_ rows: RowCursor, of statement: Statement, into users: inout [StoredUser], sharing: StoredUserSharing) throws {
        #if canImport(Glibc)
        // The users are made on other threads, whose malloc arenas cannot reuse what the read
        // freed in this thread's: glibc's malloc_trim gives those pages back to the system first
        // (a 1M no-op resync peaked 105 MB higher without it; at 100k nothing changes). Found at
        // run time: Swift's Glibc module does not declare it.
        if let trim = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            _ = unsafeBitCast(trim, to: (@convention(c) (Int) -> Int32).self)(0)
        }
        #endif
        // Each chunk's users go straight into the one array: an array per chunk, appended here,
        // retained every field of every user and freed each chunk: about 40% of this thread's
        // samples in the load of a 100k no-op resync (287 → 179 with this).
        let loaded = LoadedUsers()
        swap(&loaded.users, &users)
        defer { swap(&users, &loaded.users) }
        var chunk = StoredUserRows(capacity: sharingChunk)
        var pending: Background<Void>?
        do {
            while try rows.next() != nil {
                chunk.append(statement.sqliteStatement)
                guard chunk.count == sharingChunk else { continue }
                pending?.value()
                pending = Background(chunk) { sharing.append($0, to: &loaded.users) }
                chunk = StoredUserRows(capacity: sharingChunk)
            }
        } catch {
            // No job outlives the load.
            pending?.value()
            throw error
        }
        pending?.value()
        sharing.append(chunk, to: &loaded.users)
    }

    /// The users a load has made so far, appended to by one sharing job at a time (each starts
    /// after the one before has finished, and the loading thread reads them after the last).
    private final class LoadedUsers: @unchecked Sendable {
        var users: [StoredUser] = []
    }

    /// The part of a client's state that an affected-only plan needs, in one transaction:
    /// every user group; the users with one of `externalIDs` (directory users), one of `emails`
    /// (any case) or one of `userIDs`; the whole-client figures the guards count against; and
    /// the portal-side edits logged since the last incremental apply.
    func loadPartialState(clientID: Int64, externalIDs: Set<String>, emails: Set<String>, userIDs: Set<Int64>) throws(StoreError) -> PartialClientState {
        try storeOperation("loading part of client \(clientID)") {
            try pool.read { db in
                guard let client = try ClientRecord.fetchOne(db, key: clientID) else {
                    throw StoreError(.unknownClient, "no client with id \(clientID) in the portal store")
                }
                let groups = try StoredUserGroup.filter(StoredUserGroup.Columns.clientID == clientID).order(StoredUserGroup.Columns.id).fetchAll(db)
                var users: [Int64: StoredUser] = [:]
                let base = "SELECT \(StoredUser.orderedSelection) FROM client_users WHERE client_id = ?"
                let add = { (row: Row) in
                    let user = StoredUser(orderedRow: row)
                    users[user.id] = user
                }
                try Self.inChunks(Array(externalIDs), db: db, sql: base, column: "external_id", arguments: [clientID], each: add)
                try Self.inChunks(Array(emails), db: db, sql: base, column: "email COLLATE NOCASE", arguments: [clientID], each: add)
                try Self.inChunks(Array(userIDs), db: db, sql: base, column: "id", arguments: [clientID], each: add)
                let population = try Row.fetchOne(db, sql: StoreSchema.populationSQL, arguments: [clientID])
                let state = ClientState(client: client, userGroups: groups, users: users.values.sorted { $0.id < $1.id })
                return PartialClientState(
                    state: state,
                    population: ClientPopulation(enabledDirectoryUsers: population?["enabled_directory"] ?? 0,
                                                 directoryUsers: population?["directory"] ?? 0,
                                                 enabledGlobalAdmins: population?["admins"] ?? 0))
            }
        }
    }

    /// The portal-side edits logged since the client's last incremental apply: the users
    /// updated or deleted (id and external id before and after), and whether a user group was.
    func touches(clientID: Int64) throws(StoreError) -> StoreTouches {
        try storeOperation("reading the edits of client \(clientID)") {
            try pool.read { db in
                var touches = StoreTouches()
                let rows = try Row.fetchCursor(db, sql: "SELECT entity, entity_id, external_id FROM store_touches WHERE client_id = ?", arguments: [clientID])
                while let row = try rows.next() {
                    if (row["entity"] as String) == "user_group" {
                        touches.userGroups = true
                    } else {
                        touches.userIDs.insert(row["entity_id"])
                        if let id: String = row["external_id"] { touches.externalIDs.insert(id) }
                    }
                }
                return touches
            }
        }
    }

    // MARK: - Sync runs

    /// Records a run that wrote nothing else (a dry run, a refused or failed run); returns
    /// its id.
    public func recordRun(_ run: SyncRunRecord) throws(StoreError) -> Int64 {
        try storeOperation("recording the sync run") {
            try pool.write { db in
                let runID = try Self.insertRun(run, db: db)
                try db.execute(
                    sql: "UPDATE sync_runs SET finished_at = ?, summary = ? WHERE id = ?",
                    arguments: [StoreTime.text(run.finishedAt ?? Date()), ChangesJSON.counts(run.summary), runID])
                return runID
            }
        }
    }

    static func insertRun(_ run: SyncRunRecord, db: Database) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO sync_runs (client_id, mapping, directory, mode, status, started_at, finished_at,
                                       summary, error, entries_read, plan_hash, incremental, dirbridge_version, worker)
                VALUES (?, ?, ?, ?, ?, ?, NULL, '{}', ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                run.clientID, run.mapping, run.directory, run.mode.rawValue, run.status.rawValue,
                StoreTime.text(run.startedAt), run.error, run.entriesRead, run.planHash, run.incremental,
                DirBridge.version, StoreSchema.worker,
            ])
        return db.lastInsertedRowID
    }

    // MARK: - Helpers

    static func fetchClient(named name: String, db: Database) throws -> ClientRecord? {
        try ClientRecord.fetchOne(
            db, sql: "SELECT * FROM clients WHERE name = ? COLLATE NOCASE ORDER BY name = ? DESC, id LIMIT 1",
            arguments: [name, name])
    }

    static func text(_ value: String?) -> ChangesJSON.Value {
        value.map { .text($0) } ?? .null
    }

    static func insertHistory(
        db: Database, clientID: Int64, entity: String, entityID: Int64, action: HistoryAction, changes: String,
        editor: String, runID: Int64?, at: String, reason: String?
    ) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT INTO history (client_id, entity, entity_id, action, changes, editor, run_id, at, reason)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        try statement.execute(arguments: [clientID, entity, entityID, action.rawValue, changes, editor, runID, at, reason])
    }
}

/// SQLite's page cache per connection, and the larger one a large apply gets.
///
/// A transaction that inserts rows all over the tables' indexes (a first sync's emails and
/// external ids) finds fewer of their pages in a 16 MB cache as they grow: the others are read
/// back from the WAL it spilled them to. At 1M users, inserting the users took 23–26 s with
/// 16 MB and 17.5 s with 64 MB (the same rows through the `sqlite3` module, in one run);
/// 128 MB gave nothing more. Their memory is taken while the apply writes, when the read's
/// directory is already let go, and given back when it commits.
enum PageCache {
    static let defaultKilobytes = 16_384
    static let largestKilobytes = 65_536

    /// 64 bytes per row written, between the default and the largest: 16 MB up to 256k rows.
    static func kilobytes(forRows rows: Int) -> Int {
        min(largestKilobytes, max(defaultKilobytes, rows / 16))
    }
}
