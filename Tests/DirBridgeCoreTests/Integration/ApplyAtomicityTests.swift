import Foundation
import GRDB
import PostgresNIO
@testable import DirBridgeCore
import Testing

@Suite("An apply killed half-way")
struct ApplyAtomicityTests {
    @Test("SIGKILL in the middle of a large apply leaves all of the plan or none of it, and a sound store", arguments: StoreKind.allCases)
    func killedApply(kind: StoreKind) throws {
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
        let store = try kind.newLocation(in: work, label: "atomic")
        struct Store: PortalStoreReading { let storePath: String }
        let reader = Store(storePath: store)

        let process = Process()
        process.executableURL = try #require(dirbridgeBinary)
        process.arguments = ["sync", mappingPath, "--store", store, "--apply", "--quiet"]
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["DIRBRIDGE_URL": slapd.ldapURL, "DIRBRIDGE_TEST_BIND_PASSWORD": "sync-secret"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Kill it once the apply transaction has started writing: on SQLite the WAL grows past
        // 1 MB; on PostgreSQL its connection is inserting history rows (after 1,000 users).
        let wal = store + "-wal"
        let watcher = kind == .postgres ? try PostgresStore(url: store) : nil
        var killedWhileWriting = false
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline {
            let writing: Bool
            if let watcher {
                writing = try watcher.session.exclusive { db in
                    try db.row("""
                        SELECT count(*) AS writing FROM pg_stat_activity
                        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
                          AND query LIKE 'INSERT INTO history%'
                        """)?.int("writing") ?? 0
                } > 0
            } else {
                writing = ((try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0) > 1_000_000
            }
            if writing {
                kill(process.processIdentifier, SIGKILL)
                killedWhileWriting = true
                break
            }
            usleep(2_000)
        }
        process.waitUntilExit()
        #expect(killedWhileWriting, "the apply finished before it could be killed; the test proved nothing")
        #expect(process.terminationReason == .uncaughtSignal)

        if kind == .sqlite {
            let integrity = try testDatabase(store).read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
            #expect(integrity == "ok")
        } else {
            // The server has rolled the killed connection's transaction back once it is gone.
            let gone = Date().addingTimeInterval(30)
            while try reader.int("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL") > 0 && Date() < gone {
                usleep(20_000)
            }
        }
        let (users, history, applied, clients) = (try reader.int("SELECT count(*) FROM client_users"),
                                                  try reader.int("SELECT count(*) FROM history WHERE entity = 'user'"),
                                                  try reader.int("SELECT count(*) FROM sync_runs WHERE mode = 'apply'"),
                                                  try reader.int("SELECT count(*) FROM clients"))
        // A first apply creates its client in the same transaction: none of it means no client either.
        #expect((users == 0 && history == 0 && applied == 0 && clients == 0) || (users == count && history == count && applied == 1 && clients == 1),
                "users \(users), history \(history), apply runs \(applied), clients \(clients)")
        // The interrupted sync can simply be run again.
        let rerun = try runDirbridge(["sync", mappingPath, "--store", store, "--apply", "--quiet"],
                                     environment: ["DIRBRIDGE_URL": slapd.ldapURL, "DIRBRIDGE_TEST_BIND_PASSWORD": "sync-secret"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(try reader.int("SELECT count(*) FROM client_users") == count)
    }
}
