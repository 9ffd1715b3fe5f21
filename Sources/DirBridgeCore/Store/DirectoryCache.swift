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
    private let store: any DirectoryCacheStoring
    private let client: String
    private var loaded: (users: [String: EntryAttributes], groups: [String: EntryAttributes])?

    init(state: SyncState, store: any DirectoryCacheStoring, client: String) {
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

/// A lookup column of the directory cache's user entries.
enum CacheLookup: String {
    case externalID = "external_id", dn, email
}

/// One entry of the directory cache as written: the encoded entry and, for users, the
/// columns that find it without decoding the cache (external id, normalised DN, mapped email).
struct CacheRow: Sendable {
    /// `rows` with only the last row of each (kind, key), in their order: one PostgreSQL
    /// upsert may not meet a row twice, and the entry read last wins, as SQLite's
    /// INSERT OR REPLACE gives it (users keyed by an id two entries share). Keys are compared
    /// byte for byte, as both databases compare them (Swift's `==` holds NFC equal to NFD).
    static func lastOfEachKey(_ rows: ArraySlice<CacheRow>) -> ArraySlice<CacheRow> {
        struct Key: Hashable {
            var kind: EntryKind, key: String
            static func == (a: Key, b: Key) -> Bool { a.kind == b.kind && a.key.hasSameUTF8(as: b.key) }
            func hash(into hasher: inout Hasher) {
                hasher.combine(kind)
                key.hashUTF8(into: &hasher)
            }
        }
        func key(_ index: Int) -> Key { Key(kind: rows[index].kind, key: rows[index].key) }
        var last: [Key: Int] = [:]
        last.reserveCapacity(rows.count)
        for index in rows.indices { last[key(index)] = index }
        guard last.count < rows.count else { return rows }
        return ArraySlice(rows.indices.filter { last[key($0)] == $0 }.map { rows[$0] })
    }

    var kind: EntryKind
    var key: String
    var entry: [UInt8]
    var externalID: String?
    var dn: String?
    /// The mapped email, lowercased; nil when the entry maps to no user (it is skipped).
    var email: String?

    init(kind: EntryKind, key: String, entry: EntryAttributes, mapping: Mapping, email: String??) {
        self.kind = kind
        self.key = key
        self.entry = EntryCodec.encode(entry)
        guard kind == .user else { return }
        let id = Mapping.externalID(entry, attribute: mapping.users.id)
        // The key itself when they are equal (entryUUID as the id): one copy, not two.
        externalID = id.isEmpty ? nil : id == key ? key : id
        dn = DistinguishedName.canonical(entry.dn)
        self.email = email ?? (try? mapping.mapUser(entry).get()).map { $0.email.lowercased() }
    }

    /// A row as ``CacheRowSpool`` reads it back: the entry already encoded, the columns set after.
    init(kind: EntryKind, key: String, encodedEntry: [UInt8]) {
        self.kind = kind
        self.key = key
        self.entry = encodedEntry
    }
}

/// What one sync changes in the client's directory cache and sync state; written in the
/// transaction of its apply, so the cache never runs ahead of (or behind) the store.
public struct DirectoryCacheUpdate: Sendable {
    var client: String
    /// A full reconcile replaces the whole cache; an incremental run patches it.
    var replaceAll: Bool
    /// Entries to write, already encoded (``EntryCodec``).
    var encodedUpserts: [CacheRow] = []
    /// A full read's entries, kept in a temporary file until they are written (before
    /// ``encodedUpserts``); nil when the rows are in memory.
    var spooledUpserts: CacheRowSpool?
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
        let upsert = try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO directory_cache (client, kind, key, entry, external_id, dn, email) VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        func upsertRows(_ rows: [CacheRow]) throws {
            for row in rows {
                try upsert.execute(arguments: [client, row.kind.rawValue, row.key, Data(row.entry), row.externalID, row.dn, row.email])
            }
        }
        try spooledUpserts?.forEachBatch(1_000, upsertRows)
        try upsertRows(encodedUpserts)
        var state = state
        if replaceAll {
            // Distinct keys as the cache compares them (a key written twice is one row).
            state.cachedUsers = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM directory_cache WHERE client = ? AND kind = 'user'", arguments: [client]) ?? 0
        }
        if let countingClientID {
            // The portal-side edits made since the last incremental apply: this plan saw them
            // (or, when a write slipped in unseen, no store counter is recorded and the next run
            // plans everything).
            try db.execute(sql: "DELETE FROM store_touches WHERE client_id = ?", arguments: [countingClientID])
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

    /// Cached entries of one kind, by key: all of them (`keys` nil) or those keys.
    func cachedEntries(client: String, kind: EntryKind, keys: Set<String>?) throws(StoreError) -> [String: EntryAttributes] {
        try storeOperation("reading the directory cache of client \(client)") {
            try pool.read { db in
                var result: [String: EntryAttributes] = [:]
                let base = "SELECT key, entry FROM directory_cache WHERE client = ? AND kind = ?"
                try Self.inChunks(keys.map { Array($0) }, db: db, sql: base, column: "key", arguments: [client, kind.rawValue]) { row in
                    let key: String = row["key"]
                    result[key] = try Self.decodeCached(row, client: client, key: key)
                }
                return result
            }
        }
    }

    /// Keys of cached user entries whose `column` (external_id, dn or email) is one of `values`,
    /// with that value.
    func cachedUserKeys(client: String, column: CacheLookup, values: Set<String>) throws(StoreError) -> [(key: String, value: String)] {
        guard !values.isEmpty else { return [] }
        return try storeOperation("reading the directory cache of client \(client)") {
            try pool.read { db in
                var result: [(String, String)] = []
                let base = "SELECT key, \(column.rawValue) AS value FROM directory_cache WHERE client = ? AND kind = 'user'"
                try Self.inChunks(Array(values), db: db, sql: base, column: column.rawValue, arguments: [client]) { row in
                    result.append((row["key"], row["value"]))
                }
                return result
            }
        }
    }

    /// Every key of one kind in the client's cache (nothing decoded).
    func cachedKeys(client: String, kind: EntryKind) throws(StoreError) -> [String] {
        try storeOperation("reading the directory cache of client \(client)") {
            try pool.read { db in
                try String.fetchAll(db, sql: "SELECT key FROM directory_cache WHERE client = ? AND kind = ?", arguments: [client, kind.rawValue])
            }
        }
    }

    /// How many user entries the client's cache holds.
    func cachedUserCount(client: String) throws(StoreError) -> Int {
        try storeOperation("counting the directory cache of client \(client)") {
            try pool.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM directory_cache WHERE client = ? AND kind = 'user'", arguments: [client]) ?? 0
            }
        }
    }

    /// Runs `sql` (a SELECT with a WHERE clause) once per 500 `values`, adding `AND column IN (…)`;
    /// once without the condition when `values` is nil.
    static func inChunks<Value: DatabaseValueConvertible>(_ values: [Value]?, db: Database, sql: String, column: String, arguments: [any DatabaseValueConvertible],
                         each: (Row) throws -> Void) throws {
        guard let values else {
            let rows = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(arguments))
            while let row = try rows.next() { try each(row) }
            return
        }
        var start = 0
        while start < values.count {
            let chunk = values[start..<min(start + 500, values.count)]
            start += chunk.count
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            let rows = try Row.fetchCursor(db, sql: sql + " AND \(column) IN (\(marks))",
                                           arguments: StatementArguments(arguments + chunk.map { $0 as any DatabaseValueConvertible }))
            while let row = try rows.next() { try each(row) }
        }
    }

    private static func decodeCached(_ row: Row, client: String, key: String) throws -> EntryAttributes {
        try row.withUnsafeData(named: "entry") { data -> EntryAttributes in
            guard let data, let entry = EntryCodec.decode(data) else {
                throw StoreError(.sqlite, "the directory cache of client \(client) holds an unreadable entry (\(key)); run `dirbridge sync --apply --incremental` after deleting its rows from directory_cache and sync_state")
            }
            return entry
        }
    }

    func cachedEntries(client: String) throws(StoreError) -> (users: [String: EntryAttributes], groups: [String: EntryAttributes]) {
        try storeOperation("reading the directory cache of client \(client)") {
            try pool.read { db in
                var users: [String: EntryAttributes] = [:]
                var groups: [String: EntryAttributes] = [:]
                let entries = try Row.fetchCursor(db, sql: "SELECT kind, key, entry FROM directory_cache WHERE client = ?", arguments: [client])
                while let row = try entries.next() {
                    let key: String = row["key"]
                    let decoded = try Self.decodeCached(row, client: client, key: key)
                    if (row["kind"] as String) == EntryKind.user.rawValue { users[key] = decoded } else { groups[key] = decoded }
                }
                return (users, groups)
            }
        }
    }
}
