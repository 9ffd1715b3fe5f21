@testable import DirBridgeCore
import Foundation
import GRDB
import Logging
import Testing

/// A company of `users` people (u0001 …) in ou=people; u0001–u0010 in cn=engineering,
/// u0011–u0020 in cn=sales.
func incrementalCompanyLDIF(users: Int) -> String {
    var text = """
        dn: ou=people,dc=example,dc=com
        objectClass: organizationalUnit
        ou: people

        dn: ou=alumni,dc=example,dc=com
        objectClass: organizationalUnit
        ou: alumni

        dn: ou=groups,dc=example,dc=com
        objectClass: organizationalUnit
        ou: groups


        """
    for number in 1...users {
        let uid = String(format: "u%04d", number)
        text += """
            dn: uid=\(uid),ou=people,dc=example,dc=com
            objectClass: inetOrgPerson
            uid: \(uid)
            cn: User \(number)
            givenName: User
            sn: Number\(number)
            mail: \(uid)@example.com
            title: Engineer \(number % 7)


            """
    }
    for (name, range) in [("engineering", 1...10), ("sales", 11...20)] {
        text += "dn: cn=\(name),ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: \(name)\n"
        for number in range { text += String(format: "member: uid=u%04d,ou=people,dc=example,dc=com\n", number) }
        text += "\n"
    }
    return text
}

/// A slapd with the generated company, an empty store and the incremental mapping.
struct IncrementalFixture: SyncFixture {
    let slapd: TestSlapd
    let storePath: String
    let mappingPath: String
    let mapping: Mapping

    init(_ label: String, users: Int, syncprov: Bool = true, sessionlog: Bool = true, store: StoreKind = .sqlite) throws {
        _ = testBindPassword
        let directory = try makeTemporaryDirectory("incremental-\(label)")
        let ldif = directory.appendingPathComponent("company.ldif")
        try incrementalCompanyLDIF(users: users).write(to: ldif, atomically: true, encoding: .utf8)
        slapd = try TestSlapd(label: label, ldif: [ldif], syncprov: syncprov, sessionlog: sessionlog)
        storePath = try store.newLocation(in: directory, label: label)
        mappingPath = fixtureURL("mappings/incremental.yaml").path
        mapping = try MappingLoader.load(path: mappingPath, environment: ["DIRBRIDGE_URL": slapd.ldapURL])
    }

    var environment: [String: String] { ["DIRBRIDGE_URL": slapd.ldapURL] }
    var incremental: Bool { true }

    /// The user count the sync state keeps (so scheduled runs need not count the cache), and
    /// the cache's user rows counted: equal after every apply.
    func cachedUserCounts() throws -> (kept: String?, counted: String) {
        let counted: Int = try value("SELECT COUNT(*) FROM directory_cache WHERE kind = 'user'") ?? -1
        return (try value("SELECT value FROM sync_state WHERE key = 'cached_users'"), String(counted))
    }

    /// (enabled, user group, title) of one user, by uid.
    func user(uid: String) throws -> (enabled: Bool, group: String, title: String?)? {
        try user("\(uid)@example.com").map { ($0["enabled"], $0["group_name"], $0["title"]) }
    }
}

@Suite("Incremental sync on a real slapd")
struct IncrementalSyncTests {
    @Test("content sync (RFC 4533): 1,000 users, then only the changed entries are read and exactly their changes planned", arguments: StoreKind.allCases)
    func contentSyncReadsOnlyChanges(store: StoreKind) throws {
        let fixture = try IncrementalFixture("content-sync", users: 1000, store: store)
        defer { fixture.slapd.stop() }
        let first = try fixture.sync()
        #expect(first.method == .full)
        #expect(first.plan.summary.create == 1000)
        #expect(try fixture.value("SELECT value FROM sync_state WHERE key = 'method'") == "content-sync")
        #expect(try fixture.cachedUserCounts() == ("1000", "1000"))

        let quiet = try fixture.sync()
        #expect(quiet.method == .contentSync)
        #expect(quiet.entriesRead == 0)
        #expect(quiet.plan.isEmpty)
        #expect(quiet.plan.summary.unchanged == 1000)

        // A portal-side edit to a mapped field moves the store's change counter: the run plans
        // again (it cannot take the "nothing changed" shortcut) and the directory's value wins.
        try fixture.execute("UPDATE client_users SET title = 'Edited in the portal' WHERE email = 'u0001@example.com'")
        let overwrite = try fixture.sync()
        #expect(overwrite.entriesRead == 0)
        #expect(overwrite.plan.userChanges.map(\.email) == ["u0001@example.com"])
        #expect(try fixture.user(uid: "u0001")?.title == "Engineer 1")

        // 3 users changed, 1 deleted, u0005 moved from engineering to sales by editing the groups only.
        let before = try contextCSN(fixture)
        try fixture.slapd.modify("""
            dn: uid=u0100,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Head of Testing

            dn: uid=u0200,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Staff Engineer

            dn: uid=u0300,ou=people,dc=example,dc=com
            changetype: modify
            replace: sn
            add: title
            title: Second Title

            dn: uid=u0400,ou=people,dc=example,dc=com
            changetype: delete

            dn: cn=engineering,ou=groups,dc=example,dc=com
            changetype: modify
            delete: member
            member: uid=u0005,ou=people,dc=example,dc=com

            dn: cn=sales,ou=groups,dc=example,dc=com
            changetype: modify
            add: member
            member: uid=u0005,ou=people,dc=example,dc=com

            """.replacingOccurrences(of: "replace: sn\nadd: title", with: "replace: sn\nsn: Renamed\n-\nreplace: title"))
        let delta = try fixture.sync()
        #expect(delta.method == .contentSync)
        // What the server itself counts as changed since then, in the users' and the groups'
        // searches: the three users and the two groups, and u0005 when the memberof overlay's
        // rewrite of its memberOf gave it a new entryCSN.
        let changedOnServer = try changedSince(before, fixture)
        #expect((5...6).contains(changedOnServer))
        #expect(delta.entriesRead == changedOnServer)
        #expect(try fixture.value("SELECT entries_read FROM sync_runs ORDER BY id DESC LIMIT 1") == changedOnServer)
        #expect(try fixture.value("SELECT incremental FROM sync_runs ORDER BY id DESC LIMIT 1") == 1)
        let changes = Dictionary(uniqueKeysWithValues: delta.plan.userChanges.map { ($0.email, $0) })
        #expect(Set(changes.keys) == ["u0100@example.com", "u0200@example.com", "u0300@example.com", "u0400@example.com", "u0005@example.com"])
        #expect(changes["u0400@example.com"]?.action == .disable)
        #expect(changes["u0005@example.com"]?.fields[.userGroup]?.new == "Sales")
        #expect(changes["u0300@example.com"]?.fields[.field(.lastName)]?.new == "Renamed")
        #expect(try fixture.user(uid: "u0100")?.title == "Head of Testing")
        #expect(try fixture.user(uid: "u0400")?.enabled == false)
        #expect(try fixture.user(uid: "u0005")?.group == "Sales")
        #expect(try fixture.cachedUserCounts() == ("999", "999"))

        // Out of the base (moved to ou=alumni) and out of the filter (now a contractor): both gone.
        try fixture.slapd.modify("""
            dn: uid=u0500,ou=people,dc=example,dc=com
            changetype: modrdn
            newrdn: uid=u0500
            deleteoldrdn: 1
            newsuperior: ou=alumni,dc=example,dc=com

            dn: uid=u0600,ou=people,dc=example,dc=com
            changetype: modify
            add: employeeType
            employeeType: contractor

            """)
        let gone = try fixture.sync()
        #expect(gone.method == .contentSync)
        #expect(gone.entriesRead == 0)
        #expect(Set(gone.plan.userChanges.filter { $0.action == .disable }.map(\.email)) == ["u0500@example.com", "u0600@example.com"])
        #expect(try fixture.cachedUserCounts() == ("997", "997"))
        #expect(try fixture.sync().plan.isEmpty)
        #expect(try fixture.cachedUserCounts() == ("997", "997"))
    }

    @Test("content sync without a session log: the present phase still reveals the deletion", arguments: StoreKind.allCases)
    func presentPhase(store: StoreKind) throws {
        let fixture = try IncrementalFixture("present-phase", users: 40, sessionlog: false, store: store)
        defer { fixture.slapd.stop() }
        try fixture.sync()
        try fixture.slapd.modify("""
            dn: uid=u0030,ou=people,dc=example,dc=com
            changetype: delete

            dn: uid=u0031,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Changed

            """)
        let delta = try fixture.sync()
        #expect(delta.method == .contentSync)
        #expect(delta.entriesRead == 1)
        #expect(delta.plan.userChanges.map(\.email).sorted() == ["u0030@example.com", "u0031@example.com"])
        #expect(try fixture.user(uid: "u0030")?.enabled == false)
        #expect(try fixture.user(uid: "u0031")?.title == "Changed")
    }

    @Test("content sync without a session log: a deletion is seen when every other entry changed too (a present phase naming no entry present)", arguments: StoreKind.allCases)
    func presentPhaseWithNothingUnchanged(store: StoreKind) throws {
        let fixture = try IncrementalFixture("present-phase-empty", users: 12, sessionlog: false, store: store)
        defer { fixture.slapd.stop() }
        try fixture.sync()
        // Every remaining user changes: the refresh names none of them present, only changed. On
        // OpenLDAP the present phase is taken all the same (syncprov signals it; only 389 DS's
        // refreshDeletes FALSE after every refresh needs the named-present rule).
        var ldif = "dn: uid=u0005,ou=people,dc=example,dc=com\nchangetype: delete\n\n"
        for number in 1...12 where number != 5 {
            ldif += "dn: uid=u\(String(format: "%04d", number)),ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Everyone Changed\n\n"
        }
        try fixture.slapd.modify(ldif)
        let delta = try fixture.sync()
        #expect(delta.method == .contentSync)
        #expect(delta.entriesRead >= 11)
        #expect(delta.plan.userChanges.filter { $0.action == .disable }.map(\.email) == ["u0005@example.com"])
        #expect(try fixture.user(uid: "u0005")?.enabled == false)
        #expect(try fixture.user(uid: "u0012")?.title == "Everyone Changed")
        #expect(try fixture.sync().plan.isEmpty)
    }

    @Test("without syncprov: modifyTimestamp high-water marks find changes; the next full reconcile finds the deletion", arguments: StoreKind.allCases)
    func highWaterMarks(store: StoreKind) throws {
        let fixture = try IncrementalFixture("high-water", users: 30, syncprov: false, store: store)
        defer { fixture.slapd.stop() }
        let first = try fixture.sync()
        #expect(first.method == .full)
        #expect(try fixture.value("SELECT value FROM sync_state WHERE key = 'method'") == "modify-timestamp")
        try fixture.slapd.modify("""
            dn: uid=u0007,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Found By Timestamp

            dn: uid=u0025,ou=people,dc=example,dc=com
            changetype: delete

            """)
        let delta = try fixture.sync()
        #expect(delta.method == .modifyTimestamp)
        #expect(delta.plan.userChanges.map(\.email) == ["u0007@example.com"])
        #expect(try fixture.user(uid: "u0007")?.title == "Found By Timestamp")
        #expect(try fixture.user(uid: "u0025")?.enabled == true)  // a deletion leaves no timestamp (u0025 is in no group)
        #expect(try fixture.cachedUserCounts() == ("30", "30"))

        let reconcile = try fixture.sync(options: IncrementalOptions(fullEvery: 0))
        #expect(reconcile.method == .full)
        #expect(reconcile.fullReason?.contains("full reconcile due") == true)
        #expect(reconcile.plan.userChanges.map(\.email) == ["u0025@example.com"])
        #expect(try fixture.cachedUserCounts() == ("29", "29"))
        #expect(try fixture.user(uid: "u0025")?.enabled == false)
        #expect(try fixture.value("SELECT incremental FROM sync_runs ORDER BY id DESC LIMIT 1") == 0)
    }

    @Test("a rename within the base makes the run read everything; the portal user keeps its row and groups", arguments: StoreKind.allCases)
    func renameForcesFullRead(store: StoreKind) throws {
        let fixture = try IncrementalFixture("rename", users: 30, store: store)
        defer { fixture.slapd.stop() }
        try fixture.sync()
        let before: Int64? = try fixture.value("SELECT id FROM client_users WHERE email = 'u0009@example.com'")
        try fixture.slapd.modify("""
            dn: uid=u0009,ou=people,dc=example,dc=com
            changetype: modrdn
            newrdn: uid=u0009-renamed
            deleteoldrdn: 0

            """)
        let renamed = try fixture.sync()
        #expect(renamed.method == .full)
        #expect(renamed.fullReason?.contains("was renamed or moved") == true)
        #expect(try fixture.value("SELECT id FROM client_users WHERE email = 'u0009@example.com'") == before)
        #expect(try fixture.value("SELECT external_dn FROM client_users WHERE email = 'u0009@example.com'") == "uid=u0009-renamed,ou=people,dc=example,dc=com")
        #expect(try fixture.user(uid: "u0009")?.group == "Engineering")
        #expect(try fixture.sync().method == .contentSync)
    }

    @Test("the shortcut compares the mapping text a run parsed, not the file as it is later", arguments: StoreKind.allCases)
    func editedMappingIsPlanned(store: StoreKind) throws {
        let fixture = try IncrementalFixture("edited-mapping", users: 25, store: store)
        defer { fixture.slapd.stop() }
        let directory = try makeTemporaryDirectory("edited-mapping")
        let path = directory.appendingPathComponent("mapping.yaml").path
        let original = try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
        try original.write(toFile: path, atomically: true, encoding: .utf8)
        let old = try MappingLoader.load(path: path, environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
        func sync(_ mapping: Mapping) throws -> SyncOutcome {
            try SyncEngine.run(SyncRequest(mapping: mapping, storePath: fixture.storePath, apply: true, incremental: true), logger: Logger(label: "test"))
        }
        try sync(old)
        // The file is edited (sales now land in "Field Sales") while a long-running process still
        // holds the old mapping and runs once more with it.
        try original.replacingOccurrences(of: "user_group: Sales", with: "user_group: Field Sales").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try sync(old).plan.isEmpty)
        let edited = try MappingLoader.load(path: path, environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
        let replanned = try sync(edited)
        #expect(replanned.plan.userChanges.count == 10)
        #expect(try fixture.user(uid: "u0011")?.group == "Field Sales")
    }

    @Test("sync --incremental on the command line says how it read", arguments: StoreKind.allCases)
    func commandLine(store: StoreKind) throws {
        let fixture = try IncrementalFixture("cli", users: 12, store: store)
        defer { fixture.slapd.stop() }
        let first = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--incremental"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("Directory: full read (no directory cache yet"))
        let second = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--incremental"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("Directory: incremental read (content-sync), 0 entries read."))
    }

    @Test("PostgreSQL: a portal edit under way while an incremental apply runs is waited for, not lost; the next run overwrites it")
    func portalEditDuringApply() throws {
        let fixture = try IncrementalFixture("pg-edit-race", users: 30, store: .postgres)
        defer { fixture.slapd.stop() }
        _ = try fixture.sync()
        try fixture.slapd.modify("""
            dn: uid=u0002,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Changed in the directory
            """)
        // The portal: an edit of another user, made but not committed yet (it holds the row of
        // the client's change counter, which its trigger bumped).
        let address = try PostgresAddress(url: fixture.storePath, password: StorePasswordSource())
        let portal = try PostgresSession(address)
        try portal.exclusive { db in
            _ = try db.execute("BEGIN")
            _ = try db.execute("UPDATE client_users SET title = 'Edited in the portal' WHERE email = 'u0001@example.com'")
        }
        // The apply starts meanwhile, in its own process.
        let binary = try #require(dirbridgeBinary)
        let apply = Process()
        apply.executableURL = binary
        apply.arguments = ["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--incremental"]
        apply.environment = ProcessInfo.processInfo.environment.merging(fixture.environment) { $1 }
        apply.standardOutput = FileHandle.nullDevice
        apply.standardError = FileHandle.nullDevice
        try apply.run()
        // It waits for the portal's transaction: a backend of this database waits on a lock.
        let watcher = try PostgresSession(address)
        var waiting = false
        for _ in 0..<600 where !waiting && apply.isRunning {
            Thread.sleep(forTimeInterval: 0.1)
            waiting = try watcher.exclusive { db in
                try db.row("""
                    SELECT count(*) AS n FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%store_changes%'
                    """)?.int("n") ?? 0
            } > 0
        }
        #expect(waiting, "the apply did not wait for the portal's uncommitted edit")
        try portal.exclusive { db in _ = try db.execute("COMMIT") }
        apply.waitUntilExit()
        #expect(apply.terminationStatus == 0)
        #expect(try fixture.user(uid: "u0002")?.title == "Changed in the directory")
        // The edit that committed during the apply is known to the next run, which puts the directory's value back.
        let next = try fixture.sync()
        #expect(next.plan.userChanges.map(\.email) == ["u0001@example.com"])
        #expect(try fixture.user(uid: "u0001")?.title == "Engineer 1")
    }

    private func ldapsearch(_ fixture: IncrementalFixture, _ arguments: [String]) throws -> String {
        let result = try runProcess("/usr/bin/ldapsearch", ["-x", "-LLL", "-H", fixture.slapd.ldapURL, "-D", TestSlapd.rootDN, "-w", "admin-secret"] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout
    }

    private func contextCSN(_ fixture: IncrementalFixture) throws -> String {
        let output = try ldapsearch(fixture, ["-b", "dc=example,dc=com", "-s", "base", "contextCSN"])
        return try #require(output.split(separator: "\n").first { $0.hasPrefix("contextCSN: ") }.map { String($0.dropFirst(12)) })
    }

    /// Entries of the mapping's user and group searches whose entryCSN is newer than `csn`.
    private func changedSince(_ csn: String, _ fixture: IncrementalFixture) throws -> Int {
        let users = try ldapsearch(fixture, ["-b", "ou=people,dc=example,dc=com", "(&(objectClass=inetOrgPerson)(!(employeeType=contractor))(!(entryCSN<=\(csn))))", "1.1"])
        let groups = try ldapsearch(fixture, ["-b", "ou=groups,dc=example,dc=com", "(&(objectClass=groupOfNames)(!(entryCSN<=\(csn))))", "1.1"])
        return (users + groups).split(separator: "\n").filter { $0.hasPrefix("dn: ") }.count
    }
}
