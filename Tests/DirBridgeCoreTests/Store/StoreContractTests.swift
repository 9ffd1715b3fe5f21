import Foundation
import Testing
@testable import DirBridgeCore

/// What every portal store must do, on SQLite and on PostgreSQL alike: one suite, each test
/// run once per store. What only one store has (SQLite's file, pragmas and GRDB migrations)
/// is in ``PortalStoreTests``.
@Suite("Portal store contract, on SQLite and PostgreSQL")
struct StoreContractTests {
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

    @Test("the schema has every table and column of SPEC section 2, and dirbridge's additions", arguments: StoreKind.allCases)
    func schemaMatchesSpec(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let store = try temp.open()
        #expect(try store.appliedMigrations() == StoreSchema.identifiers)
        func columns(_ table: String) throws -> [String] {
            switch kind {
            case .sqlite: try temp.rows("SELECT name FROM pragma_table_info('\(table)')").map { $0["name"] as String }
            case .postgres: try temp.rows("SELECT column_name AS name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [table])
                .map { $0["name"] as String }
            }
        }
        for (table, expected) in Self.specColumns {
            #expect(Array(try columns(table).prefix(expected.count)) == expected, "\(table)")
        }
        #expect(try columns("history").contains("reason"))
        let runs = try columns("sync_runs")
        #expect(runs.contains("entries_read") && runs.contains("plan_hash") && runs.contains("incremental"))
        #expect(try columns("sync_state") == ["client", "key", "value", "updated_at"])
        #expect(try columns("leases") == ["client", "holder", "token", "pid", "host", "acquired_at", "expires_at", "process"])
        #expect(try columns("directory_cache") == ["client", "kind", "key", "entry", "external_id", "dn", "email"])
        #expect(try columns("store_touches") == ["client_id", "entity", "entity_id", "external_id"])
        // Opening again migrates nothing and keeps the data.
        _ = try temp.openWithClient()
        #expect(try temp.open().clients().map(\.name) == ["Acme Corp"])
    }

    @Test("a new client gets its Default User Group and a created history row, once", arguments: StoreKind.allCases)
    func ensureClientCreatesDefaultGroup(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        let again = try store.ensureClient(ClientSpec(name: "Acme Corp", membershipEndDate: "2027-12-31"))
        #expect(again == client)
        let state = try store.loadState(clientID: client.id)
        #expect(state.userGroups.map(\.name) == ["Default User Group"])
        #expect(state.defaultUserGroup?.isDefault == true)
        let history = try temp.rows("SELECT entity, action, CAST(changes AS TEXT) AS changes, run_id FROM history")
        #expect(history.count == 1)
        #expect(history.first?["entity"] == "client")
        #expect(history.first?["action"] == "created")
        let changes = try parseChanges(history.first?["changes"] ?? "")
        #expect(changes["name"]?.last as? String == "Acme Corp")
        #expect(changes["membership_end_date"]?.last as? String == "2027-12-31")
        #expect(try store.client(named: "acme corp")?.id == client.id)
        #expect(client.createdAt.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/) != nil)
    }

    @Test("a child client names its parent, which is created if missing", arguments: StoreKind.allCases)
    func ensureClientWithParent(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let store = try temp.open()
        let child = try store.ensureClient(ClientSpec(name: "Acme Labs", parentName: "Acme Holding"))
        let parent = try #require(try store.client(named: "Acme Holding"))
        #expect(child.parentID == parent.id)
        #expect(try temp.count("user_groups") == 2)
        let moved = try store.ensureClient(ClientSpec(name: "ACME LABS", membershipEndDate: "2028-06-30"))
        #expect(moved.id == child.id && moved.name == "Acme Labs")
        #expect(moved.parentID == parent.id && moved.membershipEndDate == "2028-06-30")
        #expect(try store.clients().count == 2)
        #expect(try store.client(named: "Acme Labs")?.membershipEndDate == "2028-06-30")
        let update: String? = try temp.value("SELECT CAST(changes AS TEXT) FROM history WHERE action = 'updated' AND entity = 'client'")
        #expect(try parseChanges(update ?? "")["membership_end_date"]?.last as? String == "2028-06-30")
        #expect(try store.clientListing().map { "\($0.name)<\($0.parent ?? "")" } == ["Acme Holding<", "Acme Labs<Acme Holding"])
    }

    @Test("emails are unique per client, case-insensitively", arguments: StoreKind.allCases)
    func emailUniqueCaseInsensitive(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
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
        // Case is folded for ASCII letters only (SQLite's NOCASE), whatever PostgreSQL's locale:
        // two emails differing in a non-ASCII letter's case are two users on both stores.
        _ = try store.apply(
            ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "ÉLISE@acme.example", externalID: "3"),
                                                           NewClientUser(email: "élise@acme.example", externalID: "4")]),
            run: applyRun(clientID: client.id))
        #expect(try temp.count("client_users") == 3)
    }

    @Test("user group names are unique per client, case-insensitively", arguments: StoreKind.allCases)
    func groupNameUniqueCaseInsensitive(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")]),
                            run: applyRun(clientID: client.id))
        let error = #expect(throws: StoreError.self) {
            try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "SALES")]),
                            run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .duplicate)
        let raw = #expect(throws: TestSQLError.self) {
            try temp.execute("""
                INSERT INTO user_groups (client_id, name, is_default, source, created_at)
                VALUES (?, 'default user group', false, 'portal', '2026-01-01T00:00:00Z')
                """, [client.id])
        }
        #expect(raw?.unique == true)
    }

    @Test("group names differing only in a non-ASCII letter's case are two groups, and each user lands in its own", arguments: StoreKind.allCases)
    func nonASCIIGroupNames(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Ärzte"), NewUserGroup(name: "ärzte")],
                      userCreations: [NewClientUser(email: "upper@acme.example", userGroupName: "ÄRZTE", externalID: "1"),
                                      NewClientUser(email: "lower@acme.example", userGroupName: "ärzte", externalID: "2")]),
            run: applyRun(clientID: client.id))
        #expect(try temp.user("upper@acme.example")?["group_name"] as String? == "Ärzte")
        #expect(try temp.user("lower@acme.example")?["group_name"] as String? == "ärzte")
    }

    @Test("Global Admin outside the Default User Group is refused by the API", arguments: StoreKind.allCases)
    func globalAdminRuleThroughAPI(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
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

    @Test("a flag rule broken by one user deep in a large creation is named, and nothing is written", arguments: StoreKind.allCases, [true, false])
    func ruleBrokenInLargeCreation(kind: StoreKind, globalAdmin: Bool) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        let tables = ["sync_runs", "client_users", "user_groups", "history", "invitations", "store_changes"]
        let before = try tables.map(temp.count)
        // User 700 is a Global Admin in Sales, or a Group Manager in the Default User Group.
        let creations = (0..<1_200).map { index in
            NewClientUser(email: "user\(index)@acme.example", userGroupName: index == 700 && globalAdmin ? "Sales" : nil,
                          globalAdmin: index == 700 && globalAdmin, groupManager: index == 700 && !globalAdmin, externalID: "ext-\(index)",
                          invite: index % 5 == 0)
        }
        let error = #expect(throws: StoreError.self) {
            try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")], userCreations: creations),
                            run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .invariantViolation)
        #expect(error?.message.contains(globalAdmin ? StoreSchema.globalAdminRule : StoreSchema.groupManagerRule) == true)
        #expect(error?.message.contains("user700@acme.example") == true)
        #expect(try tables.map(temp.count) == before)
        if kind == .sqlite {
            // The rolled-back transaction took the triggers' drop with it.
            #expect(try temp.int("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ('client_users_rules_on_insert', 'client_users_counted_insert')") == 2)
        }
    }

    @Test("Group Manager in the Default User Group is refused by the API", arguments: StoreKind.allCases)
    func groupManagerRuleThroughAPI(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
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

    @Test("the flag rules hold for raw SQL updates too (triggers)", arguments: StoreKind.allCases)
    func flagRulesThroughRawSQL(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(
                clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")],
                userCreations: [
                    NewClientUser(email: "default@acme.example", externalID: "d"),
                    NewClientUser(email: "custom@acme.example", userGroupName: "Sales", externalID: "c"),
                ]),
            run: applyRun(clientID: client.id))
        let managerInDefault = #expect(throws: TestSQLError.self) {
            try temp.execute("UPDATE client_users SET group_manager = true WHERE email = 'default@acme.example'")
        }
        #expect(managerInDefault?.message == StoreSchema.groupManagerRule)
        let adminInCustom = #expect(throws: TestSQLError.self) {
            try temp.execute("UPDATE client_users SET global_admin = true WHERE email = 'custom@acme.example'")
        }
        #expect(adminInCustom?.message == StoreSchema.globalAdminRule)
        #expect(try temp.int("SELECT count(*) FROM client_users WHERE global_admin OR group_manager") == 0)
        try temp.execute("UPDATE client_users SET global_admin = true WHERE email = 'default@acme.example'")
        let moveAdmin = #expect(throws: TestSQLError.self) {
            try temp.execute("""
                UPDATE client_users SET user_group_id = (SELECT id FROM user_groups WHERE name = 'Sales')
                WHERE email = 'default@acme.example'
                """)
        }
        #expect(moveAdmin?.message == StoreSchema.globalAdminRule)
        let defaultMoved = #expect(throws: TestSQLError.self) {
            try temp.execute("UPDATE user_groups SET is_default = false WHERE name = 'Default User Group'")
        }
        #expect(defaultMoved?.message == StoreSchema.defaultGroupRule)
    }

    @Test("a state loaded sharing the directory's values equals one loaded without, and shares the equal values' storage",
          arguments: StoreKind.allCases)
    func loadStateSharingDirectoryValues(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(clientID: client.id, editor: "acme-sync", userCreations: [
                NewClientUser(email: "ann@acme.example", fields: [.firstName: "Ann", .title: "Chief Executive Officer"],
                              externalID: "0b6e1c2a-7d4e-4f7a-9a51-3c1f6f0d2e11", externalDN: "uid=ann,ou=people,dc=acme,dc=example"),
                NewClientUser(email: "bob@acme.example", fields: [.firstName: "Bob", .title: "Sales Representative"],
                              externalID: "5f0c9b7e-2a41-4c3d-8e6f-9b1a2c3d4e5f", externalDN: "uid=bob,ou=people,dc=acme,dc=example"),
                NewClientUser(email: "carol@acme.example", source: .portal),
                // Precomposed ("ü" as one code point): the directory below has the decomposed form.
                NewClientUser(email: "dana@acme.example", fields: [.lastName: "M\u{FC}ller-L\u{FC}denscheidt"],
                              externalID: "9d2c4e6f-8a0b-4c1d-9e2f-3a4b5c6d7e8f", externalDN: "uid=dana,ou=people,dc=acme,dc=example"),
            ]),
            run: applyRun(clientID: client.id))
        let plain = try store.loadState(clientID: client.id)
        func mapped(_ stored: StoredUser, fields: PortalFieldValues, dn: String) -> DirectoryUser {
            // New strings, not the loaded ones: equal values in storage of their own.
            DirectoryUser(mapped: MappedFields(dn: String(decoding: Array(dn.utf8), as: UTF8.self),
                                               externalID: String(decoding: Array((stored.externalID ?? "").utf8), as: UTF8.self),
                                               fields: fields, disabled: false),
                          outcome: RuleOutcome(userGroup: defaultUserGroupName, role: "Guest", globalAdmin: false, groupManager: false, decisions: []))
        }
        let ann = try #require(plain.users.first { $0.email == "ann@acme.example" })
        let bob = try #require(plain.users.first { $0.email == "bob@acme.example" })
        let dana = try #require(plain.users.first { $0.email == "dana@acme.example" })
        // Ann as stored; Bob with a new title and DN (only his equal values can be shared).
        let directory = [
            mapped(ann, fields: PortalFieldValues([.email: "ann@acme.example", .firstName: "Ann", .title: "Chief Executive Officer"]),
                   dn: "uid=ann,ou=people,dc=acme,dc=example"),
            mapped(bob, fields: PortalFieldValues([.email: "bob@acme.example", .firstName: "Bob", .title: "Sales Director"]),
                   dn: "uid=robert,ou=people,dc=acme,dc=example"),
            // Dana's name as Strings compare equal, in other bytes ("u" and a combining diaeresis).
            mapped(dana, fields: PortalFieldValues([.email: "dana@acme.example", .lastName: "Mu\u{308}ller-Lu\u{308}denscheidt"]),
                   dn: "uid=dana,ou=people,dc=acme,dc=example"),
        ]
        #expect(directory[2].mapped.fields == dana.user.fields)
        let snapshot = DirectorySnapshot(users: directory, skipped: [], presentIDs: Set(directory.map(\.mapped.externalID)),
                                         entriesRead: 3, userEntries: 3, groupsRead: 0, references: 0)
        let shared = try store.loadState(clientID: client.id, sharing: StoredUserSharing(snapshot: snapshot))
        #expect(shared == plain)
        /// Where a string's bytes are (compared while both strings are alive).
        func storage(_ text: String?) -> UInt? {
            var copy = text
            return copy?.withUTF8 { UInt(bitPattern: $0.baseAddress) }
        }
        // Byte for byte the stored values (a saved plan's fingerprint hashes the bytes).
        func bytes(_ state: ClientState) -> [[[UInt8]]] {
            state.users.map { user in
                (PortalField.allCases.map { user[$0] } + [user.externalID, user.externalDN, user.createdAt, user.updatedAt]).map { Array(($0 ?? "").utf8) }
            }
        }
        #expect(bytes(shared) == bytes(plain))
        let sharedDana = try #require(shared.users.first { $0.id == dana.id })
        #expect(Array(sharedDana[.lastName]!.utf8) == Array("M\u{FC}ller-L\u{FC}denscheidt".utf8))
        #expect(storage(sharedDana.email) == storage(directory[2].mapped.email))
        let sharedAnn = try #require(shared.users.first { $0.id == ann.id })
        let sharedBob = try #require(shared.users.first { $0.id == bob.id })
        #expect(storage(sharedAnn[.title]) == storage(directory[0].mapped.fields[.title]))
        #expect(storage(sharedAnn.email) == storage(directory[0].mapped.email))
        #expect(storage(sharedAnn.externalDN) == storage(directory[0].mapped.dn))
        #expect(storage(sharedAnn.externalID) == storage(directory[0].mapped.externalID))
        #expect(storage(sharedBob.email) == storage(directory[1].mapped.email))
        #expect(storage(sharedBob[.title]) != storage(directory[1].mapped.fields[.title]) && sharedBob[.title] == "Sales Representative")
        #expect(sharedBob.externalDN == "uid=bob,ou=people,dc=acme,dc=example")
        // The users one apply wrote share its time.
        #expect(storage(sharedAnn.createdAt) == storage(sharedBob.createdAt) && sharedAnn.createdAt == ann.createdAt)
    }

    @Test("a client's users load in id order, and only its own: rows lying together or spread among another client's",
          arguments: StoreKind.allCases)
    func loadStateAmongOtherClients(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, acme) = try temp.openWithClient()
        let other = try store.ensureClient(ClientSpec(name: "Other Corp"))
        func create(_ client: ClientRecord, _ names: [String]) throws {
            _ = try store.apply(ChangeSet(clientID: client.id, editor: "acme-sync", userCreations: names.map {
                NewClientUser(email: "\($0)@\(client.name.prefix(4).lowercased()).example", externalID: "\(client.id)-\($0)")
            }), run: applyRun(clientID: client.id))
        }
        // Acme: ann, then eight of Other's users, then bob and carol; Other: those eight, then dave.
        try create(acme, ["ann"])
        try create(other, (1...8).map { "user\($0)" })
        try create(acme, ["carol", "bob"])
        try create(other, ["dave"])
        let acmeState = try store.loadState(clientID: acme.id)
        let otherState = try store.loadState(clientID: other.id)
        // On SQLite, Acme's three rows span eleven ids (loaded through the index), Other's nine
        // span eleven (its id range is scanned, Acme's two rows in it skipped).
        #expect(acmeState.users.count == 3 && Set(acmeState.users.map(\.email)) == ["ann@acme.example", "bob@acme.example", "carol@acme.example"])
        #expect(otherState.users.count == 9 && Set(otherState.users.map(\.email)) == Set((1...8).map { "user\($0)@othe.example" } + ["dave@othe.example"]))
        for state in [acmeState, otherState] {
            #expect(state.users.map(\.id) == state.users.map(\.id).sorted())
            #expect(state.users.allSatisfy { $0.clientID == state.client.id })
        }
    }

    @Test("an incremental run's counts of the whole client: directory users, enabled or not, and enabled Global Admins of any source",
          arguments: StoreKind.allCases)
    func partialStatePopulation(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, acme) = try temp.openWithClient()
        let other = try store.ensureClient(ClientSpec(name: "Other Corp"))
        func user(_ name: String, _ client: ClientRecord, enabled: Bool = true, admin: Bool = false, source: RecordSource = .directory) -> NewClientUser {
            NewClientUser(email: "\(name)@\(client.name.prefix(4).lowercased()).example", globalAdmin: admin, enabled: enabled, source: source,
                          externalID: source == .directory ? "\(client.id)-\(name)" : nil)
        }
        _ = try store.apply(ChangeSet(clientID: acme.id, editor: "acme-sync", userCreations: [
            user("ann", acme), user("bob", acme), user("carol", acme, enabled: false),
            user("dana", acme, admin: true), user("erin", acme, enabled: false, admin: true),
            user("fay", acme, admin: true, source: .portal), user("gus", acme, source: .portal),
            user("hal", acme, enabled: false, source: .portal),
        ]), run: applyRun(clientID: acme.id))
        // Another client's users, admins among them, count for it only.
        _ = try store.apply(ChangeSet(clientID: other.id, editor: "acme-sync", userCreations: [
            user("ivy", other, admin: true), user("jon", other, enabled: false),
        ]), run: applyRun(clientID: other.id))
        let cache = try #require(store as? any DirectoryCacheStoring)
        let acmeState = try cache.loadPartialState(clientID: acme.id, externalIDs: ["\(acme.id)-ann"], emails: [], userIDs: [])
        #expect(acmeState.population == ClientPopulation(enabledDirectoryUsers: 3, directoryUsers: 5, enabledGlobalAdmins: 2))
        #expect(acmeState.state.users.map(\.email) == ["ann@acme.example"])
        let otherState = try cache.loadPartialState(clientID: other.id, externalIDs: [], emails: [], userIDs: [])
        #expect(otherState.population == ClientPopulation(enabledDirectoryUsers: 1, directoryUsers: 2, enabledGlobalAdmins: 1))
        // A portal edit changes the counts: Dana disabled, Gus made a directory user.
        try temp.execute("UPDATE client_users SET enabled = \(kind == .sqlite ? "0" : "false") WHERE email = 'dana@acme.example'")
        try temp.execute("UPDATE client_users SET source = 'directory' WHERE email = 'gus@acme.example'")
        let edited = try cache.loadPartialState(clientID: acme.id, externalIDs: [], emails: [], userIDs: [])
        #expect(edited.population == ClientPopulation(enabledDirectoryUsers: 3, directoryUsers: 6, enabledGlobalAdmins: 1))
    }

    @Test("a change set is written with one history row per changed entity", arguments: StoreKind.allCases)
    func applyWritesHistory(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
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
        #expect(ann.createdAt.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/) != nil)

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
        #expect(secondRun > firstRun)

        let rows = try temp.rows("""
            SELECT action, editor, CAST(at AS TEXT) AS at, run_id, reason, entity_id, CAST(changes AS TEXT) AS changes
            FROM history WHERE run_id IS NOT NULL ORDER BY id
            """)
        #expect(rows.map { $0["action"] as String } == ["group_created", "created", "created", "group_changed", "invited"])
        #expect(rows.allSatisfy { ($0["editor"] as String) == "acme-sync" })
        #expect(rows.map { $0["run_id"] as Int64 } == [firstRun, firstRun, firstRun, secondRun, secondRun])
        #expect(rows[0]["reason"] == "rule 2: cn=dept-sales")
        let listed = try store.historyListing(userEmail: nil, runID: nil, clientName: "Acme Corp").filter { $0.runID != nil }
        #expect(listed.allSatisfy { $0.at.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/) != nil })
        #expect(listed.map(\.subject) == ["Sales", "ann@acme.example", "bob@acme.example", "bob@acme.example", "ann@acme.example"])

        let created = try parseChanges(rows[1]["changes"])
        #expect(created["email"]?.first is NSNull)
        #expect(created["email"]?.last as? String == "ann@acme.example")
        #expect(created["user_group"]?.last as? String == "Default User Group")
        #expect(created["has_login"]?.last as? Bool == true)
        #expect(created["invited"]?.last as? Bool == true)
        #expect(created["cell_phone"] == nil)

        let changed = try parseChanges(rows[3]["changes"])
        #expect(changed["global_admin"]?.map { $0 as? Bool } == [false, true])
        #expect(changed["group_manager"]?.map { $0 as? Bool } == [true, false])
        #expect(changed["title"]?.last as? String == "Head of \"Sales\"")
        #expect(changed["user_group"]?.first as? String == "Sales")
        #expect(rows[3]["entity_id"] == bob.id)

        let movedBob = try #require(try store.loadState(clientID: client.id).users.first { $0.id == bob.id })
        #expect(movedBob.globalAdmin && !movedBob.groupManager && movedBob[.title] == "Head of \"Sales\"")
        #expect(movedBob.userGroupID == state.defaultUserGroup?.id)

        #expect(try temp.count("invitations") == 2)
        let runs = try temp.rows("SELECT status, mode, CAST(summary AS TEXT) AS summary, entries_read, finished_at FROM sync_runs ORDER BY id")
        #expect(try parseCounts(runs[0]["summary"]) == ["created": 2, "group_created": 1])
        #expect(try parseCounts(runs[1]["summary"]) == ["group_changed": 1, "invited": 1])
        #expect(runs[0]["mode"] as String == "apply")
        #expect(runs[0]["status"] as String == "succeeded")
        #expect(runs[0]["entries_read"] as Int == 3)
        #expect((runs[0]["finished_at"] as String?) != nil)
        #expect(try store.runListing().map(\.summary) == [["created": 2, "group_created": 1], ["group_changed": 1, "invited": 1]])
    }

    @Test("users created in batches: each history row and invitation belongs to its user, across batch boundaries", arguments: StoreKind.allCases)
    func batchedCreationsKeepTheirIDs(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        // 2,075 users: full batches on either store and a rest, and on SQLite two chunks prepared
        // on another thread and a rest; every seventh is invited, every third is in Sales.
        let creations = (0..<2_075).map { index in
            NewClientUser(email: "user\(index)@acme.example", fields: [.title: "Title \(index)"],
                          userGroupName: index % 3 == 0 ? "SALES" : nil, externalID: "ext-\(index)", invite: index % 7 == 0)
        }
        _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")], userCreations: creations),
                            run: applyRun(clientID: client.id))
        let users = try temp.rows("SELECT u.id, u.email, u.title, u.external_id, g.name AS user_group FROM client_users u JOIN user_groups g ON g.id = u.user_group_id ORDER BY u.id")
        #expect(users.count == 2_075)
        #expect(users.map { $0["email"] as String } == creations.map(\.user.email))
        #expect(users.map { $0["user_group"] as String } == creations.map { $0.userGroupName == nil ? "Default User Group" : "Sales" })
        #expect(users.map { $0["external_id"] as String } == creations.map { $0.user.externalID ?? "" })
        let history = try temp.rows("SELECT entity_id, CAST(changes AS TEXT) AS changes FROM history WHERE entity = 'user' AND action = 'created' ORDER BY id")
        #expect(history.count == 2_075)
        let emailByID = Dictionary(uniqueKeysWithValues: users.map { ($0["id"] as Int64, $0["email"] as String) })
        for row in history {
            let changes = try parseChanges(row["changes"])
            let email = try #require(emailByID[row["entity_id"]])
            #expect(changes["email"]?.last as? String == email)
            let index = try #require(Int(email.dropFirst(4).prefix { $0.isNumber }))
            #expect(changes["title"]?.last as? String == "Title \(index)")
            #expect((changes["invited"] != nil) == (index % 7 == 0))
            #expect(changes["user_group"]?.last as? String == (index % 3 == 0 ? "Sales" : "Default User Group"))
        }
        let invited = try temp.rows("SELECT i.email AS invited, u.email AS owner FROM invitations i JOIN client_users u ON u.id = i.user_id")
        #expect(invited.count == 297)
        #expect(invited.allSatisfy { ($0["invited"] as String) == ($0["owner"] as String) })
    }

    /// Where a duplicate email sits among the creations: inside the first batch (40 users), or in
    /// a later chunk than the user it repeats (2,100 users: on SQLite, chunks of 1,024 are
    /// prepared on another thread).
    static let duplicates: [(users: Int, at: Int, email: String)] = [(40, 37, "USER3@acme.example"), (2_100, 2_070, "User1500@Acme.example")]

    @Test("a duplicate email among the creations, in the first batch or a later chunk, is named in the error and nothing is written",
          arguments: StoreKind.allCases, duplicates.indices)
    func duplicateCreationIsNamed(kind: StoreKind, duplicate: Int) throws {
        let (users, at, email) = Self.duplicates[duplicate]
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        let before = try ["sync_runs", "client_users", "history", "invitations"].map(temp.count)
        var creations = (0..<users).map { NewClientUser(email: "user\($0)@acme.example", externalID: "ext-\($0)", invite: $0 % 2 == 0) }
        creations[at] = NewClientUser(email: email, externalID: "ext-\(at)")
        let error = #expect(throws: StoreError.self) {
            try store.apply(ChangeSet(clientID: client.id, userCreations: creations), run: applyRun(clientID: client.id))
        }
        #expect(error?.code == .duplicate)
        #expect(error?.message.contains(email) == true)
        #expect(try ["sync_runs", "client_users", "history", "invitations"].map(temp.count) == before)
    }

    @Test("a change set that fails half-way leaves nothing behind, not even the run", arguments: StoreKind.allCases)
    func failedApplyRollsBack(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
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
        // The store is still usable after the rolled-back transaction.
        _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Engineering")]), run: applyRun(clientID: client.id))
        #expect(try temp.count("user_groups") == 2)
    }

    @Test("an update naming an unknown field, user or group is refused", arguments: StoreKind.allCases)
    func invalidUpdatesRefused(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
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

    @Test("a directory cache written with one key twice, in one batch and across batches, keeps the entry read last",
          arguments: StoreKind.allCases)
    func cacheKeyWrittenTwice(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        let cacheStore = try #require(store as? any DirectoryCacheStoring)
        func row(_ kind: EntryKind, _ key: String, mail: String) -> CacheRow {
            var row = CacheRow(kind: kind, key: key, encodedEntry: EntryCodec.encode(
                EntryAttributes(dn: "uid=\(key),ou=people,dc=a", strings: ["mail": [mail]])))
            (row.externalID, row.email) = (key, mail)
            return row
        }
        // Users keyed by an id two entries share (no entryUUID): "e-1" twice in the first
        // 1,000-row batch, "e-2" in the first and the second; a group with a user's key; a key in
        // NFC and in NFD (two keys to both databases).
        var rows = [row(.user, "e-1", mail: "first@a"), row(.group, "e-1", mail: "group@a"), row(.user, "e-2", mail: "early@a"),
                    row(.user, "e-1", mail: "second@a"), row(.user, "\u{00C5}s", mail: "nfc@a"), row(.user, "A\u{030A}s", mail: "nfd@a")]
        rows += (0..<1_200).map { row(.user, "k-\($0)", mail: "k\($0)@a") }
        rows.append(row(.user, "e-2", mail: "late@a"))
        // A full read's rows wait in a temporary file and are written first; the last few (here
        // the late "e-2" among them) come from memory after them.
        let spool = try #require(CacheRowSpool(directory: temp.directory.path))
        for row in rows.dropLast(100) { spool.append(row) }
        try spool.finish()
        var update = DirectoryCacheUpdate(client: "Acme Corp", replaceAll: true, state: SyncState())
        update.spooledUpserts = spool
        update.encodedUpserts = Array(rows.suffix(100))
        _ = try store.apply(ChangeSet(clientID: client.id), run: applyRun(clientID: client.id), within: nil, extra: update, creating: nil)
        let users = try cacheStore.cachedEntries(client: "Acme Corp", kind: .user)
        #expect(try cacheStore.cachedUserCount(client: "Acme Corp") == 1_204)
        #expect(users["e-1"]?.first("mail") == "second@a" && users["e-2"]?.first("mail") == "late@a")
        #expect(try cacheStore.cachedEntries(client: "Acme Corp", kind: .group)["e-1"]?.first("mail") == "group@a")
        #expect(try cacheStore.cachedKeys(client: "Acme Corp", kind: .user).filter { $0.hasSuffix("s") }.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
                == [Array("A\u{030A}s".utf8), Array("\u{00C5}s".utf8)])
        #expect(try cacheStore.directoryCache(client: "Acme Corp")?.state.cachedUsers == 1_204)
    }

    @Test("a dry run records only its sync run", arguments: StoreKind.allCases)
    func recordRunWritesOnlyTheRun(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        var run = applyRun(clientID: client.id)
        run.mode = .dryRun
        run.summary = ["create": 12, "update": 3]
        let id = try store.recordRun(run)
        let row = try #require(try temp.rows("SELECT mode, CAST(summary AS TEXT) AS summary FROM sync_runs WHERE id = ?", [id]).first)
        #expect(row["mode"] == "dry-run")
        #expect(try parseCounts(row["summary"]) == ["create": 12, "update": 3])
        #expect(try store.runListing().first?.startedAt == "2026-11-18T11:06:40Z")
        #expect(try temp.count("history") == 1)
    }

    @Test("a lease is one holder's at a time; a lost lease writes nothing; a released one is free", arguments: StoreKind.allCases)
    func leases(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, client) = try temp.openWithClient()
        let first = try store.acquireLease(client: "acme corp", holder: "run")
        let refused = #expect(throws: LeaseError.self) { try temp.open().acquireLease(client: "Acme Corp", holder: "sync --apply") }
        #expect(refused?.holder?.holder == "run")
        #expect(try store.leaseHolder(client: "ACME CORP")?.pid == getpid())
        try first.renew(ttl: 60)
        // Another worker takes the lease over once it has expired: the first one can no longer write.
        try temp.execute("UPDATE leases SET expires_at = '2020-01-01T00:00:00Z'")
        let second = try temp.open().acquireLease(client: "Acme Corp", holder: "run")
        let lost = #expect(throws: LeaseError.self) {
            try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "Late")]), run: applyRun(clientID: client.id),
                            within: first, extra: nil, creating: nil)
        }
        #expect(lost?.message.contains("lost its lease") == true)
        #expect(try temp.count("sync_runs") == 0)
        _ = try store.apply(ChangeSet(clientID: client.id, groupCreations: [NewUserGroup(name: "On time")]), run: applyRun(clientID: client.id),
                            within: second, extra: nil, creating: nil)
        first.release()  // a taken-over lease's release leaves the new holder's alone
        #expect(try store.leaseHolder(client: "Acme Corp") != nil)
        second.release()
        #expect(try store.leaseHolder(client: "Acme Corp") == nil)
    }

    @Test("a held lease is renewed until it is released, so a run longer than the lease's duration keeps it", arguments: StoreKind.allCases)
    func leaseRenewedWhileHeld(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, _) = try temp.openWithClient()
        // Renewed every third of its 3 s duration: wait for a renewal to push the expiry on.
        let lease = try store.acquireLease(client: "Acme Corp", holder: "run", ttl: 3)
        let first = try #require(try store.leaseHolder(client: "Acme Corp")).expiresAt
        var renewed = false
        for _ in 0..<120 where !renewed {
            Thread.sleep(forTimeInterval: 0.25)
            let now = try #require(try store.leaseHolder(client: "Acme Corp"))
            #expect(now.pid == getpid())
            renewed = now.expiresAt > first
        }
        #expect(renewed, "the lease's expiry never moved from \(first)")
        lease.release()
        #expect(try store.leaseHolder(client: "Acme Corp") == nil)
        // Released: no renewal brings it back.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try store.leaseHolder(client: "Acme Corp") == nil)
    }

    @Test("a dead pid's lease is taken over at once only when it ran in this boot and PID namespace", arguments: StoreKind.allCases)
    func leaseOfAnotherNamespace(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let (store, _) = try temp.openWithClient()
        let host = ProcessInfo.processInfo.hostName
        // pid_max is at most 2^22: this pid is never alive here.
        let deadPid: Int32 = 4_194_400
        func plant(process: String?) throws {
            try temp.execute("DELETE FROM leases")
            try temp.execute("""
                INSERT INTO leases (client, holder, token, pid, host, process, acquired_at, expires_at)
                VALUES ('Acme Corp', 'run', 'planted', ?, ?, ?, '2026-01-01T00:00:00Z', '2999-01-01T00:00:00Z')
                """, [deadPid, host, process])
        }
        // A container sharing the host name but not the PID namespace: its pid says nothing here.
        try plant(process: "another-boot/pid:[4026531836]")
        let held = #expect(throws: LeaseError.self) { try store.acquireLease(client: "Acme Corp", holder: "run") }
        #expect(held?.holder?.process == "another-boot/pid:[4026531836]")
        // The same boot and namespace as this process (or a lease from before leases named it): the pid is gone, so it is taken over.
        for process in [LeaseHolder.currentProcess, nil] {
            try plant(process: process)
            let lease = try store.acquireLease(client: "Acme Corp", holder: "run")
            #expect(try store.leaseHolder(client: "Acme Corp")?.pid == getpid())
            lease.release()
        }
    }

    @Test("a parent account's view: users --client PARENT --with-children lists its users and its children's", arguments: StoreKind.allCases)
    func parentAccountView(kind: StoreKind) throws {
        let temp = try TemporaryStore(kind)
        let store = try temp.open()
        for (name, parent) in [("Acme Holding", nil), ("Acme Labs", "Acme Holding"), ("Acme Retail", "Acme Holding"), ("Labs Europe", "Acme Labs"), ("Other Co", nil)] as [(String, String?)] {
            let client = try store.ensureClient(ClientSpec(name: name, parentName: parent))
            let user = name.lowercased().replacingOccurrences(of: " ", with: ".")
            _ = try store.apply(ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "\(user)@example.com", externalID: user)]),
                                run: applyRun(clientID: client.id))
        }
        let family = try store.userListing(clientName: "acme holding", withChildren: true)
        #expect(Set(family.map(\.client)) == ["Acme Holding", "Acme Labs", "Acme Retail", "Labs Europe"])
        #expect(try store.userListing(clientName: "Acme Labs", withChildren: true).map(\.client).sorted() == ["Acme Labs", "Labs Europe"])
        #expect(try store.userListing(clientName: "Acme Holding", withChildren: false).map(\.client) == ["Acme Holding"])
        let cli = try runDirbridge(["users", "--store", temp.path, "--client", "Acme Holding", "--with-children"])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(cli.stdout.contains("Labs Europe") && cli.stdout.contains("Client") && !cli.stdout.contains("Other Co"))
        let clients = try runDirbridge(["clients", "--store", temp.path, "--json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(clients.stdout.utf8)) as? [[String: Any]])
        #expect(rows.first { $0["name"] as? String == "Labs Europe" }?["parent"] as? String == "Acme Labs")
        let missing = try runDirbridge(["users", "--store", temp.path, "--with-children"])
        #expect(missing.status == 1 && missing.stderr.contains("--with-children needs --client"))
    }
}
