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
    /// `sync_state` for the client: cookies, high-water marks, the last full reconcile.
    public let state: [String: String]
    private let store: PortalStore
    private let client: String
    private var loaded: (users: [String: EntryAttributes], groups: [String: EntryAttributes])?

    init(state: [String: String], store: PortalStore, client: String) {
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
    enum Kind: String, Sendable { case user, group }

    var client: String
    /// A full reconcile replaces the whole cache; an incremental run patches it.
    var replaceAll: Bool
    /// Entries to write, already encoded (``EntryCodec``).
    var encodedUpserts: [(kind: Kind, key: String, entry: [UInt8])] = []
    var deletions: [(kind: Kind, key: String)] = []
    var state: [String: String] = [:]
    /// Record the client's store change counter, as it stands after the apply's own writes.
    var countingClientID: Int64?
    /// The counter when the run read the store's state. When another writer moved it before
    /// the apply's transaction began, the run's plan did not see that write: no counter is
    /// recorded then, so the next run plans in full and overwrites it.
    var expectedCounter: Int64?

    func write(_ db: Database, counterBefore: Int64? = nil) throws {
        if replaceAll {
            try db.execute(sql: "DELETE FROM directory_cache WHERE client = ?", arguments: [client])
            try db.execute(sql: "DELETE FROM sync_state WHERE client = ?", arguments: [client])
        }
        let delete = try db.cachedStatement(sql: "DELETE FROM directory_cache WHERE client = ? AND kind = ? AND key = ?")
        for (kind, key) in deletions { try delete.execute(arguments: [client, kind.rawValue, key]) }
        let upsert = try db.cachedStatement(sql: "INSERT OR REPLACE INTO directory_cache (client, kind, key, entry) VALUES (?, ?, ?, ?)")
        for (kind, key, entry) in encodedUpserts {
            try upsert.execute(arguments: [client, kind.rawValue, key, Data(entry)])
        }
        let now = StoreTime.text(Date())
        let setState = try db.cachedStatement(sql: "INSERT OR REPLACE INTO sync_state (client, key, value, updated_at) VALUES (?, ?, ?, ?)")
        for (key, value) in state { try setState.execute(arguments: [client, key, value, now]) }
        if let countingClientID {
            let counter = try Self.counter(db, clientID: countingClientID)
            let unseenWrite = expectedCounter == nil || counterBefore != expectedCounter
            try setState.execute(arguments: [client, "store_counter", unseenWrite ? "" : String(counter), now])
            if unseenWrite { try setState.execute(arguments: [client, "unchanged_view", "", now]) }
        }
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
                var state: [String: String] = [:]
                let rows = try Row.fetchCursor(db, sql: "SELECT key, value FROM sync_state WHERE client = ?", arguments: [client])
                while let row = try rows.next() { state[row[0]] = row[1] }
                return state
            }
        }
        return state.isEmpty ? nil : DirectoryCache(state: state, store: self, client: client)
    }

    func cachedEntries(client: String) throws(StoreError) -> (users: [String: EntryAttributes], groups: [String: EntryAttributes]) {
        try storeOperation("reading the directory cache of client \(client)") {
            try pool.read { db in
                var users: [String: EntryAttributes] = [:]
                var groups: [String: EntryAttributes] = [:]
                let entries = try Row.fetchCursor(db, sql: "SELECT kind, key, entry FROM directory_cache WHERE client = ?", arguments: [client])
                while let row = try entries.next() {
                    let key: String = row[1]
                    let decoded = try row.withUnsafeData(atIndex: 2) { data -> EntryAttributes in
                        guard let data, let entry = EntryCodec.decode(data) else {
                            throw StoreError(.sqlite, "the directory cache of client \(client) holds an unreadable entry (\(key)); run `dirbridge sync --apply --incremental` after deleting its rows from directory_cache and sync_state")
                        }
                        return entry
                    }
                    if (row[0] as String) == DirectoryCacheUpdate.Kind.user.rawValue { users[key] = decoded } else { groups[key] = decoded }
                }
                return (users, groups)
            }
        }
    }
}

/// A compact, binary-safe encoding of an entry: length-prefixed DN, attribute names and values.
enum EntryCodec {
    static func encode(_ entry: EntryAttributes) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        func put(_ count: Int) {
            var value = UInt64(count)
            while value >= 0x80 { out.append(UInt8(value & 0x7F) | 0x80); value >>= 7 }
            out.append(UInt8(value))
        }
        func put(bytes: some Collection<UInt8>) { put(bytes.count); out.append(contentsOf: bytes) }
        put(bytes: Array(entry.dn.utf8))
        put(entry.values.count)
        for (name, values) in entry.values.sorted(by: { $0.key < $1.key }) {
            put(bytes: Array(name.utf8))
            put(values.count)
            for value in values { put(bytes: value) }
        }
        return out
    }

    static func decode(_ data: Data) -> EntryAttributes? {
        data.withUnsafeBytes { raw -> EntryAttributes? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var position = 0
            func count() -> Int? {
                var value: UInt64 = 0
                var shift: UInt64 = 0
                while position < bytes.count, shift < 64 {
                    let byte = bytes[position]
                    position += 1
                    value |= UInt64(byte & 0x7F) << shift
                    if byte & 0x80 == 0 { return Int(exactly: value) }
                    shift += 7
                }
                return nil
            }
            func chunk() -> UnsafeBufferPointer<UInt8>? {
                guard let length = count(), length <= bytes.count - position else { return nil }
                defer { position += length }
                return UnsafeBufferPointer(rebasing: bytes[position..<position + length])
            }
            guard let dn = chunk(), let attributes = count() else { return nil }
            var values: [String: [[UInt8]]] = [:]
            values.reserveCapacity(attributes)
            for _ in 0..<attributes {
                guard let name = chunk(), let valueCount = count() else { return nil }
                var list: [[UInt8]] = []
                list.reserveCapacity(valueCount)
                for _ in 0..<valueCount {
                    guard let value = chunk() else { return nil }
                    list.append(Array(value))
                }
                values[String(decoding: name, as: UTF8.self)] = list
            }
            guard position == bytes.count else { return nil }
            return EntryAttributes(dn: String(decoding: dn, as: UTF8.self), values: values)
        }
    }
}
