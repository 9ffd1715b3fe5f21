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
}
