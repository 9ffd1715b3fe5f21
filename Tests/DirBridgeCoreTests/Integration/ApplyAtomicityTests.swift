import DirBridgeCore
import Foundation
import GRDB
import Testing

@Suite("An apply killed half-way")
struct ApplyAtomicityTests {
    @Test("SIGKILL in the middle of a large apply leaves all of the plan or none of it, and a sound store")
    func killedApply() throws {
        let work = try makeTemporaryDirectory("atomic")
        let count = 30_000
        var ldif = "dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n"
            + "dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n"
            + "dn: cn=portal-admins,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: portal-admins\nmember: uid=p1,ou=people,dc=example,dc=com\n\n"
        ldif.reserveCapacity(count * 200)
        for index in 1...count {
            ldif += "dn: uid=p\(index),ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: p\(index)\ncn: Person \(index)\ngivenName: Person\nsn: Number\(index)\nmail: p\(index)@example.com\ntitle: Title \(index % 17)\n\n"
        }
        let bulk = work.appendingPathComponent("bulk.ldif")
        try Data(ldif.utf8).write(to: bulk)
        let slapd = try TestSlapd(label: "atomic", bulk: [bulk])
        defer { slapd.stop() }
        var mapping = try String(contentsOf: fixtureURL("mappings/engine.yaml"), encoding: .utf8)
        mapping = mapping.replacingOccurrences(of: "page_size: 5", with: "page_size: 1000")
        let mappingPath = work.appendingPathComponent("engine.yaml").path
        try mapping.write(toFile: mappingPath, atomically: true, encoding: .utf8)
        let store = work.appendingPathComponent("portal.sqlite").path

        let process = Process()
        process.executableURL = try #require(dirbridgeBinary)
        process.arguments = ["sync", mappingPath, "--store", store, "--apply", "--quiet"]
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["DIRBRIDGE_URL": slapd.ldapURL, "DIRBRIDGE_TEST_BIND_PASSWORD": "sync-secret"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Kill it once the apply transaction has started writing (the WAL grows past 1 MB).
        let wal = store + "-wal"
        var killedWhileWriting = false
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline {
            let size = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
            if size > 1_000_000 {
                kill(process.processIdentifier, SIGKILL)
                killedWhileWriting = true
                break
            }
            usleep(2_000)
        }
        process.waitUntilExit()
        #expect(killedWhileWriting, "the apply finished before it could be killed; the test proved nothing")
        #expect(process.terminationReason == .uncaughtSignal)

        let database = try DatabaseQueue(path: store)
        let integrity = try database.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        #expect(integrity == "ok")
        let (users, history, applied, clients) = try database.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM client_users") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM history WHERE entity = 'user'") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_runs WHERE mode = 'apply'") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM clients") ?? -1)
        }
        // A first apply creates its client in the same transaction: none of it means no client either.
        #expect((users == 0 && history == 0 && applied == 0 && clients == 0) || (users == count && history == count && applied == 1 && clients == 1),
                "users \(users), history \(history), apply runs \(applied), clients \(clients)")
        // The interrupted sync can simply be run again.
        let rerun = try runDirbridge(["sync", mappingPath, "--store", store, "--apply", "--quiet"],
                                     environment: ["DIRBRIDGE_URL": slapd.ldapURL, "DIRBRIDGE_TEST_BIND_PASSWORD": "sync-secret"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(try database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM client_users") } == count)
    }
}
