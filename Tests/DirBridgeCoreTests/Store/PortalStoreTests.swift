import Foundation
import GRDB
import Testing
@testable import DirBridgeCore

@Suite("Portal store")
struct PortalStoreTests {
    static let specColumns: [String: [String]] = [
        "clients": ["id", "name", "parent_id", "membership_end_date", "active", "created_at"],
        "user_groups": ["id", "client_id", "name", "is_default", "source", "external_id", "created_at"],
        "client_users": [
            "id", "client_id", "email", "first_name", "last_name", "title", "cell_phone", "office_phone",
            "extension", "location", "role", "user_group_id", "global_admin", "group_manager", "has_login",
            "enabled", "source", "external_id", "external_dn", "created_at", "updated_at",
        ],
        "history": ["id", "client_id", "entity", "entity_id", "action", "changes", "editor", "run_id", "at"],
        "invitations": ["id", "client_id", "user_id", "email", "created_at", "sent_at"],
        "sync_runs": [
            "id", "client_id", "mapping", "directory", "mode", "status", "started_at", "finished_at", "summary",
            "error",
        ],
    ]

    @Test("the schema has every table and column of SPEC section 2", arguments: specColumns.keys.sorted())
    func schemaMatchesSpec(table: String) throws {
        let temp = try TemporaryStore()
        _ = try PortalStore(path: temp.path)
        let columns = try temp.sql().read { db in
            try Row.fetchAll(db, sql: "PRAGMA table_info(\(table))").map { $0["name"] as String }
        }
        let expected = try #require(Self.specColumns[table])
        #expect(Array(columns.prefix(expected.count)) == expected)
    }

    @Test("dirbridge's additions exist: history reason, run details, sync state, leases, the directory cache and the edit log")
    func schemaAdditions() throws {
        let temp = try TemporaryStore()
        let store = try PortalStore(path: temp.path)
        #expect(try store.appliedMigrations() == [StoreSchema.portalSchema, StoreSchema.dirbridgeExtras, StoreSchema.incrementalSync, StoreSchema.affectedPlanning])
        let names = try temp.sql().read { db in
            try ["history", "sync_runs", "sync_state", "leases", "directory_cache", "store_touches"].map { table in
                try Row.fetchAll(db, sql: "PRAGMA table_info(\(table))").map { $0["name"] as String }
            }
        }
        #expect(names[0].contains("reason"))
        #expect(names[1].contains("entries_read") && names[1].contains("plan_hash") && names[1].contains("incremental"))
        #expect(names[2] == ["client", "key", "value", "updated_at"])
        #expect(names[3] == ["client", "holder", "token", "pid", "host", "acquired_at", "expires_at"])
        #expect(names[4] == ["client", "kind", "key", "entry", "external_id", "dn", "email"])
        #expect(names[5] == ["client_id", "entity", "entity_id", "external_id"])
        let pragmas = try temp.sql().read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys"))
        }
        #expect(pragmas.0 == "wal")
    }

    @Test("a new client gets its Default User Group and a created history row, once")
    func ensureClientCreatesDefaultGroup() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let again = try store.ensureClient(ClientSpec(name: "Acme Corp", membershipEndDate: "2027-12-31"))
        #expect(again == client)
        let state = try store.loadState(clientID: client.id)
        #expect(state.userGroups.map(\.name) == ["Default User Group"])
        #expect(state.defaultUserGroup?.isDefault == true)
        let history = try temp.sql().read { db in
            try Row.fetchAll(db, sql: "SELECT entity, action, changes, run_id FROM history")
        }
        #expect(history.count == 1)
        #expect(history.first?["entity"] == "client")
        #expect(history.first?["action"] == "created")
        let changes = try parseChanges(history.first?["changes"] ?? "")
        #expect(changes["name"]?.last as? String == "Acme Corp")
        #expect(changes["membership_end_date"]?.last as? String == "2027-12-31")
        #expect(try store.client(named: "acme corp")?.id == client.id)
    }

    @Test("a child client names its parent, which is created if missing")
    func ensureClientWithParent() throws {
        let temp = try TemporaryStore()
        let store = try PortalStore(path: temp.path)
        let child = try store.ensureClient(ClientSpec(name: "Acme Labs", parentName: "Acme Holding"))
        let parent = try #require(try store.client(named: "Acme Holding"))
        #expect(child.parentID == parent.id)
        #expect(try temp.count("user_groups") == 2)
        let moved = try store.ensureClient(ClientSpec(name: "ACME LABS", membershipEndDate: "2028-06-30"))
        #expect(moved.id == child.id && moved.name == "Acme Labs")
        #expect(moved.parentID == parent.id && moved.membershipEndDate == "2028-06-30")
        #expect(try store.clients().count == 2)
        let update = try temp.sql().read { db in
            try String.fetchOne(db, sql: "SELECT changes FROM history WHERE action = 'updated' AND entity = 'client'")
        }
        #expect(update == #"{"membership_end_date":[null,"2028-06-30"]}"#)
    }

    @Test("emails are unique per client, case-insensitively")
    func emailUniqueCaseInsensitive() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "Ann.Lee@acme.example", externalID: "1")]),
            run: applyRun(clientID: client.id))
        let error = #expect(throws: StoreError.self) {
            try store.apply(
                ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "ann.lee@ACME.example", externalID: "2")]),
                run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .duplicate)
        #expect(error?.message.contains("ann.lee@ACME.example") == true)
        #expect(try temp.count("client_users") == 1)
    }

    @Test("user group names are unique per client, case-insensitively")
    func groupNameUniqueCaseInsensitive() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")]),
                            run: applyRun(clientID: client.id))
        let error = #expect(throws: StoreError.self) {
            try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "SALES")]),
                            run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .duplicate)
        let raw = #expect(throws: DatabaseError.self) {
            try temp.sql().write { db in
                try db.execute(
                    sql: "INSERT INTO user_groups (client_id, name, is_default, source, created_at) VALUES (?, 'default user group', 0, 'portal', 'x')",
                    arguments: [client.id])
            }
        }
        #expect(raw?.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE)
    }

    @Test("Global Admin outside the Default User Group is refused by the API")
    func globalAdminRuleThroughAPI() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let error = #expect(throws: StoreError.self) {
            try store.apply(
                ChangeSet(
                    clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")],
                    userCreations: [NewClientUser(email: "boss@acme.example", userGroupName: "sales", globalAdmin: true)]),
                run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .invariantViolation)
        #expect(error?.message.contains(StoreSchema.globalAdminRule) == true)
        #expect(error?.message.contains("boss@acme.example") == true)
        #expect(try temp.count("user_groups") == 1)
        #expect(try temp.count("sync_runs") == 0)
    }

    @Test("Group Manager in the Default User Group is refused by the API")
    func groupManagerRuleThroughAPI() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let error = #expect(throws: StoreError.self) {
            try store.apply(
                ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "lead@acme.example", groupManager: true)]),
                run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .invariantViolation)
        #expect(error?.message.contains(StoreSchema.groupManagerRule) == true)
        #expect(try temp.count("client_users") == 0)
    }

    @Test("the flag rules hold for raw SQL updates too (triggers)")
    func flagRulesThroughRawSQL() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(
                clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")],
                userCreations: [
                    NewClientUser(email: "default@acme.example", externalID: "d"),
                    NewClientUser(email: "custom@acme.example", userGroupName: "Sales", externalID: "c"),
                ]),
            run: applyRun(clientID: client.id))
        let queue = try temp.sql()
        let managerInDefault = #expect(throws: DatabaseError.self) {
            try queue.write { try $0.execute(sql: "UPDATE client_users SET group_manager = 1 WHERE email = 'default@acme.example'") }
        }
        #expect(managerInDefault?.message == StoreSchema.groupManagerRule)
        let adminInCustom = #expect(throws: DatabaseError.self) {
            try queue.write { try $0.execute(sql: "UPDATE client_users SET global_admin = 1 WHERE email = 'custom@acme.example'") }
        }
        #expect(adminInCustom?.message == StoreSchema.globalAdminRule)
        let flags = try queue.read { db in
            try Int.fetchOne(db, sql: "SELECT SUM(global_admin) + SUM(group_manager) FROM client_users")
        }
        #expect(flags == 0)
        try queue.write { try $0.execute(sql: "UPDATE client_users SET global_admin = 1 WHERE email = 'default@acme.example'") }
        let moveAdmin = #expect(throws: DatabaseError.self) {
            try queue.write { db in
                try db.execute(sql: """
                    UPDATE client_users SET user_group_id = (SELECT id FROM user_groups WHERE name = 'Sales')
                    WHERE email = 'default@acme.example'
                    """)
            }
        }
        #expect(moveAdmin?.message == StoreSchema.globalAdminRule)
    }

    @Test("a change set is written with one history row per changed entity")
    func applyWritesHistory() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let firstRun = try store.apply(
            ChangeSet(
                clientID: client.id, editor: "acme-sync",
                groupCreations: [NewUserGroup(name: "Sales", externalID: "g-1", reason: "rule 2: cn=dept-sales")],
                userCreations: [
                    NewClientUser(email: "ann@acme.example", fields: [.firstName: "Ann", .lastName: "Lee", .title: "CEO"],
                                  hasLogin: true, externalID: "u-1", externalDN: "uid=ann,ou=people", invite: true,
                                  reason: "in ou=people"),
                    NewClientUser(email: "bob@acme.example", fields: [.firstName: "Bob"], userGroupName: "SALES",
                                  groupManager: true, externalID: "u-2"),
                ]),
            run: applyRun(clientID: client.id))
        let state = try store.loadState(clientID: client.id)
        let ann = try #require(state.users.first { $0.email == "ann@acme.example" })
        let bob = try #require(state.users.first { $0.email == "bob@acme.example" })
        let sales = try #require(state.userGroups.first { $0.name == "Sales" })
        #expect(bob.userGroupID == sales.id && bob.groupManager)
        #expect(ann.hasLogin && ann.externalDN == "uid=ann,ou=people" && ann.role == "Guest")

        let secondRun = try store.apply(
            ChangeSet(
                clientID: client.id, editor: "acme-sync",
                userUpdates: [
                    ClientUserUpdate(
                        userID: bob.id, action: .groupChanged,
                        fields: [.userGroup: FieldChange(old: "Sales", new: "Default User Group"),
                                 .groupManager: FieldChange(old: true, new: false),
                                 .globalAdmin: FieldChange(old: false, new: true),
                                 .field(.title): FieldChange(old: nil, new: "Head of \"Sales\"")],
                        reason: "rule 1: cn=portal-admins"),
                ],
                invitations: [InvitationRequest(userID: ann.id, reason: "resend")]),
            run: applyRun(clientID: client.id))
        #expect(secondRun == firstRun + 1)

        let rows = try temp.sql().read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM history WHERE run_id IS NOT NULL ORDER BY id")
        }
        #expect(rows.map { $0["action"] as String } == ["group_created", "created", "created", "group_changed", "invited"])
        #expect(rows.allSatisfy { ($0["editor"] as String) == "acme-sync" })
        #expect(rows.allSatisfy { ($0["at"] as String).wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/) != nil })
        #expect(rows.map { $0["run_id"] as Int64 } == [firstRun, firstRun, firstRun, secondRun, secondRun])
        #expect(rows[0]["reason"] == "rule 2: cn=dept-sales")

        let created = try parseChanges(rows[1]["changes"])
        #expect(created["email"]?.first is NSNull)
        #expect(created["email"]?.last as? String == "ann@acme.example")
        #expect(created["user_group"]?.last as? String == "Default User Group")
        #expect(created["has_login"]?.last as? Bool == true)
        #expect(created["invited"]?.last as? Bool == true)
        #expect(created["cell_phone"] == nil)

        let changedText: String = rows[3]["changes"]
        #expect(changedText.hasPrefix("{\"global_admin\":[false,true],\"group_manager\":[true,false],\"title\":[null,"))
        let changed = try parseChanges(changedText)
        #expect(changed["title"]?.last as? String == "Head of \"Sales\"")
        #expect(changed["user_group"]?.first as? String == "Sales")
        #expect(rows[3]["entity_id"] == bob.id)

        let movedBob = try #require(try store.loadState(clientID: client.id).users.first { $0.id == bob.id })
        #expect(movedBob.globalAdmin && !movedBob.groupManager && movedBob[.title] == "Head of \"Sales\"")
        #expect(movedBob.userGroupID == state.defaultUserGroup?.id)

        #expect(try temp.count("invitations") == 2)
        let runs = try temp.sql().read { db in
            try Row.fetchAll(db, sql: "SELECT status, mode, summary, entries_read, finished_at FROM sync_runs ORDER BY id")
        }
        #expect(runs[0]["summary"] == "{\"created\":2,\"group_created\":1}")
        #expect(runs[1]["summary"] == "{\"group_changed\":1,\"invited\":1}")
        #expect(runs[0]["mode"] as String == "apply")
        #expect(runs[0]["status"] as String == "succeeded")
        #expect(runs[0]["entries_read"] as Int == 3)
        #expect((runs[0]["finished_at"] as String?) != nil)
    }

    @Test("users created in batches: each history row and invitation belongs to its user, across batch boundaries")
    func batchedCreationsKeepTheirIDs() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        // 75 users: two full batches of 32 and a rest of 11; every seventh is invited.
        let creations = (0..<75).map { index in
            NewClientUser(email: "user\(index)@acme.example", fields: [.title: "Title \(index)"],
                          externalID: "ext-\(index)", invite: index % 7 == 0)
        }
        _ = try store.apply(ChangeSet(clientID: client.id, userCreations: creations), run: applyRun(clientID: client.id))
        try temp.sql().read { db in
            let users = try Row.fetchAll(db, sql: "SELECT id, email, title, external_id FROM client_users ORDER BY id")
            #expect(users.count == 75)
            #expect(users.map { $0["email"] as String } == creations.map(\.user.email))
            let history = try Row.fetchAll(db, sql: "SELECT entity_id, changes FROM history WHERE entity = 'user' AND action = 'created' ORDER BY id")
            #expect(history.count == 75)
            let emailByID = Dictionary(uniqueKeysWithValues: users.map { ($0["id"] as Int64, $0["email"] as String) })
            for row in history {
                let changes = try parseChanges(row["changes"])
                let email = try #require(emailByID[row["entity_id"]])
                #expect(changes["email"]?.last as? String == email)
                let index = try #require(Int(email.dropFirst(4).prefix { $0.isNumber }))
                #expect(changes["title"]?.last as? String == "Title \(index)")
                #expect((changes["invited"] != nil) == (index % 7 == 0))
            }
            let invited = try Row.fetchAll(db, sql: """
                SELECT i.email AS invited, u.email AS owner FROM invitations i JOIN client_users u ON u.id = i.user_id
                """)
            #expect(invited.count == 11)
            #expect(invited.allSatisfy { ($0["invited"] as String) == ($0["owner"] as String) })
        }
    }

    @Test("a duplicate in the middle of a batch is named in the error and nothing is written")
    func duplicateInsideABatchIsNamed() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let before = try ["sync_runs", "client_users", "history", "invitations"].map(temp.count)
        var creations = (0..<40).map { NewClientUser(email: "user\($0)@acme.example", externalID: "ext-\($0)", invite: true) }
        creations[37] = NewClientUser(email: "USER3@acme.example", externalID: "ext-37")
        let error = #expect(throws: StoreError.self) {
            try store.apply(ChangeSet(clientID: client.id, userCreations: creations), run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .duplicate)
        #expect(error?.message.contains("USER3@acme.example") == true)
        #expect(try ["sync_runs", "client_users", "history", "invitations"].map(temp.count) == before)
    }

    @Test("a change set that fails half-way leaves nothing behind, not even the run")
    func failedApplyRollsBack() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let before = try ["sync_runs", "client_users", "user_groups", "history", "invitations"].map(temp.count)
        let error = #expect(throws: StoreError.self) {
            try store.apply(
                ChangeSet(
                    clientID: client.id, groupCreations: [NewUserGroup(name: "Engineering")],
                    userCreations: [
                        NewClientUser(email: "first@acme.example", externalID: "1", invite: true),
                        NewClientUser(email: "FIRST@acme.example", externalID: "2"),
                    ]),
                run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .duplicate)
        #expect(error?.kind.exitCode == 4)
        let after = try ["sync_runs", "client_users", "user_groups", "history", "invitations"].map(temp.count)
        #expect(after == before)
    }

    @Test("an update naming an unknown field, user or group is refused")
    func invalidUpdatesRefused() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        let cases: [(ClientUserUpdate, StoreError.Code)] = [
            (ClientUserUpdate(userID: 999, action: .updated, fields: [.field(.title): FieldChange(old: nil, new: "x")]), .unknownUser),
            (ClientUserUpdate(userID: 1, action: .updated, fields: [.field(.email): FieldChange(old: "x@acme.example", new: nil)]), .invalidChange),
            (ClientUserUpdate(userID: 1, action: .groupChanged, fields: [.userGroup: FieldChange(old: nil, new: "Nope")]), .unknownUserGroup),
        ]
        for (update, code) in cases {
            let error = #expect(throws: StoreError.self) {
                try store.apply(ChangeSet(clientID: client.id, userUpdates: [update]), run: applyRun(clientID: client.id))
            }
            #expect(error?.code == code)
        }
        #expect(try temp.count("sync_runs") == 0)
    }

    @Test("a dry run records only its sync run")
    func recordRunWritesOnlyTheRun() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        var run = applyRun(clientID: client.id)
        run.mode = .dryRun
        run.summary = ["create": 12, "update": 3]
        let id = try store.recordRun(run)
        let row = try #require(try temp.sql().read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sync_runs WHERE id = ?", arguments: [id])
        })
        #expect(row["mode"] == "dry-run")
        #expect(row["summary"] == "{\"create\":12,\"update\":3}")
        #expect(row["started_at"] == "2026-11-18T11:06:40Z")
        #expect(try temp.count("history") == 1)
    }

    @Test("a store written by the first migration opens after the later ones")
    func olderStoreIsMigrated() throws {
        let temp = try TemporaryStore()
        do {
            var migrator = DatabaseMigrator()
            StoreSchema.registerPortalSchema(in: &migrator)
            let queue = try DatabaseQueue(path: temp.path)
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
        #expect(try store.appliedMigrations() == [StoreSchema.portalSchema, StoreSchema.dirbridgeExtras, StoreSchema.incrementalSync, StoreSchema.affectedPlanning])
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
        try temp.sql().write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9-from-the-future')")
        }
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
