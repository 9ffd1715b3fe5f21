import DirBridgeCore
import Foundation
import GRDB
import Logging
import Testing

/// A slapd loaded with the engine fixture company, an empty store (an SQLite file or a new
/// PostgreSQL database) and the engine mapping.
struct EngineFixture: SyncFixture {
    let slapd: TestSlapd
    let storePath: String
    let mappingPath: String
    let mapping: Mapping

    init(_ label: String, store: StoreKind = .sqlite, mappingText: ((String) -> String)? = nil) throws {
        _ = testBindPassword
        slapd = try TestSlapd(label: label, fixtures: ["ldif/engine.ldif"])
        let directory = try makeTemporaryDirectory("engine-\(label)")
        storePath = try store.newLocation(in: directory, label: label)
        var text = try String(contentsOf: fixtureURL("mappings/engine.yaml"), encoding: .utf8)
        if let mappingText { text = mappingText(text) }
        mappingPath = directory.appendingPathComponent("engine.yaml").path
        try text.write(toFile: mappingPath, atomically: true, encoding: .utf8)
        mapping = try MappingLoader.load(path: mappingPath, environment: ["DIRBRIDGE_URL": slapd.ldapURL])
    }

    var environment: [String: String] { ["DIRBRIDGE_URL": slapd.ldapURL] }
}

@Suite("Sync engine on a real slapd")
struct SyncEngineTests {
    @Test("the first apply creates the expected users, groups, flags, invitations and history; a second run plans nothing", arguments: StoreKind.allCases)
    func firstApply(store: StoreKind) throws {
        let fixture = try EngineFixture("first", store: store)
        let outcome = try fixture.sync()
        #expect(outcome.applied)
        #expect(outcome.plan.skipped.map(\.dn) == ["uid=nomail,ou=people,dc=example,dc=com"])
        #expect(try fixture.int("SELECT count(*) FROM client_users") == 12)
        #expect(Set(try fixture.rows("SELECT name FROM user_groups").map { $0["name"] as String }) == ["Default User Group", "Sales", "Engineering", "R&D Europe", "Platform"])
        let admin = try #require(try fixture.user("admin1@example.com"))
        #expect(admin["group_name"] as String == "Default User Group")
        #expect(admin["global_admin"] as Int == 1)
        #expect(admin["role"] as String == "Guest")
        #expect(admin["has_login"] as Int == 1)
        let lead = try #require(try fixture.user("lead1@example.com"))
        #expect(lead["group_name"] as String == "Sales")
        #expect(lead["group_manager"] as Int == 1)
        #expect(lead["role"] as String == "Admin")
        #expect(lead["extension"] as String? == "4321")
        #expect(lead["office_phone"] as String? == "+1 555 0100 x4321")
        let seller = try #require(try fixture.user("s1@example.com"))
        #expect(seller["group_name"] as String == "Sales")
        #expect(seller["group_manager"] as Int == 0)
        #expect(seller["location"] as String? == "Oslo")
        #expect(seller["source"] as String == "directory")
        #expect((seller["external_id"] as String?)?.count == 36)
        #expect(seller["external_dn"] as String? == "uid=s1,ou=people,dc=example,dc=com")
        // A group DN with escaped characters, and a nested path through a cycle.
        #expect(try fixture.user("r1@example.com")?["group_name"] as String? == "R&D Europe")
        #expect(try fixture.user("n1@example.com")?["group_name"] as String? == "Platform")
        #expect(try fixture.int("SELECT count(*) FROM invitations") == 12)
        #expect(try fixture.int("SELECT count(*) FROM history WHERE action = 'created' AND entity = 'user'") == 12)
        #expect(try fixture.int("SELECT count(*) FROM history WHERE action = 'group_created'") == 4)
        #expect(try fixture.int("SELECT count(*) FROM history WHERE entity = 'user' AND (run_id IS NULL OR reason IS NULL OR editor != 'dirbridge')") == 0)
        let history = try #require(try fixture.rows("SELECT CAST(changes AS TEXT) AS changes, reason FROM history WHERE entity = 'user' AND entity_id = ?", [lead["id"] as Int64]).first)
        let changes = try #require(try JSONSerialization.jsonObject(with: Data((history["changes"] as String).utf8)) as? [String: [Any]])
        #expect(changes["title"]?.last as? String == "Sales Lead")
        #expect((history["reason"] as String).contains("cn=sales-leads,ou=groups,dc=example,dc=com"))
        #expect(try fixture.rows("SELECT mode, status FROM sync_runs").map { "\($0["mode"] as String)/\($0["status"] as String)" } == ["apply/succeeded"])

        let second = try fixture.sync()
        #expect(second.plan.isEmpty)
        #expect(second.plan.summary.unchanged == 12)
        #expect(try fixture.int("SELECT count(*) FROM history WHERE run_id = ?", [second.runID]) == 0)
    }

    @Test("each directory change gives the right plan and history", arguments: StoreKind.allCases)
    func directoryChanges(store: StoreKind) throws {
        let fixture = try EngineFixture("changes", store: store)
        try fixture.sync()
        let renamedBefore = try #require(try fixture.user("s2@example.com"))
        try fixture.slapd.modify(String(contentsOf: fixtureURL("ldif/engine-changes.ldif"), encoding: .utf8))
        let outcome = try fixture.sync()
        let byEmail = Dictionary(uniqueKeysWithValues: outcome.plan.userChanges.map { ($0.email, $0) })
        #expect(byEmail.count == 6)
        #expect(byEmail["s1@example.com"]?.fields[.field(.title)] == FieldChange(old: "Account Executive", new: "Senior Account Executive"))
        #expect(byEmail["s1@example.com"]?.historyAction == .updated)
        #expect(byEmail["e1@example.com"]?.fields[.userGroup] == FieldChange(old: "Engineering", new: "Sales"))
        #expect(byEmail["e1@example.com"]?.historyAction == .groupChanged)
        #expect(byEmail["admin2@example.com"]?.fields[.globalAdmin] == FieldChange(old: true, new: false))
        #expect(byEmail["admin2@example.com"]?.historyAction == .flagsChanged)
        #expect(byEmail["e3@example.com"]?.action == .disable)
        #expect(byEmail["e3@example.com"]?.reasons.first?.contains("not in the directory any more") == true)
        #expect(byEmail["s3@example.com"]?.historyAction == .disabled)
        #expect(byEmail["s3@example.com"]?.reasons.contains { $0.contains("pwdAccountLockedTime") } == true)
        #expect(byEmail["s2@example.com"]?.fields[.externalDN]?.new == "uid=s2-renamed,ou=alumni,dc=example,dc=com")

        let renamed = try #require(try fixture.user("s2@example.com"))
        #expect(renamed["id"] as Int64 == renamedBefore["id"] as Int64)
        #expect(renamed["external_id"] as String? == renamedBefore["external_id"] as String?)
        #expect(renamed["external_dn"] as String? == "uid=s2-renamed,ou=alumni,dc=example,dc=com")
        #expect(try fixture.user("e1@example.com")?["group_name"] as String? == "Sales")
        #expect(try fixture.user("admin2@example.com")?["global_admin"] as Int? == 0)
        #expect(try fixture.user("e3@example.com")?["enabled"] as Int? == 0)
        #expect(try fixture.user("s3@example.com")?["enabled"] as Int? == 0)
        #expect(try fixture.user("s1@example.com")?["title"] as String? == "Senior Account Executive")
        let actions = try fixture.rows("SELECT action FROM history WHERE run_id = ? AND entity = 'user' ORDER BY action", [outcome.runID]).map { $0["action"] as String }
        #expect(actions == ["disabled", "disabled", "flags_changed", "group_changed", "updated", "updated"])

        // The deleted user comes back (a new entry, a new entryUUID, the same email): re-enabled.
        try fixture.slapd.modify("""
            dn: uid=e3,ou=people,dc=example,dc=com
            changetype: add
            objectClass: inetOrgPerson
            uid: e3
            cn: Elsa Engineer
            givenName: Elsa
            sn: Engineer
            mail: e3@example.com
            title: Engineer

            dn: uid=s3,ou=people,dc=example,dc=com
            changetype: modify
            delete: pwdAccountLockedTime

            """)
        let back = try fixture.sync()
        let returned = try #require(back.plan.userChanges.first { $0.email == "e3@example.com" })
        #expect(returned.historyAction == .enabled)
        #expect(try fixture.user("e3@example.com")?["enabled"] as Int? == 1)
        #expect(try fixture.user("s3@example.com")?["enabled"] as Int? == 1)
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE email = 'e3@example.com'") == 1)
        #expect(try fixture.sync().plan.isEmpty)
    }

    @Test("a dry run writes only its run row; --detailed-exitcode exits 2 on changes, 0 without; --json is the same plan", arguments: StoreKind.allCases)
    func dryRunContract(store: StoreKind) throws {
        let fixture = try EngineFixture("dry-run", store: store)
        try fixture.sync()
        let before = try fixture.portalContents()
        let clean = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--detailed-exitcode"])
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(clean.stdout.contains("Nothing to do"))
        try fixture.slapd.modify("dn: uid=e2,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n")
        let changed = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--detailed-exitcode"])
        #expect(changed.status == 2)
        #expect(changed.stdout.contains("~ e2@example.com"))
        #expect(changed.stdout.contains("title: \"Engineer\" → \"Staff Engineer\""))
        #expect(changed.stdout.contains("0 to create, 1 to update, 0 to disable, 11 unchanged of 12"))
        let json = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--json"])
        #expect(json.status == 0)
        let plan = try JSONDecoder().decode(Plan.self, from: Data(json.stdout.utf8))
        #expect(plan.summary.update == 1)
        #expect(plan.userChanges.first?.fields[.field(.title)] == FieldChange(old: "Engineer", new: "Staff Engineer"))
        #expect(try fixture.portalContents() == before)
        #expect(try fixture.int("SELECT count(*) FROM sync_runs WHERE mode = 'dry-run' AND status = 'succeeded'") == 3)
    }

    @Test("disabling more than max_disable is refused with exit 5; nothing is written but the refused run", arguments: StoreKind.allCases)
    func maxDisableRefused(store: StoreKind) throws {
        let fixture = try EngineFixture("max-disable", store: store)
        try fixture.sync()
        let before = try fixture.portalContents()
        try fixture.slapd.modify(["s1", "s2", "s3", "e1"].map { "dn: uid=\($0),ou=people,dc=example,dc=com\nchangetype: delete\n" }.joined(separator: "\n"))
        let result = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply"])
        #expect(result.status == 5)
        #expect(result.stderr.contains("max_disable"))
        #expect(result.stderr.contains("4 users would be disabled"))
        #expect(try fixture.portalContents() == before)
        let last = try #require(try fixture.rows("SELECT mode, status, error FROM sync_runs ORDER BY id DESC").first)
        #expect(last["status"] as String == "refused")
        #expect((last["error"] as String?)?.contains("max_disable") == true)
        // An explicit override lets it through.
        let forced = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--max-disable", "4"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE NOT enabled") == 4)
    }

    @Test("an empty read is refused: a bind account that sees nothing never disables the company", arguments: StoreKind.allCases)
    func emptyReadRefused(store: StoreKind) throws {
        let fixture = try EngineFixture("empty", store: store)
        try fixture.sync()
        let before = try fixture.portalContents()
        let blind = try EngineFixture("empty-blind-mapping", store: store) { $0.replacingOccurrences(of: "cn=sync,ou=services", with: "cn=blind,ou=services") }
        setenv("DIRBRIDGE_TEST_BIND_PASSWORD_BLIND", "blind-secret", 1)
        var mapping = try MappingLoader.load(path: blind.mappingPath, environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
        mapping.directory.password = .environment("DIRBRIDGE_TEST_BIND_PASSWORD_BLIND")
        #expect(throws: SyncError.self) {
            try SyncEngine.run(SyncRequest(mapping: mapping, storePath: fixture.storePath, apply: true), logger: Logger(label: "test"))
        }
        #expect(try fixture.portalContents() == before)
        let last = try #require(try fixture.rows("SELECT status, error FROM sync_runs ORDER BY id DESC").first)
        #expect(last["status"] as String == "refused")
        #expect((last["error"] as String?)?.contains("empty_read") == true)
        blind.slapd.stop()
    }

    @Test("removing the last Global Admin is refused; a protected user is never disabled or demoted", arguments: StoreKind.allCases)
    func lastAdminAndProtected(store: StoreKind) throws {
        let fixture = try EngineFixture("admins", store: store) { $0.replacingOccurrences(of: "max_demote: 3", with: "max_demote: 10") }
        try fixture.sync()
        try fixture.slapd.modify("""
            dn: cn=portal-admins,ou=groups,dc=example,dc=com
            changetype: modify
            replace: member
            member: cn=nobody,dc=example,dc=com

            """)
        // breakglass is protected: it keeps Global Admin, so the client keeps an admin.
        let kept = try fixture.sync()
        #expect(kept.plan.protectedKept.map(\.email) == ["it-breakglass@example.com"])
        #expect(try fixture.user("it-breakglass@example.com")?["global_admin"] as Int? == 1)
        #expect(try fixture.user("admin1@example.com")?["global_admin"] as Int? == 0)
        // Deleting the protected user's entry: still never disabled.
        try fixture.slapd.modify("dn: uid=breakglass,ou=people,dc=example,dc=com\nchangetype: delete\n")
        let deleted = try fixture.sync()
        #expect(deleted.plan.userChanges.allSatisfy { $0.email != "it-breakglass@example.com" })
        #expect(try fixture.user("it-breakglass@example.com")?["enabled"] as Int? == 1)

        // Without a protected admin, losing every Global Admin is refused.
        let strict = try EngineFixture("admins-strict", store: store) { $0.replacingOccurrences(of: "protected: [it-breakglass@example.com]", with: "protected: []") }
        try strict.sync()
        let before = try strict.portalContents()
        try strict.slapd.modify("""
            dn: cn=portal-admins,ou=groups,dc=example,dc=com
            changetype: modify
            replace: member
            member: cn=nobody,dc=example,dc=com

            """)
        let result = try strict.cli(["sync", strict.mappingPath, "--store", strict.storePath, "--apply"])
        #expect(result.status == 5)
        #expect(result.stderr.contains("last_global_admin"))
        #expect(try strict.portalContents() == before)
    }

    /// Gives entry s1 the email of s2 (another case): both entries are then skipped as duplicates.
    static func giveS1TheEmailOfS2(_ fixture: EngineFixture) throws {
        try fixture.slapd.modify("""
            dn: uid=s1,ou=people,dc=example,dc=com
            changetype: modify
            replace: mail
            mail: S2@example.com

            """)
    }

    @Test("two entries with the same email are both reported by DN and skipped; the rest is applied", arguments: StoreKind.allCases)
    func duplicateEmails(store: StoreKind) throws {
        let fixture = try EngineFixture("duplicates", store: store)
        try Self.giveS1TheEmailOfS2(fixture)
        let outcome = try fixture.sync()
        let skipped = outcome.plan.skipped.filter { $0.reason.contains("duplicate email") }.map(\.dn).sorted()
        #expect(skipped == ["uid=s1,ou=people,dc=example,dc=com", "uid=s2,ou=people,dc=example,dc=com"])
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE email IN ('s1@example.com', 's2@example.com')") == 0)
        #expect(try fixture.int("SELECT count(*) FROM client_users") == 10)
    }

    @Test("synced users whose entries are then skipped (their emails now the same) are still present: kept, not disabled", arguments: StoreKind.allCases)
    func skippedEntriesStayPresent(store: StoreKind) throws {
        let fixture = try EngineFixture("skipped-present", store: store)
        try fixture.sync()
        let before = try fixture.int("SELECT count(*) FROM client_users WHERE enabled")
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE enabled AND lower(email) IN ('s1@example.com', 's2@example.com')") == 2)
        try Self.giveS1TheEmailOfS2(fixture)
        let outcome = try fixture.sync()
        #expect(outcome.plan.skipped.filter { $0.reason.contains("duplicate email") }.count == 2)
        #expect(outcome.plan.summary.disable == 0)
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE enabled") == before)
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE enabled AND lower(email) IN ('s1@example.com', 's2@example.com')") == 2)
    }

    @Test("a portal-created user is untouched, then adopted with adopt_existing: email", arguments: StoreKind.allCases)
    func portalUserAdoption(store: StoreKind) throws {
        let fixture = try EngineFixture("adopt", store: store) { $0.replacingOccurrences(of: "adopt_existing: email", with: "adopt_existing: none") }
        // The portal created e2 before any sync, plus a portal-only user.
        let portal = try openPortalStorage(fixture.storePath)
        let client = try portal.ensureClient(ClientSpec(name: "Engine Corp"))
        _ = try portal.apply(ChangeSet(clientID: client.id, editor: "portal", groupCreations: [], groupRenames: [],
                                      userCreations: [NewClientUser(email: "E2@example.com", fields: [.firstName: "Emil", .title: "Portal title"], source: .portal),
                                                      NewClientUser(email: "portal-only@example.com", fields: [.firstName: "Pat"], source: .portal)],
                                      userUpdates: [], invitations: []),
                            run: SyncRunRecord(clientID: client.id, mapping: "portal", directory: "", mode: .apply, status: .succeeded, startedAt: Date()))
        let untouched = try fixture.sync()
        #expect(untouched.plan.skipped.contains { $0.dn == "uid=e2,ou=people,dc=example,dc=com" && $0.reason.contains("adopt_existing") })
        #expect(try fixture.user("e2@example.com")?["title"] as String? == "Portal title")
        #expect(try fixture.user("e2@example.com")?["source"] as String? == "portal")

        let adopting = try EngineFixture("adopt-on", store: store, mappingText: nil)
        var mapping = adopting.mapping
        mapping.directory.urls = [fixture.slapd.ldapURL]
        let adopted = try SyncEngine.run(SyncRequest(mapping: mapping, storePath: fixture.storePath, apply: true), logger: Logger(label: "test"))
        let link = try #require(adopted.plan.userChanges.first { $0.email.lowercased() == "e2@example.com" })
        #expect(link.historyAction == .linked)
        let e2 = try #require(try fixture.user("e2@example.com"))
        #expect(e2["source"] as String == "directory")
        #expect(e2["title"] as String? == "Engineer")
        #expect((e2["external_id"] as String?)?.isEmpty == false)
        let portalOnly = try #require(try fixture.user("portal-only@example.com"))
        #expect(portalOnly["source"] as String == "portal")
        #expect(portalOnly["enabled"] as Int == 1)
        #expect(try fixture.int("SELECT count(*) FROM history WHERE action = 'linked'") == 1)
        adopting.slapd.stop()
    }

    @Test("sync --verbose logs each stage's duration with the process's memory at its end", arguments: StoreKind.allCases)
    func verboseStages(store: StoreKind) throws {
        let fixture = try EngineFixture("verbose-stages", store: store)
        let result = try runDirbridge(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--verbose"],
                                      environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        for stage in ["read", "planned", "written"] {
            let line = lines.first { $0.hasSuffix("[DirBridgeCore] \(stage)") && $0.contains("seconds=") }
            #expect(line != nil, "no \(stage) line in \(result.stderr)")
            // Linux: resident and peak memory from /proc/self/status, in MB.
            let peak = line.flatMap { $0.split(separator: " ").first { $0.hasPrefix("peak_rss_mb=") } }.flatMap { Int($0.dropFirst(12)) }
            #expect((peak ?? 0) > 0, "\(line ?? "")")
        }
        fixture.slapd.stop()
    }

    @Test("a wrong bind password and a server stopped mid-read exit 3 with nothing written", arguments: StoreKind.allCases)
    func directoryFailuresWriteNothing(store: StoreKind) throws {
        let fixture = try EngineFixture("failures", store: store)
        try fixture.sync()
        let before = try fixture.portalContents()
        let wrong = try runDirbridge(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply"],
                                     environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL, "DIRBRIDGE_TEST_BIND_PASSWORD": "wrong-password-xyz"])
        #expect(wrong.status == 3)
        #expect(!wrong.stderr.contains("wrong-password-xyz") && !wrong.stdout.contains("wrong-password-xyz"))
        #expect(try fixture.portalContents() == before)

        // Stop the server after the first page (page_size 5) of the users' read.
        var stopped = false
        let connection = try DirectoryConnection.open(fixture.mapping.directory, logger: Logger(label: "test"))
        #expect(throws: DirectoryError.self) {
            try connection.search(SearchRequest(base: "dc=example,dc=com", filter: "(objectClass=inetOrgPerson)")) { _ in
                if !stopped { fixture.slapd.stop(); stopped = true }
            }
        }
        #expect(stopped)
        let engineRead = try EngineFixture("failures-midread", store: store)
        try engineRead.sync()
        let beforeMidRead = try engineRead.portalContents()
        try engineRead.slapd.modify("dn: uid=s1,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Changed\n")
        var pages = 0
        let request = SyncRequest(mapping: engineRead.mapping, storePath: engineRead.storePath, apply: true)
        #expect(throws: DirectoryError.self) {
            try SyncEngine.run(request, logger: Logger(label: "test")) { _ in
                pages += 1
                if pages == 1 { engineRead.slapd.stop() }
            }
        }
        // The read asks for the next page before it hands a page over (the server prepares it
        // meanwhile), so the page already in flight when slapd stops may still arrive; no later one can.
        #expect((1...2).contains(pages))
        let last = try #require(try engineRead.rows("SELECT status, error FROM sync_runs ORDER BY id DESC").first)
        #expect(last["status"] as String == "failed")
        #expect(try engineRead.portalContents() == beforeMidRead)
    }
}
