import DirBridgeCore
import Foundation
import GRDB
import Logging
import Testing

/// A shipped 389 DS mapping (`freeipa` or `389ds`) against the suite's server, with a store of its own.
struct DS389Fixture: SyncFixture {
    let server: Test389DS
    let mappingPath: String
    let storePath: String
    let mapping: Mapping
    let incremental: Bool

    init(_ name: String = "freeipa", label: String, incremental: Bool = false, server: Test389DS? = nil, password: String = "dirbridge-secret",
         edit: (String) -> String = { $0 }) throws {
        self.server = try server ?? Test389DS.server()
        (mappingPath, storePath) = try self.server.mappingFile(name, label: label, password: password, edit: edit)
        mapping = try MappingLoader.load(path: mappingPath, environment: [:])
        self.incremental = incremental
    }

    var environment: [String: String] { [:] }

    /// The client's sync state row `key`.
    func state(_ key: String) throws -> String? {
        try value("SELECT value FROM sync_state WHERE key = ?", [key])
    }
}

private let ipaUsers = "cn=users,cn=accounts,dc=initech,dc=example"
private let ipaGroups = "cn=groups,cn=accounts,dc=initech,dc=example"
/// Initech's people in the portal after the first sync: everyone but Bob (locked).
private let initechSize = 7

@Suite("389 Directory Server and FreeIPA-shaped trees on a real 389 DS", .serialized, .directoryServer389)
struct DirectoryServer389Tests {
    @Test("the shipped freeipa.yaml: fields, ipaUniqueID as the id, nested groups, flags; locked Bob stays out; a second run plans nothing")
    func freeIPAFirstSync() throws {
        let fixture = try DS389Fixture(label: "first")
        #expect(fixture.mapping.users.id == "ipauniqueid")
        let outcome = try fixture.sync()
        #expect(outcome.applied)
        #expect(try fixture.int("SELECT count(*) FROM client_users") == initechSize)
        #expect(try fixture.user("bob.porter@initech.example") == nil)
        let peter = try #require(try fixture.user("peter.gibbons@initech.example"))
        #expect(peter["first_name"] as String? == "Peter")
        #expect(peter["last_name"] as String? == "Gibbons")
        #expect(peter["title"] as String? == "Programmer")
        #expect(peter["office_phone"] as String? == "+1 512 555 0101")
        #expect(peter["cell_phone"] as String? == "+1 512 555 0191")
        #expect(peter["location"] as String? == "Austin")
        #expect(peter["external_id"] as String? == "5a1c0c2e-0002-11ef-9a3b-000000000002")
        #expect(peter["external_dn"] as String? == "uid=peter.gibbons,\(ipaUsers)")
        #expect(peter["group_name"] as String == "TEAM-TPS")
        #expect(peter["enabled"] as Int == 1)
        #expect(peter["has_login"] as Int == 1)
        let bill = try #require(try fixture.user("bill.lumbergh@initech.example"))
        #expect(bill["group_name"] as String == "Default User Group")
        #expect(bill["global_admin"] as Int == 1)
        // Nested: Tom through tps-reviewers in tps-managers; Dom through tps-contractors in team-tps.
        let tom = try #require(try fixture.user("tom.smykowski@initech.example"))
        #expect(tom["group_name"] as String == "TPS")
        #expect(tom["group_manager"] as Int == 1)
        #expect(try fixture.user("dom.portwood@initech.example")?["group_name"] as String? == "TEAM-TPS")
        #expect(try fixture.user("milton.waddams@initech.example")?["group_name"] as String? == "TEAM-BASEMENT")
        #expect(Set(try fixture.rows("SELECT name FROM user_groups").map { $0["name"] as String }) == ["Default User Group", "TPS", "TEAM-TPS", "TEAM-BASEMENT"])
        #expect(try fixture.int("SELECT count(*) FROM invitations") == initechSize)
        // The server's memberOf plugin keeps nested memberships on the entries, as FreeIPA's does.
        let tomsGroups = Set(try fixture.server.values("uid=tom.smykowski,\(ipaUsers)", "memberOf").map { $0.lowercased() })
        #expect(tomsGroups == ["cn=tps-reviewers,\(ipaGroups)", "cn=tps-managers,\(ipaGroups)", "cn=ipausers,\(ipaGroups)"])

        let second = try fixture.sync()
        #expect(second.plan.isEmpty)
        #expect(second.plan.summary.unchanged == initechSize + 1)   // Bob counts: read, locked, not in the portal
    }

    @Test("nsAccountLock: TRUE disables the portal user; removing it re-enables them")
    func accountLock() throws {
        let fixture = try DS389Fixture(label: "lock")
        try fixture.sync()
        let milton = "uid=milton.waddams,\(ipaUsers)"
        // `replace` with no value removes the attribute, and is a no-op when it is absent (the undo).
        try fixture.server.modify("dn: \(milton)\nchangetype: modify\nadd: nsAccountLock\nnsAccountLock: TRUE\n")
        defer { restore { try fixture.server.modify("dn: \(milton)\nchangetype: modify\nreplace: nsAccountLock\n") } }
        let disabling = try fixture.sync()
        #expect(disabling.plan.summary.disable == 1)
        #expect(try fixture.user("milton.waddams@initech.example")?["enabled"] as Int? == 0)
        try fixture.server.modify("dn: \(milton)\nchangetype: modify\nreplace: nsAccountLock\n")
        let enabling = try fixture.sync()
        #expect(enabling.plan.summary.enable == 1)
        let row = try #require(try fixture.user("milton.waddams@initech.example"))
        #expect(row["enabled"] as Int == 1)
        #expect(try fixture.rows("SELECT action FROM history WHERE entity = 'user' AND entity_id = ? AND action <> 'invited' ORDER BY id", [row["id"] as Int64])
            .map { $0["action"] as String } == ["created", "disabled", "enabled"])
    }

    @Test("a FreeIPA user renamed (new uid, new surname) keeps the same portal user through ipaUniqueID")
    func renameKeepsUserByIPAUniqueID() throws {
        let fixture = try DS389Fixture(label: "rename")
        try fixture.sync()
        let before = try #require(try fixture.user("samir.nagheenanajar@initech.example"))
        /// Renames Samir and sets his surname; referential integrity updates the groups listing him.
        func rename(from: String, to: String, surname: String) throws {
            try fixture.server.modify("""
                dn: uid=\(from),\(ipaUsers)
                changetype: modrdn
                newrdn: uid=\(to)
                deleteoldrdn: 1

                dn: uid=\(to),\(ipaUsers)
                changetype: modify
                replace: sn
                sn: \(surname)

                """)
        }
        try rename(from: "samir.nagheenanajar", to: "samir.n", surname: "Nayeenanajar")
        defer { restore { try rename(from: "samir.n", to: "samir.nagheenanajar", surname: "Nagheenanajar") } }
        let outcome = try fixture.sync()
        #expect(outcome.plan.summary.create == 0)
        #expect(outcome.plan.summary.update == 1)
        let after = try #require(try fixture.user("samir.nagheenanajar@initech.example"))
        #expect(after["id"] as Int64 == before["id"] as Int64)
        #expect(after["external_id"] as String? == "5a1c0c2e-0004-11ef-9a3b-000000000004")
        #expect(after["external_dn"] as String? == "uid=samir.n,\(ipaUsers)")
        #expect(after["last_name"] as String? == "Nayeenanajar")
        #expect(after["group_name"] as String == "TEAM-TPS")
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE first_name = 'Samir'") == 1)
    }

    @Test("content sync (RFC 4533) on 389 DS: an attribute change, a group-only change, a deletion and a preserved (moved-out) user, each read from the cookie")
    func contentSyncIncremental() throws {
        let fixture = try DS389Fixture(label: "content-sync", incremental: true)
        let first = try fixture.sync()
        #expect(first.method == .full)
        // 389 DS keeps no contextCSN: the cookies come from an initial refresh, and its sync UUIDs are nsUniqueIds.
        #expect(try fixture.state("method") == "content-sync")
        #expect(try fixture.state("sync_key") == "nsuniqueid")
        #expect(try fixture.state("users.cookie")?.contains("#\(fixture.server.syncDN):\(ipaUsers):") == true)
        let quiet = try fixture.sync()
        #expect(quiet.method == .contentSync)
        #expect(quiet.entriesRead == 0)
        #expect(quiet.plan.isEmpty)

        let peter = "uid=peter.gibbons,\(ipaUsers)"
        let michael = "uid=michael.bolton,\(ipaUsers)"
        let michaelLDIF = try String(contentsOf: fixtureURL("ldif/freeipa-initech.ldif"), encoding: .utf8)
            .components(separatedBy: "\n\n").first { $0.hasPrefix("dn: \(michael)\n") }!
        let preserved = "cn=deleted users,cn=accounts,cn=provisioning,dc=initech,dc=example"
        /// Moves Dom between cn=users and the preserved users' container, as `ipa user-del --preserve` and `ipa user-undel` do.
        func moveDom(from: String, to: String) throws {
            try fixture.server.modify("dn: uid=dom.portwood,\(from)\nchangetype: modrdn\nnewrdn: uid=dom.portwood\ndeleteoldrdn: 1\nnewsuperior: \(to)\n")
        }
        // Peter's title; Milton into tps-managers (only the group changes; the plugin rewrites his memberOf);
        // Michael deleted (referential integrity takes him out of team-tps and ipausers); Dom preserved.
        try moveDom(from: ipaUsers, to: preserved)
        defer { restore { try moveDom(from: preserved, to: ipaUsers) } }
        try fixture.server.modify("""
            dn: \(peter)
            changetype: modify
            replace: title
            title: Senior Programmer

            dn: cn=tps-managers,\(ipaGroups)
            changetype: modify
            add: member
            member: uid=milton.waddams,\(ipaUsers)

            dn: \(michael)
            changetype: delete

            """)
        defer {
            restore {
            try fixture.server.modify("""
                dn: \(peter)
                changetype: modify
                replace: title
                title: Programmer

                dn: cn=tps-managers,\(ipaGroups)
                changetype: modify
                delete: member
                member: uid=milton.waddams,\(ipaUsers)

                dn: \(michael)
                changetype: add
                \(michaelLDIF.split(separator: "\n").dropFirst().joined(separator: "\n"))

                dn: cn=team-tps,\(ipaGroups)
                changetype: modify
                add: member
                member: \(michael)

                dn: cn=ipausers,\(ipaGroups)
                changetype: modify
                add: member
                member: \(michael)

                """)
            }
        }
        let changed = try fixture.sync()
        #expect(changed.method == .contentSync)
        #expect(changed.fullReason == nil)
        #expect(changed.plan.summary.update == 2)
        #expect(changed.plan.summary.disable == 2)
        #expect(changed.plan.summary.create == 0)
        #expect(try fixture.user("peter.gibbons@initech.example")?["title"] as String? == "Senior Programmer")
        let milton = try #require(try fixture.user("milton.waddams@initech.example"))
        #expect(milton["group_name"] as String == "TPS")
        #expect(milton["group_manager"] as Int == 1)
        let gone = try #require(try fixture.user("michael.bolton@initech.example"))
        #expect(gone["enabled"] as Int == 0)
        #expect(try fixture.user("dom.portwood@initech.example")?["enabled"] as Int? == 0)
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE enabled = 1") == initechSize - 2)
        let again = try fixture.sync()
        #expect(again.method == .contentSync)
        #expect(again.plan.isEmpty)
    }

    @Test("the shipped 389ds.yaml: nsUniqueId as the id, groupOfUniqueNames nested; a user moved to another OU keeps the portal user")
    func plain389() throws {
        let fixture = try DS389Fixture("389ds", label: "plain")
        #expect(fixture.mapping.users.id == "nsuniqueid")
        try fixture.sync()
        #expect(try fixture.int("SELECT count(*) FROM client_users") == 3)
        #expect(try fixture.user("xavier@example.com") == nil)
        #expect(try fixture.user("ada@example.com")?["global_admin"] as Int? == 1)
        let lea = try #require(try fixture.user("lea@example.com"))
        #expect(lea["group_name"] as String == "dept-sales")
        #expect(lea["group_manager"] as Int == 1)
        #expect(try fixture.user("sam@example.com")?["group_name"] as String? == "dept-sales")
        let nsUniqueID = try #require(try fixture.server.values("uid=lea,ou=london,ou=people,dc=example,dc=com", "nsUniqueId").first)
        #expect(lea["external_id"] as String? == nsUniqueID)

        func move(_ from: String, _ to: String, location: String) throws {
            try fixture.server.modify("""
                dn: uid=lea,\(from)
                changetype: modrdn
                newrdn: uid=lea
                deleteoldrdn: 1
                newsuperior: \(to)

                dn: uid=lea,\(to)
                changetype: modify
                replace: l
                l: \(location)

                """)
        }
        try move("ou=london,ou=people,dc=example,dc=com", "ou=people,dc=example,dc=com", location: "Leeds")
        defer { restore { try move("ou=people,dc=example,dc=com", "ou=london,ou=people,dc=example,dc=com", location: "London") } }
        let outcome = try fixture.sync()
        #expect(outcome.plan.summary.create == 0)
        #expect(outcome.plan.summary.update == 1)
        let moved = try #require(try fixture.user("lea@example.com"))
        #expect(moved["id"] as Int64 == lea["id"] as Int64)
        #expect(moved["external_id"] as String? == nsUniqueID)
        #expect(moved["external_dn"] as String? == "uid=lea,ou=people,dc=example,dc=com")
        #expect(moved["location"] as String? == "Leeds")
        // Referential integrity moved the uniqueMember value: still the sales leads' manager.
        #expect(moved["group_manager"] as Int == 1)
    }

    @Test("accounts with 389 DS's limits fail with exit 3, naming the limit and the fix; nothing is written")
    func limitsFailTheRun() throws {
        for (account, code, limit) in [("limited", "11", "nsLookThroughLimit"), ("capped", "4", "nsSizeLimit")] {
            let dn = "uid=\(account),cn=sysaccounts,cn=etc,dc=initech,dc=example"
            let fixture = try DS389Fixture(label: account, password: "\(account)-secret") {
                $0.replacingOccurrences(of: "bind_dn: uid=dirbridge,", with: "bind_dn: uid=\(account),")
            }
            #expect(fixture.mapping.directory.bindDN == dn)
            let run = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply"])
            #expect(run.status == 3, "\(account): \(run.stderr)")
            #expect(run.stderr.contains("LDAP result \(code)"), "\(run.stderr)")
            #expect(run.stderr.contains(limit), "\(run.stderr)")
            #expect(run.stderr.contains("nsSizeLimit: -1 and nsLookThroughLimit: -1"), "\(run.stderr)")
            #expect(run.stderr.contains(dn), "\(run.stderr)")
            #expect(try fixture.int("SELECT count(*) FROM client_users") == 0)
            #expect(try fixture.value("SELECT status FROM sync_runs") as String? == "failed")
        }
    }

    @Test("ldaps and StartTLS verify the server against the test CA; another CA fails with a TLS error (exit 3)")
    func tlsVerified() throws {
        let fixture = try DS389Fixture(label: "tls")
        #expect(fixture.mapping.directory.urls == [fixture.server.ldapsURL])
        let ldaps = try fixture.cli(["check", fixture.mappingPath])
        #expect(ldaps.status == 0, "\(ldaps.stderr)")
        let startTLS = try DS389Fixture(label: "starttls") {
            $0.replacingOccurrences(of: "url: \(try! Test389DS.server().ldapsURL)", with: "url: \(try! Test389DS.server().ldapURL)\n  start_tls: true")
        }
        #expect(startTLS.mapping.directory.startTLS)
        let started = try startTLS.cli(["check", startTLS.mappingPath])
        #expect(started.status == 0, "\(started.stderr)")
        let wrong = try DS389Fixture(label: "wrong-ca") {
            $0.replacingOccurrences(of: "ca_file: \(try! Test389DS.server().caFile)", with: "ca_file: \(try! Test389DS.server().otherCAFile)")
        }
        let refused = try wrong.cli(["check", wrong.mappingPath])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("directory error (tls)"), "\(refused.stderr)")
    }

    @Test("run --watch on 389 DS: the content sync plugin pushes a change (refreshAndPersist), which reaches the store")
    func watchPushes() throws {
        let fixture = try DS389Fixture(label: "watch")
        let run = try BackgroundDirbridge(
            ["run", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--watch", "--every", "1h", "--batch-window", "1s"],
            environment: fixture.environment)
        #expect(eventually(seconds: 60) { (try? fixture.value("SELECT COUNT(*) FROM client_users") as Int?) == initechSize })
        let dom = "uid=dom.portwood,\(ipaUsers)"
        try fixture.server.modify("dn: \(dom)\nchangetype: modify\nreplace: title\ntitle: Pushed Contractor\n")
        defer { restore { try fixture.server.modify("dn: \(dom)\nchangetype: modify\nreplace: title\ntitle: Contractor\n") } }
        // --every is an hour: only a push can bring the change in time.
        #expect(eventually(seconds: 60) { (try? fixture.user("dom.portwood@initech.example")?["title"] as String?) == "Pushed Contractor" })
        kill(run.pid, SIGTERM)
        let ended = try #require(run.wait(seconds: 30))
        #expect(ended.status == 0, "\(ended.stderr)")
        #expect(!ended.stderr.contains("polling every"), "\(ended.stderr)")
        #expect(ended.stderr.contains("incremental read (content-sync)"), "\(ended.stderr)")
    }

    @Test("without the content sync plugin, incremental runs read by modifyTimestamp and still see a change")
    func withoutContentSync() throws {
        let server = try Test389DS(label: "no-contentsync", contentSync: false)
        defer { server.stop() }
        let fixture = try DS389Fixture(label: "no-contentsync", incremental: true, server: server)
        #expect(try fixture.sync().method == .full)
        #expect(try fixture.state("method") == "modify-timestamp")
        let peter = "uid=peter.gibbons,\(ipaUsers)"
        try server.modify("dn: \(peter)\nchangetype: modify\nreplace: title\ntitle: Timestamped Programmer\n")
        let changed = try fixture.sync()
        #expect(changed.method == .modifyTimestamp)
        #expect(try fixture.user("peter.gibbons@initech.example")?["title"] as String? == "Timestamped Programmer")
    }
}

/// Undoes a test's change to the shared server; a failed undo fails the test (the next tests
/// would see the change).
private func restore(_ undo: () throws -> Void) {
    do { try undo() } catch { Issue.record("restoring the shared 389 DS failed: \(error)") }
}
