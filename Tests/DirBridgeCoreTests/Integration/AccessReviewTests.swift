import DirBridgeCore
import Foundation
import GRDB
import Testing

/// LDIF that adds people (uid, mail uid@example.com) and makes them members of `group`.
func peopleLDIF(_ uids: [String], memberOf group: String? = nil) -> String {
    var ldif = uids.map { uid in
        """
        dn: uid=\(uid),ou=people,dc=example,dc=com
        changetype: add
        objectClass: inetOrgPerson
        uid: \(uid)
        cn: Person \(uid)
        givenName: Person
        sn: \(uid)
        mail: \(uid)@example.com
        title: Staff

        """
    }.joined(separator: "\n")
    if let group {
        ldif += "\ndn: \(group)\nchangetype: modify\nadd: member\n" + uids.map { "member: uid=\($0),ou=people,dc=example,dc=com" }.joined(separator: "\n") + "\n\n"
    }
    return ldif
}

let portalAdmins = "cn=portal-admins,ou=groups,dc=example,dc=com"

@Suite("Privilege guards and access reviews on a real slapd")
struct AccessReviewTests {
    @Test("max_promote 2: a first apply with five admins goes ahead; three new admins later are refused (exit 5, only the refused run written); --force applies them")
    func maxPromote() throws {
        let fixture = try EngineFixture("max-promote") { text in
            text + "guards:\n  max_promote: 2\n  privileged_roles: [Admin]\n"
        }
        defer { fixture.slapd.stop() }
        #expect(fixture.mapping.guards.maxPromote == 2)
        // Onboarding: admin1, admin2, breakglass and two more are Global Admins; lead1 gets
        // Group Manager and the Admin role. Seven grants, but a client's first apply is exempt.
        try fixture.slapd.modify(peopleLDIF(["boss1", "boss2"], memberOf: portalAdmins))
        let first = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE global_admin = 1") == 5)
        #expect(first.stdout.contains("Privileges granted (7):"), "\(first.stdout)")

        // Someone adds three people to the admins group.
        try fixture.slapd.modify(peopleLDIF(["mallory1", "mallory2", "mallory3"], memberOf: portalAdmins))
        let before = try fixture.portalContents()
        let runsBefore = try fixture.int("SELECT count(*) FROM sync_runs")
        let dryRun = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath])
        // The grants come first in the plan, above everything else.
        let privileges = try #require(dryRun.stdout.range(of: "Privileges granted (3):"))
        let creations = try #require(dryRun.stdout.range(of: "Users to create (3):"))
        #expect(privileges.lowerBound < creations.lowerBound)
        #expect(dryRun.stdout.contains("  ↑ mallory1@example.com: Global Admin (new user)\n      why: rule 1 (line 31): global_admin = true, via \(portalAdmins)"), "\(dryRun.stdout)")
        #expect(dryRun.stdout.contains("✗ max_promote: 3 Global Admin / Group Manager / privileged-role grants"))
        let json = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--json"])
        let plan = try JSONDecoder().decode(Plan.self, from: Data(json.stdout.utf8))
        #expect(plan.grants.map(\.email) == ["mallory1@example.com", "mallory2@example.com", "mallory3@example.com"])
        #expect(plan.grants.allSatisfy { $0.privilege == .globalAdmin && $0.action == .create })

        let refused = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply"])
        #expect(refused.status == 5, "\(refused.stderr)")
        #expect(refused.stderr.contains("max_promote"), "\(refused.stderr)")
        #expect(refused.stderr.contains("above max_promote 2"), "\(refused.stderr)")
        #expect(try fixture.portalContents() == before)
        #expect(try fixture.int("SELECT count(*) FROM sync_runs") == runsBefore + 3)
        #expect(try fixture.value("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1") == "refused")

        // --max-promote 3 lets exactly these through; here --force does.
        let forced = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE global_admin = 1") == 8)
        #expect(forced.stderr.contains("guard overridden by --force"))
    }

    /// Waits until the wall clock is in a later second than `date`: history times are kept to the second.
    private func nextSecond(after date: Date) {
        let target = (date.timeIntervalSince1970.rounded(.down) + 1)
        while Date().timeIntervalSince1970 < target { Thread.sleep(forTimeInterval: 0.05) }
    }

    /// Applies with the CLI and returns the sync run id.
    private func apply(_ fixture: EngineFixture) throws -> Int64 {
        let result = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply"])
        #expect(result.status == 0, "\(result.stderr)")
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("Applied (sync run ") })
        return try #require(Int64(line.dropFirst("Applied (sync run ".count).prefix { $0.isNumber }))
    }

    /// `users --json` now, and the moment it shows: the store holds no write after it
    /// (the next write waits for a later second).
    private func snapshot(_ fixture: EngineFixture) throws -> (moment: String, users: String) {
        let now = Date()
        let users = try fixture.cli(["users", "--store", fixture.storePath, "--json"])
        #expect(users.status == 0, "\(users.stderr)")
        let moment = StoreTime.text(now)
        nextSecond(after: now)
        return (moment, users.stdout)
    }

    private func asOf(_ fixture: EngineFixture, _ moment: String) throws -> (users: String, uncertain: [Any]) {
        let result = try fixture.cli(["users", "--store", fixture.storePath, "--as-of", moment, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["as_of"] as? String == moment)
        let users = try JSONSerialization.data(withJSONObject: try #require(object["users"]), options: [.sortedKeys])
        return (String(decoding: users, as: UTF8.self), try #require(object["uncertain"] as? [Any]))
    }

    private func normalized(_ json: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test("users --as-of at three moments equals what users printed then; history --privileges lists exactly the grants and removals, with their runs")
    func accessAsOfAndPrivileges() throws {
        let fixture = try EngineFixture("as-of")
        defer { fixture.slapd.stop() }
        let run1 = try apply(fixture)
        let moment1 = try snapshot(fixture)

        // Titles, groups, flags and enablement change: admin2 leaves the admins, lead1 the
        // sales leads (Group Manager and the Admin role go), x1 arrives as an admin, s1 moves
        // to Engineering, e2 is locked, e1 gets a new title.
        try fixture.slapd.modify(peopleLDIF(["x1"], memberOf: portalAdmins) + """

            dn: \(portalAdmins)
            changetype: modify
            delete: member
            member: uid=admin2,ou=people,dc=example,dc=com

            dn: cn=sales-leads,ou=groups,dc=example,dc=com
            changetype: modify
            add: member
            member: cn=nobody,dc=example,dc=com
            -
            delete: member
            member: uid=lead1,ou=people,dc=example,dc=com

            dn: cn=dept-Sales,ou=groups,dc=example,dc=com
            changetype: modify
            delete: member
            member: uid=s1,ou=people,dc=example,dc=com

            dn: cn=dept-Engineering,ou=groups,dc=example,dc=com
            changetype: modify
            add: member
            member: uid=s1,ou=people,dc=example,dc=com

            dn: uid=e2,ou=people,dc=example,dc=com
            changetype: modify
            add: pwdAccountLockedTime
            pwdAccountLockedTime: 000001010000Z

            dn: uid=e1,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Staff Engineer

            """)
        let run2 = try apply(fixture)
        let moment2 = try snapshot(fixture)
        // snapshot() waited for a later second than run 2's rows: from here on is run 3's.
        let sinceRun3 = StoreTime.text(Date())

        // And back: admin2 and lead1 regain their privileges, e2 is unlocked, e1 promoted again.
        try fixture.slapd.modify("""
            dn: \(portalAdmins)
            changetype: modify
            add: member
            member: uid=admin2,ou=people,dc=example,dc=com

            dn: cn=sales-leads,ou=groups,dc=example,dc=com
            changetype: modify
            add: member
            member: uid=lead1,ou=people,dc=example,dc=com

            dn: uid=e2,ou=people,dc=example,dc=com
            changetype: modify
            delete: pwdAccountLockedTime

            dn: uid=e1,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Principal Engineer

            """)
        let run3 = try apply(fixture)
        let moment3 = try snapshot(fixture)

        var seen: Set<String> = []
        for (moment, users) in [moment1, moment2, moment3] {
            let view = try asOf(fixture, moment)
            #expect(view.users == (try normalized(users)), "as of \(moment)")
            #expect(view.uncertain.isEmpty, "as of \(moment): \(view.uncertain)")
            seen.insert(view.users)
        }
        #expect(seen.count == 3)
        // Before the first apply there was nobody.
        #expect(try asOf(fixture, "2020-01-01T00:00:00Z").users == "[]")

        let history = try fixture.cli(["history", "--store", fixture.storePath, "--privileges", "--json"])
        #expect(history.status == 0, "\(history.stderr)")
        let events = try #require(try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]])
        let listed = Set(events.map { "\($0["run_id"] as? Int ?? -1) \($0["email"] as? String ?? "") \($0["privilege"] as? String ?? "") \($0["change"] as? String ?? "")" })
        #expect(listed == [
            "\(run1) admin1@example.com Global Admin granted", "\(run1) admin2@example.com Global Admin granted",
            "\(run1) it-breakglass@example.com Global Admin granted", "\(run1) lead1@example.com Group Manager granted",
            "\(run1) lead1@example.com role Admin granted",
            "\(run2) admin2@example.com Global Admin removed", "\(run2) lead1@example.com Group Manager removed",
            "\(run2) lead1@example.com role Admin removed", "\(run2) x1@example.com Global Admin granted",
            "\(run3) admin2@example.com Global Admin granted", "\(run3) lead1@example.com Group Manager granted",
            "\(run3) lead1@example.com role Admin granted",
        ])
        #expect(events.count == listed.count)
        #expect(events.allSatisfy { ($0["reason"] as? String)?.isEmpty == false && $0["editor"] as? String == "dirbridge" })
        // --since keeps the last run's grants only.
        let since = try fixture.cli(["history", "--store", fixture.storePath, "--privileges", "--since", sinceRun3])
        #expect(since.status == 0)
        #expect(since.stdout.split(separator: "\n").count == 1 + 3, "\(since.stdout)")
        #expect(since.stdout.contains("#\(run3)") && !since.stdout.contains("#\(run2) "))
    }

    @Test("--as-of says what history cannot tell: a user edited outside dirbridge's history, and one made before it")
    func asOfUncertain() throws {
        let fixture = try EngineFixture("as-of-uncertain")
        defer { fixture.slapd.stop() }
        _ = try apply(fixture)
        let moment = try snapshot(fixture)
        // The portal edits a title without a history row, and creates a user without one.
        try fixture.database().write { db in
            try db.execute(sql: "UPDATE client_users SET title = 'Edited Quietly' WHERE email = 'e3@example.com'")
            let group: Int64 = try Int64.fetchOne(db, sql: "SELECT id FROM user_groups WHERE is_default = 1")!
            try db.execute(sql: """
                INSERT INTO client_users (client_id, email, role, user_group_id, source, created_at, updated_at)
                VALUES (1, 'old-timer@example.com', 'Guest', ?, 'portal', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z')
                """, arguments: [group])
        }
        let result = try fixture.cli(["users", "--store", fixture.storePath, "--as-of", moment.moment])
        #expect(result.status == 0)
        #expect(result.stdout.contains("History cannot tell everything about 2 users"), "\(result.stdout)")
        #expect(result.stdout.contains("e3@example.com (Engine Corp): title changed without a history row"), "\(result.stdout)")
        #expect(result.stdout.contains("old-timer@example.com (Engine Corp): no 'created' history row"), "\(result.stdout)")
        // The quietly edited title is not passed off as the value then.
        #expect(!result.stdout.contains("Edited Quietly"))
    }
}
