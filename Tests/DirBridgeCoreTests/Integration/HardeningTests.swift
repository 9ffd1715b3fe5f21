import DirBridgeCore
import Foundation
import GRDB
import Testing

/// The permission bits of the file at `path`, or nil when there is none.
func fileMode(_ path: String) -> mode_t? {
    var info = stat()
    return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
}

@Suite("Hardening: concurrent first runs, unusable emails, private files, safe plan and report files")
struct HardeningTests {
    @Test("two first runs of two clients into one store that does not exist yet, started together: both exit 0, both clients there")
    func concurrentFirstRuns() throws {
        let fixture = try EngineFixture("first-runs")
        let folder = URL(fileURLWithPath: fixture.mappingPath).deletingLastPathComponent()
        let other = folder.appendingPathComponent("other.yaml").path
        try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
            .replacingOccurrences(of: "client: Engine Corp", with: "client: Other Corp")
            .write(toFile: other, atomically: true, encoding: .utf8)
        for round in 1...4 {
            let store = folder.appendingPathComponent("round-\(round).sqlite").path
            let runs = try [fixture.mappingPath, other].map { mapping in
                try BackgroundDirbridge(["sync", mapping, "--store", store, "--apply", "--quiet"], environment: fixture.environment)
            }
            for run in runs {
                // Waits for the outcome; the bound only stops a hung run from hanging the suite.
                let finished = try #require(run.wait(seconds: 300))
                #expect(finished.status == 0, "round \(round): \(finished.stderr)")
            }
            let counts = try testDatabase(store).read { db in
                try Row.fetchAll(db, sql: """
                    SELECT c.name, count(u.id) AS users FROM clients c LEFT JOIN client_users u ON u.client_id = c.id
                    GROUP BY c.name ORDER BY c.name
                    """).map { "\($0["name"] as String): \($0["users"] as Int)" }
            }
            #expect(counts == ["Engine Corp: 12", "Other Corp: 12"], "round \(round)")
        }
    }

    @Test("an entry whose mail is not an email is reported by DN and skipped, like one without mail")
    func unusableEmail() throws {
        let fixture = try EngineFixture("unusable-email")
        try fixture.slapd.modify("dn: uid=e2,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: mail\nmail: not-an-email\n")
        let outcome = try fixture.sync()
        #expect(outcome.plan.skipped.map(\.dn).sorted() == ["uid=e2,ou=people,dc=example,dc=com", "uid=nomail,ou=people,dc=example,dc=com"])
        let reason = try #require(outcome.plan.skipped.first { $0.dn.hasPrefix("uid=e2,") }?.reason)
        #expect(reason.contains("no usable email"))
        #expect(try fixture.int("SELECT count(*) FROM client_users") == 11)
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE email = 'not-an-email'") == 0)
    }

    @Test("a new store and its -wal and -shm are 0600; a store whose mode the admin widened keeps it")
    func storeModes() throws {
        let folder = try makeTemporaryDirectory("store-modes")
        let path = folder.appendingPathComponent("portal.sqlite").path
        let store = try PortalStore(path: path)
        _ = try store.ensureClient(ClientSpec(name: "Acme Corp"))
        #expect(fileMode(path) == 0o600)
        #expect(fileMode(path + "-wal") == 0o600)
        #expect(fileMode(path + "-shm") == 0o600)

        let widened = folder.appendingPathComponent("widened.sqlite").path
        _ = try PortalStore(path: widened)
        #expect(chmod(widened, 0o640) == 0)
        let reopened = try PortalStore(path: widened)
        _ = try reopened.ensureClient(ClientSpec(name: "Acme Corp"))
        #expect(fileMode(widened) == 0o640)
    }

    @Test("PrivateFile: new files 0600, a replaced file keeps its mode, no temporary file left behind")
    func privateFileModes() throws {
        let folder = try makeTemporaryDirectory("private-file")
        let path = folder.appendingPathComponent("plan.json").path
        try PrivateFile.write(Data("one".utf8), to: path)
        #expect(fileMode(path) == 0o600)
        #expect(chmod(path, 0o644) == 0)
        try PrivateFile.write(Data("two".utf8), to: path)
        #expect(fileMode(path) == 0o644)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["plan.json"])
    }

    @Test("--plan-out and --report: 0600, never over the mapping or a foreign file (unless --overwrite), a replaced plan keeps its mode")
    func planAndReportFiles() throws {
        let fixture = try EngineFixture("plan-files")
        let folder = URL(fileURLWithPath: fixture.mappingPath).deletingLastPathComponent()
        let mappingText = try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
        func sync(_ extra: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--quiet"] + extra)
        }
        let plan = folder.appendingPathComponent("plan.json").path
        let report = folder.appendingPathComponent("plan.html").path
        let saved = try sync(["--plan-out", plan, "--report", report])
        #expect(saved.status == 0, "\(saved.stderr)")
        #expect(fileMode(plan) == 0o600)
        #expect(fileMode(report) == 0o600)

        // A plan or report there already is replaced, keeping the mode the admin gave it.
        #expect(chmod(plan, 0o640) == 0)
        let again = try sync(["--plan-out", plan, "--report", report])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(fileMode(plan) == 0o640)
        #expect(try PlanDocument.read(path: plan).client.name == "Engine Corp")

        // Never the mapping itself, not even with --overwrite; the mapping is untouched.
        for option in ["--plan-out", "--report"] {
            for extra in [[], ["--overwrite"]] {
                let refused = try sync([option, fixture.mappingPath] + extra)
                #expect(refused.status == 1, "\(option) \(extra): \(refused.stdout) \(refused.stderr)")
                #expect(refused.stderr.contains("is the file being read"))
                #expect(try String(contentsOfFile: fixture.mappingPath, encoding: .utf8) == mappingText)
            }
        }
        // Nor the same file for both.
        let same = try sync(["--plan-out", plan, "--report", plan])
        #expect(same.status == 1)
        #expect(same.stderr.contains("name the same file"))

        // A file that is not a dirbridge plan or report only with --overwrite.
        let notes = folder.appendingPathComponent("notes.txt").path
        try "my notes\n".write(toFile: notes, atomically: true, encoding: .utf8)
        let foreign = try sync(["--plan-out", notes])
        #expect(foreign.status == 1)
        #expect(foreign.stderr.contains("is not a dirbridge plan or report"))
        #expect(try String(contentsOfFile: notes, encoding: .utf8) == "my notes\n")
        let forced = try sync(["--plan-out", notes, "--overwrite"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try PlanDocument.read(path: notes).client.name == "Engine Corp")

        // apply --dry-run --report never writes over the plan it reads.
        let overPlan = try fixture.cli(["apply", plan, "--store", fixture.storePath, "--dry-run", "--report", plan])
        #expect(overPlan.status == 1)
        #expect(try PlanDocument.read(path: plan).client.name == "Engine Corp")

        // A mapping given to apply by mistake: the hint names another file for the plan.
        let mistaken = try fixture.cli(["apply", fixture.mappingPath, "--store", fixture.storePath])
        #expect(mistaken.status == 1)
        #expect(!mistaken.stderr.contains("--plan-out \(fixture.mappingPath)"))
        #expect(mistaken.stderr.contains("--plan-out plan.json"))
        #expect(try String(contentsOfFile: fixture.mappingPath, encoding: .utf8) == mappingText)

        // Written through a temporary file and a rename: none is left in the folder.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".dirbridge-") }.isEmpty)
    }
}
