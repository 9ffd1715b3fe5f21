import Foundation

/// The portal store as the engine, the guards and the views see it: one protocol, two
/// implementations (``PortalStore`` on an SQLite file, ``PostgresStore`` on a PostgreSQL
/// database), with the same tables, columns, rules and transactions.
///
/// Open one with ``openPortalStorage(_:createIfMissing:password:)``: a `postgresql://` URL
/// gives a ``PostgresStore``, anything else is an SQLite file's path.
public protocol PortalStorage: AnyObject, Sendable {
    /// Where the store is, for messages: the SQLite file's path, or the PostgreSQL URL
    /// (without a password).
    var location: String { get }

    /// The migrations applied to this store, in order.
    func appliedMigrations() throws(StoreError) -> [String]

    // MARK: clients

    /// The client with this name (exact match first, then case-insensitive), or nil.
    func client(named name: String) throws(StoreError) -> ClientRecord?
    /// Every client, by name.
    func clients() throws(StoreError) -> [ClientRecord]
    /// The client a mapping names, created with its Default User Group (and its parent) on
    /// first use; a changed end date or parent is updated. Each change writes a history row.
    func ensureClient(_ spec: ClientSpec, editor: String) throws(StoreError) -> ClientRecord

    // MARK: state and writes

    /// Every user group and client user of a client, read in one transaction; with `sharing`,
    /// each user's values that equal the directory's share its storage (``StoredUserSharing``).
    func loadState(clientID: Int64, sharing: StoredUserSharing?) throws(StoreError) -> ClientState
    /// Records a run that wrote nothing else (a dry run, a refused or failed run); returns its id.
    func recordRun(_ run: SyncRunRecord) throws(StoreError) -> Int64
    /// Applies a change set in one transaction under `lease`, creating the client in the same
    /// transaction when `creating` is given; `extra` is the incremental sync's directory cache
    /// (only where ``keepsDirectoryCache``). Returns the run's id; on any error nothing is written.
    func apply(
        _ changes: ChangeSet, run: SyncRunRecord, within lease: StoreLease?, extra: DirectoryCacheUpdate?,
        creating newClient: (spec: ClientSpec, editor: String)?
    ) throws -> Int64
    /// Like the apply above, but first reads the client's state inside the write transaction
    /// and asks `objection` about it: when it objects, nothing is written and its objection is
    /// returned.
    func apply<Objection: Error>(
        _ changes: ChangeSet, run: SyncRunRecord, within lease: StoreLease?,
        creating newClient: (spec: ClientSpec, editor: String)?, unless objection: (ClientState) -> Objection?
    ) throws -> Result<Int64, Objection>

    // MARK: leases

    /// One attempt at `client`'s lease: the lease, or who holds it. A lease whose process is
    /// gone (same host) or whose expiry has passed is taken over.
    func tryLease(client: String, holder: String, ttl: TimeInterval) throws(StoreError) -> Result<StoreLease, LeaseError>
    /// Gives the lease with this token back; harmless when it was taken over.
    func releaseLease(client: String, token: String)
    /// Pushes the expiry of the lease with this token `ttl` seconds ahead, or throws
    /// ``LeaseError`` when it was taken over meanwhile.
    func renewLease(client: String, token: String, ttl: TimeInterval) throws
    /// Drops the lease this process holds on `client`.
    func releaseOwnLease(client: String) throws(StoreError)
    /// The current lease on `client`, if any (expired ones included).
    func leaseHolder(client: String) throws(StoreError) -> LeaseHolder?

    // MARK: views

    /// The client users of one client (or of all), with their group's and client's names, by email.
    func userListing(clientName: String?) throws(StoreError) -> [UserListingRow]
    /// History entries, oldest first: of a user's email, of one run, of one client, or all.
    func historyListing(userEmail: String?, runID: Int64?, clientName: String?) throws(StoreError) -> [HistoryListingRow]
    /// Every sync run, oldest first.
    func runListing() throws(StoreError) -> [RunListingRow]
    /// Every client with its number of users and locations, by name.
    func clientListing() throws(StoreError) -> [ClientListingRow]
    /// Each client user's history with the row as it stands now (access reviews).
    func userTimelines(clientName: String?) throws(StoreError) -> [UserTimeline]
    /// The succeeded apply that executed the plan with this hash, if any.
    func appliedRun(planHash: String) throws(StoreError) -> (id: Int64, finishedAt: String?)?
    /// The client's change counter (bumped by every write to its users and user groups).
    func changeCounter(clientID: Int64) throws(StoreError) -> Int64
    /// The client's last apply that synced it (succeeded, or refused by a guard), by any worker.
    func lastSync(clientID: Int64) throws(StoreError) -> LastSync?
}

/// A store that keeps the directory cache and sync state of incremental runs, and the log of
/// portal-side edits they plan against (both stores do).
protocol DirectoryCacheStoring: PortalStorage {
    /// ``PortalStorage/changeCounter(clientID:)`` by client name (0 for a client not in the store).
    func changeCounter(client: String) throws(StoreError) -> Int64
    /// The client's cached directory and sync state; nil when there is none yet.
    func directoryCache(client: String) throws(StoreError) -> DirectoryCache?
    /// Cached entries of one kind, by key: all of them (`keys` nil) or those keys.
    func cachedEntries(client: String, kind: EntryKind, keys: Set<String>?) throws(StoreError) -> [String: EntryAttributes]
    /// Every cached entry of the client, users and groups.
    func cachedEntries(client: String) throws(StoreError) -> (users: [String: EntryAttributes], groups: [String: EntryAttributes])
    /// Keys of cached user entries whose `column` is one of `values`, with that value.
    func cachedUserKeys(client: String, column: CacheLookup, values: Set<String>) throws(StoreError) -> [(key: String, value: String)]
    /// Every key of one kind in the client's cache (nothing decoded).
    func cachedKeys(client: String, kind: EntryKind) throws(StoreError) -> [String]
    /// How many user entries the client's cache holds.
    func cachedUserCount(client: String) throws(StoreError) -> Int
    /// The portal-side edits logged since the client's last incremental apply.
    func touches(clientID: Int64) throws(StoreError) -> StoreTouches
    /// The part of a client's state an affected-only plan needs, in one transaction.
    func loadPartialState(clientID: Int64, externalIDs: Set<String>, emails: Set<String>, userIDs: Set<Int64>) throws(StoreError) -> PartialClientState
}

extension DirectoryCacheStoring {
    func cachedEntries(client: String, kind: EntryKind) throws(StoreError) -> [String: EntryAttributes] {
        try cachedEntries(client: client, kind: kind, keys: nil)
    }
}

/// A client's last apply run, as workers sharing a store see it.
public struct LastSync: Sendable, Equatable {
    public var runID: Int64
    public var startedAt: Date
    /// `host:pid` of the process that ran it (nil for runs of dirbridge before 0.5).
    public var worker: String?
}

extension PortalStorage {
    /// Every user group and client user of a client, read in one transaction.
    public func loadState(clientID: Int64) throws(StoreError) -> ClientState {
        try loadState(clientID: clientID, sharing: nil)
    }

    /// ``apply(_:run:within:extra:creating:)`` outside a lease, for a client that exists.
    public func apply(_ changes: ChangeSet, run: SyncRunRecord) throws(StoreError) -> Int64 {
        do {
            return try apply(changes, run: run, within: nil, extra: nil, creating: nil)
        } catch {
            throw StoreError.from(error)
        }
    }

    /// Applies `changes` unless `objection` objects to the state read in the same transaction.
    public func apply<Objection: Error>(
        _ changes: ChangeSet, run: SyncRunRecord, within lease: StoreLease? = nil,
        unless objection: (ClientState) -> Objection?
    ) throws -> Result<Int64, Objection> {
        try apply(changes, run: run, within: lease, creating: nil, unless: objection)
    }

    public func ensureClient(_ spec: ClientSpec) throws(StoreError) -> ClientRecord {
        try ensureClient(spec, editor: "dirbridge")
    }

    public func userListing() throws(StoreError) -> [UserListingRow] { try userListing(clientName: nil) }
    public func userTimelines() throws(StoreError) -> [UserTimeline] { try userTimelines(clientName: nil) }
    public func historyListing(userEmail: String? = nil, runID: Int64? = nil) throws(StoreError) -> [HistoryListingRow] {
        try historyListing(userEmail: userEmail, runID: runID, clientName: nil)
    }

    /// A parent account and every client under it (children, their children, …), by name.
    public func family(of parentName: String) throws(StoreError) -> [ClientRecord] {
        let parent = try requireClient(named: parentName)
        let all = try clients()
        var family = [parent]
        var frontier: Set<Int64> = [parent.id]
        while !frontier.isEmpty {
            let children = all.filter { client in client.parentID.map(frontier.contains) == true && !family.contains { $0.id == client.id } }
            family += children
            frontier = Set(children.map(\.id))
        }
        return family
    }

    /// ``userListing(clientName:)``; with `withChildren`, the users of the client and of every
    /// client under it: a parent account's view.
    public func userListing(clientName: String?, withChildren: Bool) throws(StoreError) -> [UserListingRow] {
        guard withChildren, let clientName else { return try userListing(clientName: clientName) }
        let names = Set(try family(of: clientName).map(\.name))
        return try userListing(clientName: nil).filter { names.contains($0.client) }
    }

    /// ``userTimelines(clientName:)``, with the children's users as for ``userListing(clientName:withChildren:)``.
    public func userTimelines(clientName: String?, withChildren: Bool) throws(StoreError) -> [UserTimeline] {
        guard withChildren, let clientName else { return try userTimelines(clientName: clientName) }
        let names = Set(try family(of: clientName).map(\.name))
        return try userTimelines(clientName: nil).filter { names.contains($0.client) }
    }

    /// The client named `name`, or a ``StoreError/Code/unknownClient`` error listing the
    /// store's clients.
    public func requireClient(named name: String) throws(StoreError) -> ClientRecord {
        if let client = try client(named: name) { return client }
        let names = try clients().map(\.name)
        throw StoreError(
            .unknownClient,
            "no client named \(name) in \(location)"
                + (names.isEmpty ? " (the store has no clients)" : "; clients: \(names.joined(separator: ", "))"))
    }

    /// Takes the lease on `client`'s writes for `holder`, or throws ``LeaseError`` naming
    /// who has it. With `wait`, polls every `pollInterval` until free or `shouldStop()`.
    public func acquireLease(
        client: String, holder: String, ttl: TimeInterval = PortalStore.defaultLeaseDuration,
        wait: Bool = false, pollInterval: TimeInterval = 1, shouldStop: () -> Bool = { false },
        onWait: (LeaseHolder) -> Void = { _ in }
    ) throws -> StoreLease {
        var told = false
        while true {
            switch try tryLease(client: client, holder: holder, ttl: ttl) {
            case .success(let lease):
                lease.keepRenewed(ttl: ttl)
                return lease
            case .failure(let error):
                guard wait, !shouldStop() else { throw error }
                if !told, let current = error.holder { onWait(current); told = true }
                Thread.sleep(forTimeInterval: pollInterval)
            }
        }
    }
}

/// Whether `location` names a PostgreSQL database (`postgresql://` or `postgres://`) rather
/// than an SQLite file.
public func isPostgresLocation(_ location: String) -> Bool {
    let lower = location.lowercased()
    return lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://")
}

/// Opens the store at `location`: a `postgresql://` URL (with `password` saying where its
/// password comes from) or an SQLite file's path (created when `createIfMissing`).
/// `readOnly` (the views): a PostgreSQL store is never migrated, only checked.
public func openPortalStorage(
    _ location: String, createIfMissing: Bool = true, readOnly: Bool = false, password: StorePasswordSource = StorePasswordSource()
) throws(StoreError) -> any PortalStorage {
    if isPostgresLocation(location) {
        return try PostgresStore(url: location, password: password, migrating: !readOnly)
    }
    return try PortalStore(path: location, createIfMissing: createIfMissing)
}

/// Where a PostgreSQL store's password comes from, as the mapping's `store:` section says:
/// `password_env` (a variable's name) or `password_file` (not world-readable). Without
/// either, libpq's `PGPASSWORD` and `~/.pgpass` (or `PGPASSFILE`) are used.
public struct StorePasswordSource: Sendable, Equatable, Codable {
    public var environmentVariable: String?
    public var file: String?

    /// Spelled as in the mapping's `store:` section (a plan records them).
    enum CodingKeys: String, CodingKey {
        case environmentVariable = "password_env"
        case file = "password_file"
    }

    public init(environmentVariable: String? = nil, file: String? = nil) {
        self.environmentVariable = environmentVariable
        self.file = file
    }
}
