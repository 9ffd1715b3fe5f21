import DirBridgeCore
import Foundation
import GRDB
import Logging
import Testing

/// `mappings/active-directory.yaml` against the run's Samba DC, with a store of its own.
struct ADFixture: SyncFixture {
    let samba: TestSamba
    let mappingPath: String
    let storePath: String
    let mapping: Mapping

    init(_ label: String, edit: (String) -> String = { $0 }) throws {
        samba = try TestSamba.server()
        (mappingPath, storePath) = try samba.mappingFile(label, edit: edit)
        mapping = try MappingLoader.load(path: mappingPath, environment: ["DIRBRIDGE_URL": samba.ldapsURL])
    }

    var environment: [String: String] { ["DIRBRIDGE_URL": samba.ldapsURL] }

    /// Each planned new user's user group, role and flags, by email: what a dry run would create.
    func plannedUsers(logger: Logger = Logger(label: "test")) throws -> [String: String] {
        var users: [String: String] = [:]
        for change in try sync(apply: false, logger: logger).plan.userChanges where change.action == .create {
            let field = { (attribute: UserAttribute) in change.fields[attribute]?.new?.description ?? "-" }
            users[change.email] = [field(.userGroup), field(.role), field(.globalAdmin), field(.groupManager)].joined(separator: "/")
        }
        return users
    }

    /// The entry's objectGUID as the directory holds it (16 bytes).
    func objectGUID(of dn: String) throws -> [UInt8] {
        let connection = try DirectoryConnection.open(try samba.configuration(), logger: Logger(label: "test"))
        var guid: [UInt8] = []
        try connection.search(SearchRequest(base: dn, scope: .base, attributes: ["objectGUID"])) { page in guid = page.first?.bytes("objectGUID").first ?? [] }
        return guid
    }
}

/// Every named user of the fixture company plus the 1,600 operators, less Xena (disabled before the first sync).
private let companySize = TestSamba.operators + 7

@Suite("Active Directory on a real Samba DC", .serialized)
struct ActiveDirectoryTests {
    @Test("the shipped AD mapping: 1,600 members through range retrieval, nesting in chain, Domain Users through primaryGroupID")
    func shippedMapping() throws {
        let fixture = try ADFixture("shipped")
        #expect(fixture.mapping.groups?.nestedResolution == .server)
        #expect(fixture.mapping.groups?.rangeSize == 1500)
        let outcome = try fixture.sync()
        #expect(outcome.applied)
        #expect(try fixture.int("SELECT count(*) FROM client_users") == companySize)
        #expect(try fixture.int("""
            SELECT count(*) FROM client_users u JOIN user_groups g ON g.id = u.user_group_id
            WHERE g.name = 'Operations' AND u.email LIKE 'op%@test.example'
            """) == TestSamba.operators)
        let ada = try #require(try fixture.user("ada.admin@test.example"))
        #expect(ada["group_name"] as String == "Default User Group")
        #expect(ada["global_admin"] as Int == 1)
        #expect(ada["role"] as String == "Admin")
        let sam = try #require(try fixture.user("sam.seller@test.example"))
        #expect(sam["group_name"] as String == "Sales")
        #expect(sam["group_manager"] as Int == 1)
        #expect(try fixture.user("sofia.sales@test.example")?["group_name"] as String? == "Sales")
        // Carol: SRE in Platform in Dept Engineering; Erin: Project Falcon (outside OU=Groups) in Dept Engineering.
        #expect(try fixture.user("carol.chain@test.example")?["group_name"] as String? == "Engineering")
        #expect(try fixture.user("erin.extern@test.example")?["group_name"] as String? == "Engineering")
        // Domain Users lists no member: the role comes from everyone's primaryGroupID 513 alone.
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE role = 'Employee'") == companySize - 1)
        #expect(try fixture.user("xena.gone@test.example") == nil)
        // The id is the objectGUID in AD's text form: the first three fields byte-swapped.
        let carol = try #require(try fixture.user("carol.chain@test.example"))
        let guid = try fixture.objectGUID(of: "CN=Carol Chain,OU=Berlin,OU=Staff,DC=test,DC=example")
        #expect(carol["external_id"] as String == adText(guid))
        // Search continuation references at the domain root (the groups' base): skipped, counted, not fatal.
        #expect(outcome.plan.summary.referencesSkipped > 0)
        let summary = try #require(try fixture.rows("SELECT summary FROM sync_runs").first?["summary"] as String?)
        #expect(summary.contains("\"references_skipped\""))

        let second = try fixture.sync()
        #expect(second.plan.isEmpty)
        #expect(second.plan.summary.unchanged == companySize + 1)   // Xena counts: read, disabled, not in the portal
    }

    @Test("a nested group resolves identically through the in-chain rule and through dirbridge's walk")
    func inChainEqualsClientWalk() throws {
        let server = try ADFixture("in-chain")
        let client = try ADFixture("client-walk") { $0.replacingOccurrences(of: "nested: server", with: "nested: true") }
        #expect(client.mapping.groups?.nestedResolution == .client)
        let viaServer = try server.plannedUsers()
        #expect(viaServer.count == companySize)
        #expect(viaServer == (try client.plannedUsers()))
        #expect(viaServer["carol.chain@test.example"] == "Engineering/Employee/0/0")
        let explained = try [server, client].map { fixture in
            try Explainer.explain("carol.chain@test.example", mapping: fixture.mapping, storePath: fixture.storePath, logger: Logger(label: "test")).groups
        }
        #expect(explained[0] == explained[1])
        #expect(explained[0] == [
            "cn=dept engineering,ou=groups,dc=test,dc=example (via cn=sre,ou=groups,dc=test,dc=example → cn=platform,ou=groups,dc=test,dc=example)",
            "cn=domain users,cn=users,dc=test,dc=example",
            "cn=platform,ou=groups,dc=test,dc=example (via cn=sre,ou=groups,dc=test,dc=example)",
            "cn=sre,ou=groups,dc=test,dc=example",
            // Domain Users is itself a member of BUILTIN\Users: reached from the primary group.
            "cn=users,cn=builtin,dc=test,dc=example (via cn=domain users,cn=users,dc=test,dc=example)",
        ])
    }

    @Test("reading only OU=Groups, the server's in-chain rule still follows a group outside it; dirbridge's walk cannot")
    func inChainReachesUnreadGroups() throws {
        func groupsOnly(_ text: String) -> String {
            text.replacingOccurrences(of: "  base: DC=test,DC=example\n  filter: (objectClass=group)", with: "  base: OU=Groups,DC=test,DC=example\n  filter: (objectClass=group)")
        }
        let server = try ADFixture("outside-server", edit: groupsOnly)
        #expect(server.mapping.groups?.base == "OU=Groups,DC=test,DC=example")
        let client = try ADFixture("outside-client") { groupsOnly($0).replacingOccurrences(of: "nested: server", with: "nested: client") }
        let viaServer = try server.plannedUsers()
        let viaClient = try client.plannedUsers()
        #expect(viaServer["erin.extern@test.example"]?.hasPrefix("Engineering/") == true)
        #expect(viaClient["erin.extern@test.example"]?.hasPrefix("Default User Group/") == true)
        #expect(viaServer["carol.chain@test.example"] == viaClient["carol.chain@test.example"])
    }

    @Test("a 1,600-member group reads whole, and through explicit ranges of 500 until the server answers *")
    func rangeRetrieval() throws {
        let samba = try TestSamba.server()
        let log = CapturedLog()
        let connection = try DirectoryConnection.open(try samba.configuration(), logger: log.logger)
        func members(_ attribute: String) throws -> DirectoryEntry? {
            var found: DirectoryEntry?
            try connection.search(SearchRequest(base: TestSamba.operationsDN, scope: .base, attributes: [attribute])) { found = $0.first }
            return found
        }
        let whole = try #require(try members("member"))
        #expect(whole.bytes("member").count == TestSamba.operators)
        let ranged = try #require(try members("member;range=0-499"))
        #expect(ranged.bytes("member").count == TestSamba.operators)
        #expect(Set(ranged.strings("member")) == Set(whole.strings("member")))
        #expect(ranged.values.keys.allSatisfy { !$0.contains(";") })
        let asked = log.messages.map(\.1).filter { $0.contains("member;range=") }
        for range in ["0-499", "500-999", "1000-1499", "1500-1999"] {
            #expect(asked.contains { $0.contains("member;range=\(range)") }, "range \(range) was asked for")
        }

        // The whole sync with ranges of 500, and without asking for ranges at all.
        for (label, edit) in [("range-500", "  range: 500"), ("no-range", "")] {
            let fixture = try ADFixture(label) { $0.replacingOccurrences(of: "  range: 1500", with: edit) }
            #expect(fixture.mapping.groups?.rangeSize == (edit.isEmpty ? nil : 500))
            let planned = try fixture.plannedUsers()
            #expect(planned.values.filter { $0.hasPrefix("Operations/") }.count == TestSamba.operators)
        }
    }

    @Test("an account disabled in AD (bit 2 of userAccountControl) is disabled in the portal, and re-enabled when enabled there")
    func disableAndEnable() throws {
        let fixture = try ADFixture("disable")
        try fixture.sync()
        #expect(try fixture.user("dave.toggle@test.example")?["enabled"] as Int? == 1)
        let dave = "CN=Dave Toggle,OU=Oslo,OU=Staff,DC=test,DC=example"
        // 66082 = DONT_EXPIRE_PASSWORD 65536 + NORMAL_ACCOUNT 512 + PASSWD_NOTREQD 32 + ACCOUNTDISABLE 2.
        try fixture.samba.modify("dn: \(dave)\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 66082\n")
        defer { try? fixture.samba.modify("dn: \(dave)\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 544\n") }
        let disabling = try fixture.sync()
        #expect(disabling.plan.summary.disable == 1)
        #expect(try fixture.user("dave.toggle@test.example")?["enabled"] as Int? == 0)
        // 66080: the same flags without ACCOUNTDISABLE.
        try fixture.samba.modify("dn: \(dave)\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 66080\n")
        let enabling = try fixture.sync()
        #expect(enabling.plan.summary.enable == 1)
        let row = try #require(try fixture.user("dave.toggle@test.example"))
        #expect(row["enabled"] as Int == 1)
        #expect(try fixture.rows("SELECT action FROM history WHERE entity = 'user' AND entity_id = ? ORDER BY id", [row["id"] as Int64])
            .map { $0["action"] as String } == ["created", "disabled", "enabled"])
    }

    @Test("a user renamed (new CN) and moved (new OU) keeps the same portal user through objectGUID")
    func renameAndMove() throws {
        let fixture = try ADFixture("rename")
        try fixture.sync()
        let before = try #require(try fixture.user("alice.able@test.example"))
        let oldDN = "CN=Alice Able,OU=Oslo,OU=Staff,DC=test,DC=example"
        let newDN = "CN=Alice Baker,OU=Berlin,OU=Staff,DC=test,DC=example"
        let guid = try fixture.objectGUID(of: oldDN)
        /// Renames and moves Alice (`from` → `to`) and sets her surname and office to match.
        func move(from: String, to: String, surname: String, office: String) throws {
            let (rdn, superior) = (to.prefix { $0 != "," }, to.drop { $0 != "," }.dropFirst())
            try fixture.samba.modify("""
                dn: \(from)
                changetype: modrdn
                newrdn: \(rdn)
                deleteoldrdn: 1
                newsuperior: \(superior)

                dn: \(to)
                changetype: modify
                replace: sn
                sn: \(surname)
                -
                replace: physicalDeliveryOfficeName
                physicalDeliveryOfficeName: \(office)

                """)
        }
        try move(from: oldDN, to: newDN, surname: "Baker", office: "Berlin")
        defer { try? move(from: newDN, to: oldDN, surname: "Able", office: "Oslo") }
        #expect(try fixture.objectGUID(of: newDN) == guid)
        let outcome = try fixture.sync()
        #expect(outcome.plan.summary.create == 0)
        #expect(outcome.plan.summary.update == 1)
        let after = try #require(try fixture.user("alice.able@test.example"))
        #expect(after["id"] as Int64 == before["id"] as Int64)
        #expect(after["external_id"] as String == before["external_id"] as String)
        #expect(after["external_dn"] as String? == newDN)
        #expect(after["last_name"] as String? == "Baker")
        #expect(after["location"] as String? == "Berlin")
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE first_name = 'Alice'") == 1)
    }

    @Test("incremental runs read what changed since the DC's uSNChanged mark; a changed group re-plans its members")
    func incrementalByUpdateSequence() throws {
        let fixture = try ADFixture("usn")
        func run() throws -> SyncOutcome {
            try SyncEngine.run(SyncRequest(mapping: fixture.mapping, storePath: fixture.storePath, apply: true, incremental: true), logger: Logger(label: "test"))
        }
        #expect(try run().method == .full)
        let quiet = try run()
        #expect(quiet.method == .usnChanged)
        #expect(quiet.entriesRead == 0)
        #expect(quiet.plan.isEmpty)

        let carol = "CN=Carol Chain,OU=Berlin,OU=Staff,DC=test,DC=example"
        let dave = "CN=Dave Toggle,OU=Oslo,OU=Staff,DC=test,DC=example"
        let leads = "CN=Sales Leads,OU=Groups,DC=test,DC=example"
        try fixture.samba.modify("dn: \(carol)\nchangetype: modify\nreplace: title\ntitle: Principal SRE\n\ndn: \(leads)\nchangetype: modify\nadd: member\nmember: \(dave)\n")
        defer {
            try? fixture.samba.modify("dn: \(carol)\nchangetype: modify\nreplace: title\ntitle: Site Reliability Engineer\n\ndn: \(leads)\nchangetype: modify\ndelete: member\nmember: \(dave)\n")
        }
        let changed = try run()
        #expect(changed.method == .usnChanged)
        // Carol's entry and the group (Dave's own entry did not change: memberOf is a back link), and Carol
        // once more from the groups' domain-root check for entries that left the groups filter.
        #expect(changed.entriesRead == 3)
        #expect(changed.plan.summary.update == 2)
        #expect(try fixture.user("carol.chain@test.example")?["title"] as String? == "Principal SRE")
        let row = try #require(try fixture.user("dave.toggle@test.example"))
        #expect(row["group_name"] as String == "Sales")
        #expect(row["group_manager"] as Int == 1)
        #expect(try run().plan.isEmpty)
    }

    @Test("run --watch on Active Directory: the DC offers no RFC 4533 content sync, so the watch polls at --every; a change still arrives")
    func watchPollsOnActiveDirectory() throws {
        let fixture = try ADFixture("watch")
        let run = try BackgroundDirbridge(
            ["run", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--watch", "--every", "2s"],
            environment: fixture.environment)
        #expect(eventually(seconds: 90) { (try? fixture.value("SELECT COUNT(*) FROM client_users") as Int?) == companySize })
        let carol = "CN=Carol Chain,OU=Berlin,OU=Staff,DC=test,DC=example"
        try fixture.samba.modify("dn: \(carol)\nchangetype: modify\nreplace: title\ntitle: Watched SRE\n")
        defer { try? fixture.samba.modify("dn: \(carol)\nchangetype: modify\nreplace: title\ntitle: Site Reliability Engineer\n") }
        #expect(eventually(seconds: 60) { (try? fixture.user("carol.chain@test.example")?["title"] as String?) == "Watched SRE" })
        kill(run.pid, SIGTERM)
        let ended = try #require(run.wait(seconds: 30))
        #expect(ended.status == 0, "\(ended.stderr)")
        #expect(ended.stderr.contains("does not offer content synchronisation (RFC 4533); polling every 2s"))
        #expect(ended.stderr.contains("incremental read (usn-changed)"))
    }

    @Test("continuation references at the domain root are skipped and counted by the reader and by `dirbridge check`")
    func continuationReferences() throws {
        let fixture = try ADFixture("references")
        let connection = try DirectoryConnection.open(try fixture.samba.configuration(), logger: Logger(label: "test"))
        let statistics = try connection.search(SearchRequest(base: TestSamba.baseDN, filter: "(objectClass=group)", attributes: ["cn"])) { _ in }
        #expect(statistics.references > 0)
        #expect(statistics.entries > 7)
        let check = try fixture.cli(["check", fixture.mappingPath])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("search continuation references skipped:"))
        let dryRun = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--quiet"])
        #expect(dryRun.status == 0, "\(dryRun.stderr)")
        #expect(dryRun.stdout.contains("\(companySize) to create"))
        #expect(dryRun.stdout.contains(" not followed"))
        #expect(dryRun.stdout.contains("continuation reference"))
    }
}

@Suite("groups.nested: server on a server without the in-chain rule")
struct InChainFallbackTests {
    @Test("slapd does not offer the rule: dirbridge walks the groups itself, with a warning, and plans the same")
    func fallsBackToClientWalk() throws {
        let server = try EngineFixture("in-chain-fallback") { $0.replacingOccurrences(of: "nested: true", with: "nested: server") }
        #expect(server.mapping.groups?.nestedResolution == .server)
        let log = CapturedLog()
        let planned = try SyncEngine.run(SyncRequest(mapping: server.mapping, storePath: server.storePath), logger: log.logger).plan
        #expect(log.messages.contains { $0.0 == .warning && $0.1.contains("does not say it is Active Directory") })
        let client = try EngineFixture("in-chain-fallback-client")
        let walked = try client.sync(apply: false).plan
        func outcomes(_ plan: Plan) -> [String: String] {
            Dictionary(uniqueKeysWithValues: plan.userChanges.map { ($0.email, "\($0.fields[.userGroup]?.new ?? "-")/\($0.fields[.role]?.new ?? "-")") })
        }
        #expect(!planned.userChanges.isEmpty)
        #expect(outcomes(planned) == outcomes(walked))
    }
}

/// objectGUID bytes in AD's canonical text: Data1 (4 bytes), Data2 and Data3 (2 each) little-endian, the rest as stored.
private func adText(_ guid: [UInt8]) -> String {
    let swapped = Array(guid[0..<4].reversed()) + Array(guid[4..<6].reversed()) + Array(guid[6..<8].reversed()) + Array(guid[8...])
    return UUID(uuid: (swapped[0], swapped[1], swapped[2], swapped[3], swapped[4], swapped[5], swapped[6], swapped[7],
                       swapped[8], swapped[9], swapped[10], swapped[11], swapped[12], swapped[13], swapped[14], swapped[15])).uuidString.lowercased()
}
