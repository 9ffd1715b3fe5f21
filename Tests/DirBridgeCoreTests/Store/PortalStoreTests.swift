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

    @Test("created users' values are stored as GRDB binds them: empty text, NULL, flags, quotes and non-ASCII, text cut at a NUL, reasons")
    func createdValuesAsGRDBBindsThem() throws {
        let titles: [String?] = ["", nil, "Zoë \"Q\" 'x' — 東京", "before\u{0}after", String(repeating: "long title ", count: 40), "x"]
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let creations = titles.enumerated().map { index, title in
            NewClientUser(email: "user\(index)@acme.example", fields: title.map { [.title: $0] } ?? [:], userGroupName: index == 3 ? "Sales" : nil,
                          globalAdmin: index == 2, groupManager: index == 3, invite: index == 4,
                          reason: index % 2 == 0 ? nil : "rule \(index)\nsecond line")
        }
        _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")], userCreations: creations),
                            run: applyRun(clientID: client.id))
        // The same values bound by GRDB into a table of the portal's own.
        try temp.execute("CREATE TABLE grdb_bound (id INTEGER PRIMARY KEY, title TEXT, admin INTEGER, manager INTEGER, reason TEXT)")
        let queue = try temp.sql()
        try queue.write { db in
            for (index, creation) in creations.enumerated() {
                try db.execute(sql: "INSERT INTO grdb_bound VALUES (?, ?, ?, ?, ?)",
                               arguments: [index, titles[index], creation.globalAdmin, creation.groupManager, creation.reason])
            }
        }
        let stored = try temp.rows("""
            SELECT typeof(u.title) || ':' || hex(u.title) || '|' || typeof(u.global_admin) || u.global_admin || '|' || u.group_manager
                   || '|' || typeof(h.reason) || ':' || hex(h.reason) || '|' || (SELECT count(*) FROM invitations i WHERE i.user_id = u.id) AS row
            FROM client_users u JOIN history h ON h.entity = 'user' AND h.entity_id = u.id ORDER BY u.id
            """).map { $0["row"] as String }
        let bound = try temp.rows("""
            SELECT typeof(title) || ':' || hex(title) || '|' || typeof(admin) || admin || '|' || manager
                   || '|' || typeof(reason) || ':' || hex(reason) || '|' || (id = 4) AS row
            FROM grdb_bound ORDER BY id
            """).map { $0["row"] as String }
        #expect(stored.count == titles.count)
        #expect(stored == bound)
        #expect(stored[0].hasPrefix("text:|"))
        #expect(stored[1].hasPrefix("null:|"))
        #expect(stored[3].hasPrefix("text:" + "before".utf8.map { String(format: "%02X", $0) }.joined() + "|"))
    }

    /// 1,200 creations: every tenth in Sales, a Global Admin in the Default User Group and a
    /// Group Manager in Sales among them.
    static let largeCreation: [NewClientUser] = (0..<1_200).map { index in
        NewClientUser(email: "user\(index)@acme.example", fields: [.title: "Title \(index)"],
                      userGroupName: index % 10 == 0 ? "Sales" : nil, globalAdmin: index == 3, groupManager: index == 20,
                      externalID: "ext-\(index)", invite: index % 9 == 0)
    }

    @Test("a large creation sets the insert triggers aside and leaves the store as the per-row triggers would; a portal's own trigger keeps them per row")
    func largeCreationWithoutPerRowTriggers() throws {
        #expect(Self.largeCreation.count >= BulkCreationTriggers.minimumCreations)
        func triggers(_ temp: TemporaryStore) throws -> [String] {
            try temp.rows("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").map { "\($0["name"] as String): \($0["sql"] as String)" }
        }
        func schemaVersion(_ temp: TemporaryStore) throws -> Int { try temp.int("PRAGMA schema_version") }
        /// Applies the creation; returns how much the apply itself moved the schema version.
        func apply(_ temp: TemporaryStore) throws -> Int {
            let (store, client) = try temp.openWithClient()
            let version = try schemaVersion(temp)
            _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")], userCreations: Self.largeCreation),
                                run: applyRun(clientID: client.id))
            return try schemaVersion(temp) - version
        }
        let bulk = try TemporaryStore(), perRow = try TemporaryStore()
        _ = try bulk.openWithClient()
        _ = try perRow.openWithClient()
        let fresh = try triggers(bulk)
        // The portal's own trigger on inserted users: the creation must run it for every row.
        try perRow.execute("CREATE TABLE portal_audit (user_id INTEGER NOT NULL)")
        try perRow.execute("CREATE TRIGGER portal_audit_insert AFTER INSERT ON client_users BEGIN INSERT INTO portal_audit VALUES (NEW.id); END")
        // Two triggers dropped and created again in the bulk store's transaction; no schema change in the other.
        #expect(try apply(bulk) == 4)
        #expect(try apply(perRow) == 0)
        #expect(try perRow.count("portal_audit") == Self.largeCreation.count)
        #expect(try triggers(bulk) == fresh)
        #expect(try triggers(perRow) == (fresh + ["portal_audit_insert: CREATE TRIGGER portal_audit_insert AFTER INSERT ON client_users BEGIN INSERT INTO portal_audit VALUES (NEW.id); END"]).sorted())
        let counter = "SELECT client_id, counter FROM store_changes ORDER BY client_id"
        #expect(try bulk.rows(counter).map { [$0["client_id"] as Int64, $0["counter"] as Int64] }
                == perRow.rows(counter).map { [$0["client_id"] as Int64, $0["counter"] as Int64] })
        #expect(try bulk.int("SELECT counter FROM store_changes") >= Self.largeCreation.count)
        let users = """
            SELECT u.email, u.title, u.global_admin, u.group_manager, u.external_id, g.name AS user_group,
                   (SELECT count(*) FROM invitations i WHERE i.user_id = u.id) AS invitations,
                   (SELECT CAST(changes AS TEXT) FROM history h WHERE h.entity = 'user' AND h.entity_id = u.id) AS history
            FROM client_users u JOIN user_groups g ON g.id = u.user_group_id ORDER BY u.id
            """
        func described(_ temp: TemporaryStore) throws -> [String] {
            try temp.rows(users).map { row in
                ["email", "title", "global_admin", "group_manager", "external_id", "user_group", "invitations", "history"]
                    .map { "\(row.value($0))" }.joined(separator: "|")
            }
        }
        let written = try described(bulk)
        #expect(written.count == Self.largeCreation.count)
        #expect(written == (try described(perRow)))
        // The rows the per-row triggers checked are the same rows here: the Global Admin and the Group Manager are in.
        #expect(try bulk.int("SELECT count(*) FROM client_users WHERE global_admin = 1 OR group_manager = 1") == 2)
        // The store still enforces the rules on a later write.
        let error = #expect(throws: TestSQLError.self) {
            try bulk.execute("INSERT INTO client_users (client_id, email, user_group_id, global_admin, created_at, updated_at) SELECT 1, 'late@acme.example', id, 1, 'x', 'x' FROM user_groups WHERE name = 'Sales'")
        }
        #expect(error?.message == StoreSchema.globalAdminRule)
    }

    /// A portal's own trigger that logs every firing into `portal_audit`.
    static let portalTriggers = [
        "CREATE TRIGGER portal_audit_insert AFTER INSERT ON CLIENT_USERS BEGIN INSERT INTO portal_audit VALUES (NEW.id); END",
        "CREATE TRIGGER portal_counter_audit AFTER UPDATE ON store_changes BEGIN INSERT INTO portal_audit VALUES (NEW.counter); END",
    ]

    @Test("a portal's own trigger on a table the creations write, named in any case, keeps the per-row triggers and fires for every row",
          arguments: portalTriggers)
    func portalTriggerKeepsPerRowPath(trigger: String) throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        try temp.execute("CREATE TABLE portal_audit (value INTEGER NOT NULL)")
        try temp.execute(trigger)
        let version = try temp.int("PRAGMA schema_version")
        _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")], userCreations: Self.largeCreation),
                            run: applyRun(clientID: client.id))
        #expect(try temp.int("PRAGMA schema_version") == version)
        #expect(try temp.count("portal_audit") >= Self.largeCreation.count)
        #expect(try temp.count("client_users") == Self.largeCreation.count)
    }

    @Test("in a large creation, the error is the one the per-row triggers give: the first rule broken by id, before a later duplicate",
          arguments: [[(50, "manager"), (700, "admin")], [(700, "admin"), (900, "duplicate")], [(690, "duplicate"), (700, "admin")]])
    func largeCreationErrorAsPerRow(faults: [(Int, String)]) throws {
        var creations = Self.largeCreation
        for (index, fault) in faults {
            switch fault {
            case "manager": creations[index] = NewClientUser(email: "user\(index)@acme.example", groupManager: true, externalID: "ext-\(index)")
            case "admin": creations[index] = NewClientUser(email: "user\(index)@acme.example", userGroupName: "Sales", globalAdmin: true, externalID: "ext-\(index)")
            default: creations[index] = NewClientUser(email: "USER5@acme.example", externalID: "ext-\(index)")
            }
        }
        func error(perRow: Bool) throws -> StoreError? {
            let temp = try TemporaryStore()
            let (store, client) = try temp.openWithClient()
            if perRow {
                try temp.execute("CREATE TABLE portal_audit (value INTEGER NOT NULL)")
                try temp.execute(Self.portalTriggers[0])
            }
            let before = try temp.count("client_users")
            let triggers = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
            let triggersBefore = try temp.int(triggers)
            let error = #expect(throws: StoreError.self) {
                try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")], userCreations: creations),
                                run: applyRun(clientID: client.id))
            }
            #expect(try temp.count("client_users") == before)
            #expect(try temp.int(triggers) == triggersBefore)
            return error
        }
        let bulk = try error(perRow: false), perRow = try error(perRow: true)
        let (first, fault) = faults[0]
        #expect(bulk?.code == (fault == "duplicate" ? .duplicate : .invariantViolation))
        #expect(bulk?.message.contains(fault == "duplicate" ? "USER5@acme.example" : "user\(first)@acme.example") == true)
        #expect(bulk == perRow)
    }

    @Test("a state of more users than a sharing chunk loads in row order, equal to one loaded without sharing, matched values shared in every chunk")
    func loadStateSharingInChunks() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        // Two and a half chunks: two shared on another thread, the rest on the loading one.
        let count = PortalStore.sharingChunk * 5 / 2 + 7
        _ = try store.apply(ChangeSet(clientID: client.id, userCreations: (0..<count).map { index in
            NewClientUser(email: "user\(index)@acme.example", fields: [.title: "Title of user number \(index)"],
                          externalID: "external-id-of-user-\(index)", externalDN: "uid=user\(index),ou=people,dc=acme,dc=example")
        }), run: applyRun(clientID: client.id))
        let plain = try store.loadState(clientID: client.id)
        #expect(plain.users.count == count)
        // Every other user is in the directory, with its title changed for every sixth.
        let directory = plain.users.enumerated().filter { $0.offset % 2 == 0 }.map { offset, stored in
            DirectoryUser(mapped: MappedFields(dn: String(decoding: Array(stored.externalDN!.utf8), as: UTF8.self),
                                               externalID: String(decoding: Array(stored.externalID!.utf8), as: UTF8.self),
                                               fields: PortalFieldValues([.email: String(decoding: Array(stored.email.utf8), as: UTF8.self),
                                                                          .title: offset % 6 == 0 ? "New title \(offset)" : String(decoding: Array(stored[.title]!.utf8), as: UTF8.self)]),
                                               disabled: false),
                          outcome: RuleOutcome(userGroup: defaultUserGroupName, role: "Guest", globalAdmin: false, groupManager: false, decisions: []))
        }
        let snapshot = DirectorySnapshot(users: directory, skipped: [], presentIDs: Set(directory.map(\.mapped.externalID)),
                                         entriesRead: directory.count, userEntries: directory.count, groupsRead: 0, references: 0)
        let shared = try store.loadState(clientID: client.id, sharing: StoredUserSharing(snapshot: snapshot))
        #expect(shared == plain)
        #expect(shared.users.map(\.id) == plain.users.map(\.id))
        func storage(_ text: String?) -> UInt? {
            var copy = text
            return copy?.withUTF8 { UInt(bitPattern: $0.baseAddress) }
        }
        // In the first chunk, the second, and the last rows: an equal title is the directory's, a changed one the store's.
        for offset in [2, 4, PortalStore.sharingChunk + 8, PortalStore.sharingChunk * 2 + 2, count - 1 - (count - 1) % 2] {
            let user = shared.users[offset], mapped = directory[offset / 2].mapped
            #expect(storage(user.email) == storage(mapped.email))
            #expect(storage(user.externalID) == storage(mapped.externalID))
            #expect((storage(user[.title]) == storage(mapped.fields[.title])) == (offset % 6 != 0))
            #expect(user[.title] == "Title of user number \(offset)")
        }
        #expect(storage(shared.users[1].email) != storage(directory[0].mapped.email))
    }

    @Test("a state loaded sharing equals one loaded without for values the portal's SQL may leave: NULLs, numbers, a blob, a NUL, bytes that are not UTF-8")
    func loadStateSharingOddValues() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let group = try temp.int("SELECT id FROM user_groups WHERE client_id = ? AND is_default = 1", [client.id])
        try temp.execute("""
            INSERT INTO client_users (client_id, email, first_name, last_name, title, cell_phone, office_phone, location, role, user_group_id,
                                      global_admin, has_login, enabled, source, external_id, external_dn, created_at, updated_at)
            VALUES (?1, 'odd@acme.example', 42, CAST(X'4DC3' AS TEXT), 'ab' || char(0) || 'cd', 1.5, X'2B31', NULL, 'Admin', ?2,
                    1, 1, 0, 'directory', 'id-odd', NULL, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
                   (?1, 'm\u{E4}tt\u{E4}@acme.example', 'M\u{E4}tt\u{E4}', NULL, 'Same title, too long to be inline', 'portal-edited', NULL, 'Z\u{FC}rich', 'Guest', ?2,
                    0, 0, 1, 'directory', 'id-matched', 'uid=matta,dc=acme', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
                   (?1, 'twin@acme.example', 'Twin', NULL, NULL, NULL, NULL, NULL, 'Guest', ?2,
                    0, 0, 1, 'directory', 'id-twin', 'uid=twin,dc=acme', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
                   (?1, 'portal@acme.example', NULL, NULL, NULL, NULL, NULL, NULL, 'Guest', ?2,
                    0, 0, 1, 'portal', NULL, NULL, '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z')
            """, [client.id, group])
        let plain = try store.loadState(clientID: client.id)
        let odd = try #require(plain.users.first { $0.externalID == "id-odd" })
        #expect(odd[.firstName] == "42" && odd[.lastName] == "M\u{FFFD}" && odd[.title] == "ab" && odd[.cellPhone] == "1.5" && odd[.officePhone] == "+1")
        #expect(odd[.location] == nil && odd.externalDN == nil && odd.user.globalAdmin && !odd.user.enabled)
        // The matched user's directory values: the title and DN as stored, the city not, an office
        // phone the store has none of, no cell phone where the store has one (a portal edit).
        // Two entries share the twin's id: it matches neither, and loads as stored.
        func entry(_ id: String, _ dn: String, _ fields: PortalFieldValues) -> DirectoryUser {
            DirectoryUser(mapped: MappedFields(dn: dn, externalID: id, fields: fields, disabled: false),
                          outcome: RuleOutcome(userGroup: defaultUserGroupName, role: "Guest", globalAdmin: false, groupManager: false, decisions: []))
        }
        let directory = [
            entry("id-matched", "uid=matta,dc=acme", PortalFieldValues([.email: "m\u{E4}tt\u{E4}@acme.example", .firstName: "M\u{E4}tt\u{E4}", .title: "Same title, too long to be inline",
                                                                        .location: "Bern", .officePhone: "+41 31 000"])),
            entry("id-twin", "uid=twin,dc=acme", PortalFieldValues([.email: "twin@acme.example", .firstName: "Twin"])),
            entry("id-twin", "uid=twin2,dc=acme", PortalFieldValues([.email: "twin2@acme.example", .firstName: "Twin"])),
        ]
        let snapshot = DirectorySnapshot(users: directory, skipped: [], presentIDs: ["id-matched", "id-twin"], entriesRead: 3, userEntries: 3,
                                         groupsRead: 0, references: 0)
        let shared = try store.loadState(clientID: client.id, sharing: StoredUserSharing(snapshot: snapshot))
        #expect(shared == plain)
        func bytes(_ state: ClientState) -> [[[UInt8]?]] {
            state.users.map { user in
                (PortalField.allCases.map { user[$0] } + [user.role, user.user.source.rawValue, user.externalID, user.externalDN, user.createdAt, user.updatedAt])
                    .map { $0.map { Array($0.utf8) } }
            }
        }
        #expect(bytes(shared) == bytes(plain))
        let matched = try #require(shared.users.first { $0.externalID == "id-matched" })
        #expect(matched[.location] == "Z\u{FC}rich" && matched[.title] == "Same title, too long to be inline" && matched.externalDN == "uid=matta,dc=acme")
        #expect(matched[.cellPhone] == "portal-edited" && matched[.officePhone] == nil)
        func storage(_ text: String?) -> UInt? {
            var copy = text
            return copy?.withUTF8 { UInt(bitPattern: $0.baseAddress) }
        }
        #expect(storage(matched[.title]) == storage(directory[0].mapped.fields[.title]))
        let twin = try #require(shared.users.first { $0.externalID == "id-twin" })
        #expect(twin.externalDN == "uid=twin,dc=acme" && storage(twin.email) != storage(directory[1].mapped.email))
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

    @Test("an incremental run counts the client's users from the population indexes, never from the table")
    func populationFromIndexes() throws {
        let temp = try TemporaryStore()
        _ = try temp.openWithClient()
        let plan = try temp.sql().read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + StoreSchema.populationSQL, arguments: [1]).map { $0["detail"] as String }
        }
        let searches = plan.filter { $0.contains("client_users") }
        #expect(searches.count == 3, "\(plan)")
        #expect(searches.filter { $0.contains("COVERING INDEX client_users_population") }.count == 2, "\(plan)")
        #expect(searches.filter { $0.contains("INDEX client_users_enabled_admins") }.count == 1, "\(plan)")
        #expect(!plan.contains { $0.hasPrefix("SCAN client_users") }, "\(plan)")
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
