import Foundation
import GRDB
import Testing
@testable import DirBridgeCore

/// What only the SQLite store has: its file, pragmas and GRDB migrations. What every store
/// does is in ``StoreContractTests``, run on SQLite and PostgreSQL.
@Suite("Portal store on SQLite")
struct PortalStoreTests {
    @Test("the file is in WAL mode with foreign keys on; history JSON keeps its keys sorted")
    func fileSettings() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "a@acme.example", fields: [.title: "T"], globalAdmin: true)]),
                            run: applyRun(clientID: client.id))
        let created: String? = try temp.value("SELECT changes FROM history WHERE action = 'created' AND entity = 'user'")
        #expect(created?.hasPrefix(#"{"email":[null,"a@acme.example"],"enabled":[null,true],"global_admin":[null,true]"#) == true)
        let pragmas = try temp.sql().read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys"))
        }
        #expect(pragmas.0 == "wal")
        #expect(pragmas.1 == 1)
    }

    @Test("a store written by the first migration opens after the later ones")
    func olderStoreIsMigrated() throws {
        let temp = try TemporaryStore()
        do {
            var migrator = DatabaseMigrator()
            StoreSchema.registerPortalSchema(in: &migrator)
            let queue = try testDatabase(temp.path)
            try migrator.migrate(queue)
            try queue.write { db in
                try db.execute(sql: "INSERT INTO clients (name, active, created_at) VALUES ('Old Co', 1, '2025-01-01T00:00:00Z')")
                try db.execute(sql: """
                    INSERT INTO user_groups (client_id, name, is_default, source, created_at)
                    VALUES (1, 'Default User Group', 1, 'portal', '2025-01-01T00:00:00Z')
                    """)
            }
        }
        let store = try PortalStore(path: temp.path)
        #expect(try store.appliedMigrations() == StoreSchema.identifiers)
        let client = try #require(try store.client(named: "Old Co"))
        let runID = try store.apply(
            ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "new@old.example", reason: "why")]),
            run: applyRun(clientID: client.id))
        let reason = try temp.sql().read { db in
            try String.fetchOne(db, sql: "SELECT reason FROM history WHERE run_id = ?", arguments: [runID])
        }
        #expect(reason == "why")
    }

    @Test("a store written by a newer dirbridge is refused")
    func newerStoreIsRefused() throws {
        let temp = try TemporaryStore()
        _ = try PortalStore(path: temp.path)
        try temp.execute("INSERT INTO grdb_migrations (identifier) VALUES ('v9-from-the-future')")
        let error = #expect(throws: StoreError.self) { try PortalStore(path: temp.path) }
        #expect(error?.code == .newerSchema)
        #expect(error?.kind == .store)
        #expect(error?.message.contains("written by a newer dirbridge") == true)
        #expect(error?.message.contains("v9-from-the-future") == true)
        #expect(error?.message.contains("upgrade dirbridge") == true)
    }

    @Test("a missing store is an error for views, never created")
    func missingStoreForViews() throws {
        let temp = try TemporaryStore()
        let error = #expect(throws: StoreError.self) { try PortalStore(path: temp.path, createIfMissing: false) }
        #expect(error?.code == .missingStore)
        #expect(error?.message.contains(temp.path) == true)
        #expect(!FileManager.default.fileExists(atPath: temp.path))
    }

    @Test("a file that is not SQLite is a store error naming it")
    func notADatabase() throws {
        let temp = try TemporaryStore()
        try Data("not a database, just text that is long enough to look like a header".utf8)
            .write(to: URL(fileURLWithPath: temp.path))
        let error = #expect(throws: StoreError.self) { try PortalStore(path: temp.path) }
        #expect(error?.message.contains(temp.path) == true)
    }
}
