import DirBridgeCore
import Foundation
import GRDB
import Testing

/// `dirbridge run --watch --apply` on the incremental fixture, in the background.
private func startWatch(_ fixture: IncrementalFixture, extra: [String] = []) throws -> BackgroundDirbridge {
    try BackgroundDirbridge(
        ["run", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--watch", "--every", "1h", "--batch-window", "1s"] + extra,
        environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
}

private func replaceTitle(_ uid: String, _ title: String) -> String {
    "dn: uid=\(uid),ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: \(title)\n"
}

@Suite("run --watch: changes the server pushes reach the store (real slapd, RFC 4533 refreshAndPersist)", .serialized)
struct WatchTests {
    @Test("an attribute change, a disable, a delete, a move out of the base and a group-only change each arrive; after a restart of the server, changes made during the outage and after it arrive once")
    func pushedChangesArrive() throws {
        let fixture = try IncrementalFixture("watch", users: 40)
        defer { fixture.slapd.stop() }
        let run = try startWatch(fixture)
        #expect(eventually(seconds: 30) { (try? fixture.value("SELECT COUNT(*) FROM client_users") as Int?) == 40 })

        try fixture.slapd.modify(replaceTitle("u0001", "Watched"))
        #expect(eventually(seconds: 30) { (try? fixture.user(uid: "u0001")?.title) == "Watched" })

        // Out of the filter (a contractor now), deleted, moved out of the base: each disables its user.
        try fixture.slapd.modify("""
            dn: uid=u0002,ou=people,dc=example,dc=com
            changetype: modify
            add: employeeType
            employeeType: contractor
            """)
        #expect(eventually(seconds: 30) { (try? fixture.user(uid: "u0002")?.enabled) == false })
        try fixture.slapd.modify("dn: uid=u0003,ou=people,dc=example,dc=com\nchangetype: delete\n")
        #expect(eventually(seconds: 30) { (try? fixture.user(uid: "u0003")?.enabled) == false })
        try fixture.slapd.modify("""
            dn: uid=u0004,ou=people,dc=example,dc=com
            changetype: modrdn
            newrdn: uid=u0004
            deleteoldrdn: 1
            newsuperior: ou=alumni,dc=example,dc=com
            """)
        #expect(eventually(seconds: 30) { (try? fixture.user(uid: "u0004")?.enabled) == false })

        // Only the groups change: u0005 moves from engineering to sales.
        try fixture.slapd.modify("""
            dn: cn=engineering,ou=groups,dc=example,dc=com
            changetype: modify
            delete: member
            member: uid=u0005,ou=people,dc=example,dc=com

            dn: cn=sales,ou=groups,dc=example,dc=com
            changetype: modify
            add: member
            member: uid=u0005,ou=people,dc=example,dc=com
            """)
        #expect(eventually(seconds: 30) { (try? fixture.user(uid: "u0005")?.group) == "Sales" })

        // The server restarts: a change made as it comes back (the watch is still reconnecting)
        // and one made after arrive, each applied once.
        try fixture.slapd.restart()
        try fixture.slapd.modify(replaceTitle("u0006", "During Outage"))
        #expect(eventually(seconds: 40) { (try? fixture.user(uid: "u0006")?.title) == "During Outage" })
        try fixture.slapd.modify(replaceTitle("u0007", "After Restart"))
        #expect(eventually(seconds: 40) { (try? fixture.user(uid: "u0007")?.title) == "After Restart" })
        for (uid, title) in [("u0006", "During Outage"), ("u0007", "After Restart"), ("u0001", "Watched")] {
            let applied: Int? = try fixture.value("""
                SELECT COUNT(*) FROM history h JOIN client_users u ON u.id = h.entity_id AND h.entity = 'user'
                WHERE u.email = ? AND h.changes LIKE ?
                """, ["\(uid)@example.com", "%\(title)%"])
            #expect(applied == 1, "\(uid): \(title) applied \(applied ?? 0) times")
        }

        kill(run.pid, SIGTERM)
        let ended = try #require(run.wait(seconds: 20))
        #expect(ended.status == 0, "\(ended.stderr)")
        #expect(ended.stderr.contains("watching for changes"))
        #expect(ended.stderr.contains("pushed, lag"))
        #expect(ended.stderr.contains("the watch connection failed"))
    }

    @Test("without a session log on the server (its refreshes answer with a present phase) an attribute change and a delete still arrive")
    func withoutSessionLog() throws {
        let fixture = try IncrementalFixture("watch-nolog", users: 40, sessionlog: false)
        defer { fixture.slapd.stop() }
        let run = try startWatch(fixture)
        #expect(eventually(seconds: 30) { (try? fixture.value("SELECT COUNT(*) FROM client_users") as Int?) == 40 })
        try fixture.slapd.modify(replaceTitle("u0010", "No Session Log"))
        #expect(eventually(seconds: 30) { (try? fixture.user(uid: "u0010")?.title) == "No Session Log" })
        try fixture.slapd.modify("dn: uid=u0011,ou=people,dc=example,dc=com\nchangetype: delete\n")
        #expect(eventually(seconds: 30) { (try? fixture.user(uid: "u0011")?.enabled) == false })
        kill(run.pid, SIGTERM)
        let ended = try #require(run.wait(seconds: 20))
        #expect(ended.status == 0, "\(ended.stderr)")
    }

    @Test("a mass deletion above max_disable is refused and logged, and the watch goes on")
    func refusalKeepsWatching() throws {
        let fixture = try IncrementalFixture("watch-refusal", users: 40)
        defer { fixture.slapd.stop() }
        let run = try startWatch(fixture)
        #expect(eventually(seconds: 30) { (try? fixture.value("SELECT COUNT(*) FROM client_users") as Int?) == 40 })
        try fixture.slapd.modify((21...31).map { String(format: "dn: uid=u%04d,ou=people,dc=example,dc=com\nchangetype: delete\n", $0) }.joined(separator: "\n"))
        #expect(eventually(seconds: 30) { (try? fixture.value("SELECT COUNT(*) FROM sync_runs WHERE status = 'refused'") as Int?) ?? 0 >= 1 })
        #expect(try fixture.value("SELECT COUNT(*) FROM client_users WHERE enabled = 0") == 0)
        let refused: Int = try fixture.value("SELECT COUNT(*) FROM sync_runs WHERE status = 'refused'") ?? 0
        // The watch goes on: the next pushed change starts another run (refused again while the deletions stand).
        try fixture.slapd.modify(replaceTitle("u0001", "Still Watching"))
        #expect(eventually(seconds: 30) { (try? fixture.value("SELECT COUNT(*) FROM sync_runs WHERE status = 'refused'") as Int?) ?? 0 > refused })
        #expect(run.process.isRunning)
        kill(run.pid, SIGTERM)
        let ended = try #require(run.wait(seconds: 20))
        #expect(ended.status == 0, "\(ended.stderr)")
        #expect(ended.stderr.contains("max_disable"))
    }
}
