import DirBridgeCore
import Foundation
import GRDB
import Testing

/// The same directory and mapping as an ``IncrementalFixture``, synced in full (no cache) into
/// a store of its own, or into the fixture's store: what an incremental run must equal.
private struct FullSync: SyncFixture {
    let mapping: Mapping
    let storePath: String
    let environment: [String: String]

    init(_ fixture: IncrementalFixture, store: String? = nil) throws {
        mapping = fixture.mapping
        storePath = try store ?? makeTemporaryDirectory("affected-full").appendingPathComponent("full.sqlite").path
        environment = fixture.environment
    }
}

/// What a sync leaves of each client user, ids and times aside.
private func usersTable(_ store: some PortalStoreReading) throws -> [String] {
    try store.rows("""
        SELECT u.email, g.name AS group_name, u.first_name, u.last_name, u.title, u.enabled, u.global_admin, u.group_manager,
               u.role, u.source, u.external_id, u.external_dn
        FROM client_users u JOIN user_groups g ON g.id = u.user_group_id ORDER BY u.email
        """).map(\.description)
}

private func dn(_ uid: String) -> String { "uid=\(uid),ou=people,dc=example,dc=com" }

@Suite("Incremental runs plan only the users their changes affect (real slapd)", .serialized)
struct AffectedPlanningTests {
    /// After an affected-only apply, a plan of every user finds nothing to do, and a full sync
    /// into an empty store leaves the same users.
    private func expectSameAsFullSync(_ fixture: IncrementalFixture) throws {
        try expectNothingLeft(fixture)
        let fresh = try FullSync(fixture)
        try fresh.sync()
        #expect(try usersTable(fixture) == usersTable(fresh))
    }

    /// A plan of every user (no cache) against the store the incremental runs wrote finds nothing to do.
    private func expectNothingLeft(_ fixture: IncrementalFixture) throws {
        let recheck = try FullSync(fixture, store: fixture.storePath).sync(apply: false)
        #expect(recheck.plan.userChanges.map(\.email) == [])
    }

    @Test("a group change plans exactly the members it added or removed, through nested groups; the store equals a full sync's", arguments: StoreKind.allCases)
    func groupChanges(store: StoreKind) throws {
        let fixture = try IncrementalFixture("affected-groups", users: 200, store: store)
        defer { fixture.slapd.stop() }
        try fixture.sync()
        // u0005 moves from engineering to sales, u0150 joins sales, u0100's title changes; a new
        // group holding u0030 and u0031 becomes a member of engineering (nested).
        try fixture.slapd.modify("""
            dn: cn=engineering,ou=groups,dc=example,dc=com
            changetype: modify
            delete: member
            member: \(dn("u0005"))

            dn: cn=sales,ou=groups,dc=example,dc=com
            changetype: modify
            add: member
            member: \(dn("u0005"))
            member: \(dn("u0150"))

            dn: uid=u0100,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Head of Testing

            dn: cn=platform,ou=groups,dc=example,dc=com
            changetype: add
            objectClass: groupOfNames
            cn: platform
            member: \(dn("u0030"))
            member: \(dn("u0031"))

            dn: cn=engineering,ou=groups,dc=example,dc=com
            changetype: modify
            add: member
            member: cn=platform,ou=groups,dc=example,dc=com
            """)
        let outcome = try fixture.sync()
        #expect(outcome.method == .contentSync)
        #expect(outcome.planningReason == nil)
        #expect(outcome.affectedDNs == ["u0005", "u0030", "u0031", "u0100", "u0150"].map(dn))
        #expect(outcome.plan.summary.update == 5)
        #expect(outcome.plan.summary.total == 200)
        #expect(outcome.plan.summary.unchanged == 195)
        #expect(try fixture.user(uid: "u0005")?.group == "Sales")
        #expect(try fixture.user(uid: "u0030")?.group == "Engineering")
        #expect(try fixture.user(uid: "u0150")?.group == "Sales")
        #expect(try fixture.user(uid: "u0100")?.title == "Head of Testing")
        try expectSameAsFullSync(fixture)

        // A deletion and a new entry: the new one is created, the gone one disabled.
        try fixture.slapd.modify("""
            dn: uid=u0040,ou=people,dc=example,dc=com
            changetype: delete

            dn: uid=n0001,ou=people,dc=example,dc=com
            changetype: add
            objectClass: inetOrgPerson
            uid: n0001
            cn: New Hire
            givenName: New
            sn: Hire
            mail: n0001@example.com
            """)
        let next = try fixture.sync()
        #expect(next.planningReason == nil)
        #expect(next.affectedDNs == [dn("n0001"), dn("u0040")])
        #expect(next.plan.summary.create == 1)
        #expect(next.plan.summary.disable == 1)
        #expect(next.plan.summary.total == 200)
        #expect(try fixture.user(uid: "u0040")?.enabled == false)
        try expectNothingLeft(fixture)
    }

    @Test("portal-side edits are found through the edit log and overwritten; the log is empty after the apply", arguments: StoreKind.allCases)
    func portalEdits(store: StoreKind) throws {
        let fixture = try IncrementalFixture("affected-portal", users: 200, store: store)
        defer { fixture.slapd.stop() }
        try fixture.sync()
        try fixture.execute("UPDATE client_users SET title = 'Edited in the portal' WHERE email = 'u0050@example.com'")
        try fixture.execute("DELETE FROM client_users WHERE email = 'u0060@example.com'")
        try fixture.slapd.modify("""
            dn: uid=u0100,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Head of Testing
            """)
        let outcome = try fixture.sync()
        #expect(outcome.planningReason == nil)
        #expect(outcome.affectedDNs == ["u0050", "u0060", "u0100"].map(dn))
        #expect(outcome.plan.summary.create == 1)
        #expect(outcome.plan.summary.update == 2)
        #expect(try fixture.user(uid: "u0050")?.title == "Engineer 1")
        #expect(try fixture.user(uid: "u0060")?.enabled == true)
        #expect(try fixture.value("SELECT COUNT(*) FROM store_touches") == 0)
        try expectSameAsFullSync(fixture)

        // An edit with no directory change at all is planned the same way.
        try fixture.execute("UPDATE client_users SET title = 'Again' WHERE email = 'u0070@example.com'")
        let again = try fixture.sync()
        #expect(again.affectedDNs == [dn("u0070")])
        #expect(try fixture.user(uid: "u0070")?.title == "Engineer 0")
    }

    @Test("the guards give the same verdicts as the plan of every user: max_disable refuses both, then --max-disable applies", arguments: StoreKind.allCases)
    func guardsMatchFullPlan(store: StoreKind) throws {
        let fixture = try IncrementalFixture("affected-guards", users: 200, store: store)
        defer { fixture.slapd.stop() }
        try fixture.sync()
        let gone = (101...111).map { String(format: "u%04d", $0) }
        try fixture.slapd.modify(gone.map { "dn: \(dn($0))\nchangetype: delete\n" }.joined(separator: "\n"))
        let affected = try fixture.sync(apply: false)
        let full = try FullSync(fixture, store: fixture.storePath).sync(apply: false)
        #expect(affected.planningReason == nil)
        #expect(affected.affectedDNs == gone.map(dn))
        #expect(affected.plan.guardViolations.map(\.guardName) == ["max_disable"])
        #expect(affected.plan.guardViolations == full.plan.guardViolations)
        #expect(affected.plan.userChanges.map(\.email) == full.plan.userChanges.map(\.email))
        #expect(affected.plan.summary.line == full.plan.summary.line)
        #expect(throws: SyncError.self) { try fixture.sync() }
        #expect(try fixture.value("SELECT COUNT(*) FROM client_users WHERE NOT enabled") == 0)
        let forced = try fixture.sync(overrides: GuardOverrides(maxDisable: Threshold(parsing: "11")!))
        #expect(forced.plan.summary.disable == 11)
        try expectNothingLeft(fixture)
    }

    @Test("an email shared with an entry no change affects makes the run plan every user, as the full plan decides such ties", arguments: StoreKind.allCases)
    func sharedEmailPlansEveryone(store: StoreKind) throws {
        let fixture = try IncrementalFixture("affected-email", users: 200, store: store)
        defer { fixture.slapd.stop() }
        try fixture.sync()
        try fixture.slapd.modify("""
            dn: uid=u0100,ou=people,dc=example,dc=com
            changetype: modify
            replace: mail
            mail: u0101@example.com
            """)
        let outcome = try fixture.sync()
        #expect(outcome.affectedDNs == nil)
        #expect(outcome.planningReason?.contains("u0101@example.com") == true)
        try expectNothingLeft(fixture)
    }
}
