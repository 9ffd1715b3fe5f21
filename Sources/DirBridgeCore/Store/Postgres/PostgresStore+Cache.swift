import Foundation
import NIOCore
import PostgresNIO

/// The directory cache and sync state of incremental runs on PostgreSQL: the same tables and
/// semantics as on SQLite (``DirectoryCacheUpdate``), written in the apply's transaction.
extension PostgresStore: DirectoryCacheStoring {
    public func changeCounter(client: String) throws(StoreError) -> Int64 {
        try operation("reading the change counter of client \(client)") {
            try session.exclusive { db in
                try db.row("""
                    SELECT s.counter FROM store_changes s JOIN clients c ON c.id = s.client_id WHERE dirbridge_fold(c.name) = dirbridge_fold($1)
                    """, PostgresBindings([client]))?.int("counter") ?? 0
            }
        }
    }

    public func directoryCache(client: String) throws(StoreError) -> DirectoryCache? {
        let state = try operation("reading the sync state of client \(client)") {
            try session.exclusive { db in
                var state: [String: String] = [:]
                for row in try db.rows("SELECT key, value FROM sync_state WHERE dirbridge_fold(client) = dirbridge_fold($1)", PostgresBindings([client])) {
                    state[try row.text("key")] = try row.text("value")
                }
                return state
            }
        }
        return state.isEmpty ? nil : DirectoryCache(state: SyncState(rows: state), store: self, client: client)
    }

    func cachedEntries(client: String, kind: EntryKind, keys: Set<String>?) throws(StoreError) -> [String: EntryAttributes] {
        try operation("reading the directory cache of client \(client)") {
            try session.exclusive { db in
                var result: [String: EntryAttributes] = [:]
                var binds = PostgresBindings([client, kind.rawValue])
                var sql = "SELECT key, entry FROM directory_cache WHERE dirbridge_fold(client) = dirbridge_fold($1) AND kind = $2"
                if let keys {
                    binds.append(Array(keys))
                    sql += " AND key = ANY($3)"
                }
                for (key, entry) in try db.values(sql, binds, { row in
                    let key = try row.text("key")
                    return (key, try Self.decodeCached(row, client: client, key: key))
                }) {
                    result[key] = entry
                }
                return result
            }
        }
    }

    func cachedEntries(client: String) throws(StoreError) -> (users: [String: EntryAttributes], groups: [String: EntryAttributes]) {
        try operation("reading the directory cache of client \(client)") {
            try session.exclusive { db in
                var users: [String: EntryAttributes] = [:]
                var groups: [String: EntryAttributes] = [:]
                let entries = try db.values("SELECT kind, key, entry FROM directory_cache WHERE dirbridge_fold(client) = dirbridge_fold($1)",
                                            PostgresBindings([client])) { row in
                    let key = try row.text("key")
                    return (user: try row.text("kind") == EntryKind.user.rawValue, key: key, entry: try Self.decodeCached(row, client: client, key: key))
                }
                for (user, key, entry) in entries {
                    if user { users[key] = entry } else { groups[key] = entry }
                }
                return (users, groups)
            }
        }
    }

    func cachedUserKeys(client: String, column: CacheLookup, values: Set<String>) throws(StoreError) -> [(key: String, value: String)] {
        guard !values.isEmpty else { return [] }
        return try operation("reading the directory cache of client \(client)") {
            try session.exclusive { db in
                // The column is one of CacheLookup's three names, never text from outside.
                try db.rows("""
                    SELECT key, \(column.rawValue) AS value FROM directory_cache
                    WHERE dirbridge_fold(client) = dirbridge_fold($1) AND kind = 'user' AND \(column.rawValue) = ANY($2)
                    """, PostgresBindings([client, Array(values)])).map { (key: try $0.text("key"), value: try $0.text("value")) }
            }
        }
    }

    func cachedKeys(client: String, kind: EntryKind) throws(StoreError) -> [String] {
        try operation("reading the directory cache of client \(client)") {
            try session.exclusive { db in
                try db.rows("SELECT key FROM directory_cache WHERE dirbridge_fold(client) = dirbridge_fold($1) AND kind = $2", PostgresBindings([client, kind.rawValue]))
                    .map { try $0.text("key") }
            }
        }
    }

    func cachedUserCount(client: String) throws(StoreError) -> Int {
        try operation("counting the directory cache of client \(client)") {
            try session.exclusive { db in
                Int(try db.row("SELECT count(*) AS n FROM directory_cache WHERE dirbridge_fold(client) = dirbridge_fold($1) AND kind = 'user'",
                               PostgresBindings([client]))?.int("n") ?? 0)
            }
        }
    }

    func touches(clientID: Int64) throws(StoreError) -> StoreTouches {
        try operation("reading the edits of client \(clientID)") {
            try session.exclusive { db in
                var touches = StoreTouches()
                for row in try db.rows("SELECT entity, entity_id, external_id FROM store_touches WHERE client_id = $1", PostgresBindings([clientID])) {
                    if try row.text("entity") == "user_group" {
                        touches.userGroups = true
                    } else {
                        touches.userIDs.insert(try row.int("entity_id"))
                        if let id = try row.optionalText("external_id") { touches.externalIDs.insert(id) }
                    }
                }
                return touches
            }
        }
    }

    func loadPartialState(clientID: Int64, externalIDs: Set<String>, emails: Set<String>, userIDs: Set<Int64>) throws(StoreError) -> PartialClientState {
        try operation("loading part of client \(clientID)") {
            try session.transaction("REPEATABLE READ") { db in
                guard let client = try db.row("SELECT \(Self.clientColumns) FROM clients WHERE id = $1", PostgresBindings([clientID])).map(Self.client) else {
                    throw StoreError(.unknownClient, "no client with id \(clientID) in the portal store")
                }
                let groups = try db.rows("SELECT \(Self.userGroupColumns) FROM user_groups WHERE client_id = $1 ORDER BY id", PostgresBindings([clientID]))
                    .map(Self.userGroup)
                var binds = PostgresBindings([clientID])
                binds.append(Array(externalIDs))
                binds.append(Array(emails))
                binds.append(Array(userIDs))
                let users = try db.rows("""
                    SELECT \(Self.userColumns()) FROM client_users
                    WHERE client_id = $1 AND (external_id = ANY($2) OR dirbridge_fold(email) IN (SELECT dirbridge_fold(e) FROM unnest($3::text[]) AS e) OR id = ANY($4)) ORDER BY id
                    """, binds).map(Self.user)
                let population = try db.row(PostgresSchema.populationSQL, PostgresBindings([clientID]))
                return PartialClientState(
                    state: ClientState(client: client, userGroups: groups, users: users),
                    population: ClientPopulation(enabledDirectoryUsers: Int(try population?.int("enabled_directory") ?? 0),
                                                 directoryUsers: Int(try population?.int("directory") ?? 0),
                                                 enabledGlobalAdmins: Int(try population?.int("admins") ?? 0)))
            }
        }
    }

    private static func decodeCached(_ row: PostgresStoreRow, client: String, key: String) throws -> EntryAttributes {
        var buffer = try row.decode("entry", as: ByteBuffer.self)
        guard let bytes = buffer.readBytes(length: buffer.readableBytes), let entry = EntryCodec.decode(Data(bytes)) else {
            throw StoreError(.postgres, "the directory cache of client \(client) holds an unreadable entry (\(key)); run `dirbridge sync --apply --incremental` after deleting its rows from directory_cache and sync_state")
        }
        return entry
    }

    /// ``DirectoryCacheUpdate/write(_:counterBefore:)`` inside an open PostgreSQL transaction.
    static func write(_ update: DirectoryCacheUpdate, db: PostgresSession.Statements, counterBefore: Int64?) throws {
        let client = update.client
        if update.replaceAll {
            try db.execute("DELETE FROM directory_cache WHERE dirbridge_fold(client) = dirbridge_fold($1)", PostgresBindings([client]))
        }
        for kind in [EntryKind.user, .group] {
            let keys = update.deletions.filter { $0.kind == kind }.map(\.key)
            if !keys.isEmpty {
                try db.execute("DELETE FROM directory_cache WHERE dirbridge_fold(client) = dirbridge_fold($1) AND kind = $2 AND key = ANY($3)",
                               PostgresBindings([client, kind.rawValue, keys]))
            }
        }
        // Upserts in multi-row statements of up to 1,000 entries (7 values each): a full read's
        // from their temporary file first, then those held in memory.
        func upsert(_ rows: ArraySlice<CacheRow>) throws {
            let batch = CacheRow.lastOfEachKey(rows)
            var binds = PostgresBindings(capacity: batch.count * 7)
            for row in batch {
                binds.append(client)
                binds.append(row.kind.rawValue)
                binds.append(row.key)
                binds.append(ByteBuffer(bytes: row.entry))
                binds.append(row.externalID)
                binds.append(row.dn)
                binds.append(row.email)
            }
            try db.execute("""
                INSERT INTO directory_cache (client, kind, key, entry, external_id, dn, email) VALUES \(valuesList(rows: batch.count, columns: 7))
                ON CONFLICT (dirbridge_fold(client), kind, key) DO UPDATE
                SET client = EXCLUDED.client, entry = EXCLUDED.entry, external_id = EXCLUDED.external_id, dn = EXCLUDED.dn, email = EXCLUDED.email
                """, binds)
        }
        try update.spooledUpserts?.forEachBatch(1_000) { try upsert($0[...]) }
        let rows = update.encodedUpserts
        for start in stride(from: 0, to: rows.count, by: 1_000) { try upsert(rows[start..<min(start + 1_000, rows.count)]) }
        var state = update.state
        if update.replaceAll {
            // Distinct keys as the cache compares them (a key written twice is one row).
            state.cachedUsers = Int(try db.row(
                "SELECT COUNT(*) AS users FROM directory_cache WHERE dirbridge_fold(client) = dirbridge_fold($1) AND kind = 'user'",
                PostgresBindings([client]))?.int("users") ?? 0)
        }
        if let countingClientID = update.countingClientID {
            // As on SQLite: the edits since the last incremental apply were seen by this plan, or
            // (an unseen write slipped in) no counter is recorded and the next run plans everything.
            try db.execute("DELETE FROM store_touches WHERE client_id = $1", PostgresBindings([countingClientID]))
            let counter = try db.row("SELECT counter FROM store_changes WHERE client_id = $1", PostgresBindings([countingClientID]))?.int("counter") ?? 0
            let unseenWrite = update.expectedCounter == nil || counterBefore != update.expectedCounter
            state.storeCounter = unseenWrite ? nil : counter
            if unseenWrite { state.unchangedView = nil }
        }
        let now = Date()
        try db.execute("DELETE FROM sync_state WHERE dirbridge_fold(client) = dirbridge_fold($1)", PostgresBindings([client]))
        for (key, value) in state.rows {
            try db.execute("INSERT INTO sync_state (client, key, value, updated_at) VALUES ($1, $2, $3, $4)", PostgresBindings([client, key, value, now]))
        }
    }
}
