import Foundation
import GRDB

/// The directory as the last applied sync saw it, kept so that an incremental run can read
/// only what changed and still plan against the whole directory.
///
/// Entries are the raw attributes the mapping reads, keyed by the entry's immutable id
/// (`entryUUID` where the server has it): a rename or a move replaces the row. The sync
/// state is read at once; the entries only when a run needs them (a run that finds nothing
/// changed never loads them).
public final class DirectoryCache {
    /// The client's sync state: cookies, high-water marks, the last full reconcile.
    public let state: SyncState
    private let store: PortalStore
    private let client: String
    private var loaded: (users: [String: EntryAttributes], groups: [String: EntryAttributes])?

    init(state: SyncState, store: PortalStore, client: String) {
        self.state = state
        self.store = store
        self.client = client
    }

    /// The cached user and group entries, by key.
    public func entries() throws(StoreError) -> (users: [String: EntryAttributes], groups: [String: EntryAttributes]) {
        if let loaded { return loaded }
        let result = try store.cachedEntries(client: client)
        loaded = result
        return result
    }
}

/// What one sync changes in the client's directory cache and sync state; written in the
/// transaction of its apply, so the cache never runs ahead of (or behind) the store.
struct DirectoryCacheUpdate: Sendable {
    var client: String
    /// A full reconcile replaces the whole cache; an incremental run patches it.
    var replaceAll: Bool
    /// Entries to write, already encoded (``EntryCodec``).
    var encodedUpserts: [(kind: EntryKind, key: String, entry: [UInt8])] = []
    var deletions: [(kind: EntryKind, key: String)] = []
    /// The whole sync state after the apply: it replaces the stored one.
    var state: SyncState
    /// Record the client's store change counter, as it stands after the apply's own writes.
    var countingClientID: Int64?
    /// The counter when the run read the store's state. When another writer moved it before
    /// the apply's transaction began, the run's plan did not see that write: no counter is
    /// recorded then, so the next run plans in full and overwrites it.
    var expectedCounter: Int64?

    func write(_ db: Database, counterBefore: Int64? = nil) throws {
        if replaceAll {
            try db.execute(sql: "DELETE FROM directory_cache WHERE client = ?", arguments: [client])
        }
        let delete = try db.cachedStatement(sql: "DELETE FROM directory_cache WHERE client = ? AND kind = ? AND key = ?")
        for (kind, key) in deletions { try delete.execute(arguments: [client, kind.rawValue, key]) }
        let upsert = try db.cachedStatement(sql: "INSERT OR REPLACE INTO directory_cache (client, kind, key, entry) VALUES (?, ?, ?, ?)")
        for (kind, key, entry) in encodedUpserts {
            try upsert.execute(arguments: [client, kind.rawValue, key, Data(entry)])
        }
        var state = state
        if let countingClientID {
            let counter = try Self.counter(db, clientID: countingClientID)
            let unseenWrite = expectedCounter == nil || counterBefore != expectedCounter
            state.storeCounter = unseenWrite ? nil : counter
            if unseenWrite { state.unchangedView = nil }
        }
        let now = StoreTime.text(Date())
        try db.execute(sql: "DELETE FROM sync_state WHERE client = ?", arguments: [client])
        let setState = try db.cachedStatement(sql: "INSERT INTO sync_state (client, key, value, updated_at) VALUES (?, ?, ?, ?)")
        for (key, value) in state.rows { try setState.execute(arguments: [client, key, value, now]) }
    }

    static func counter(_ db: Database, clientID: Int64) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT counter FROM store_changes WHERE client_id = ?", arguments: [clientID]) ?? 0
    }
}

extension PortalStore {
    /// How many writes the client's users and user groups have seen (kept by triggers).
    public func changeCounter(clientID: Int64) throws(StoreError) -> Int64 {
        try storeOperation("reading the change counter of client \(clientID)") {
            try pool.read { db in try DirectoryCacheUpdate.counter(db, clientID: clientID) }
        }
    }

    /// ``changeCounter(clientID:)`` by client name (0 for a client that does not exist yet).
    public func changeCounter(client: String) throws(StoreError) -> Int64 {
        try storeOperation("reading the change counter of client \(client)") {
            try pool.read { db in
                try Int64.fetchOne(db, sql: """
                    SELECT s.counter FROM store_changes s JOIN clients c ON c.id = s.client_id
                    WHERE c.name = ? COLLATE NOCASE
                    """, arguments: [client]) ?? 0
            }
        }
    }

    /// The client's cached directory and sync state; nil when there is none yet.
    public func directoryCache(client: String) throws(StoreError) -> DirectoryCache? {
        let state = try storeOperation("reading the sync state of client \(client)") {
            try pool.read { db -> [String: String] in
                let rows = try Row.fetchAll(db, sql: "SELECT key, value FROM sync_state WHERE client = ?", arguments: [client])
                return Dictionary(rows.map { ($0["key"] as String, $0["value"] as String) }) { _, last in last }
            }
        }
        return state.isEmpty ? nil : DirectoryCache(state: SyncState(rows: state), store: self, client: client)
    }

    func cachedEntries(client: String) throws(StoreError) -> (users: [String: EntryAttributes], groups: [String: EntryAttributes]) {
        try storeOperation("reading the directory cache of client \(client)") {
            try pool.read { db in
                var users: [String: EntryAttributes] = [:]
                var groups: [String: EntryAttributes] = [:]
                let entries = try Row.fetchCursor(db, sql: "SELECT kind, key, entry FROM directory_cache WHERE client = ?", arguments: [client])
                while let row = try entries.next() {
                    let key: String = row["key"]
                    let decoded = try row.withUnsafeData(named: "entry") { data -> EntryAttributes in
                        guard let data, let entry = EntryCodec.decode(data) else {
                            throw StoreError(.sqlite, "the directory cache of client \(client) holds an unreadable entry (\(key)); run `dirbridge sync --apply --incremental` after deleting its rows from directory_cache and sync_state")
                        }
                        return entry
                    }
                    if (row["kind"] as String) == EntryKind.user.rawValue { users[key] = decoded } else { groups[key] = decoded }
                }
                return (users, groups)
            }
        }
    }
}
