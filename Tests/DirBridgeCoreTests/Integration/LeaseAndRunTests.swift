import DirBridgeCore
import Foundation
import GRDB
import Testing

/// A dirbridge process started in the background.
final class BackgroundDirbridge {
    let process = Process()
    private let out = Pipe()
    private let err = Pipe()

    init(_ arguments: [String], environment: [String: String]) throws {
        process.executableURL = try #require(dirbridgeBinary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drained as it comes: a child writing more than a pipe holds must not block until wait().
        for (pipe, index) in [(out, 0), (err, 1)] {
            let box = outputs
            Thread.detachNewThread {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                box.set(index, data)
            }
        }
    }

    private let outputs = Outputs()

    /// Standard output and error, each complete once its pipe reached end of file.
    private final class Outputs: @unchecked Sendable {
        private let condition = NSCondition()
        private var data: [Int: Data] = [:]

        func set(_ index: Int, _ value: Data) {
            condition.lock()
            data[index] = value
            condition.broadcast()
            condition.unlock()
        }

        func text(_ index: Int) -> String {
            condition.lock()
            defer { condition.unlock() }
            while data[index] == nil { condition.wait() }
            return String(decoding: data[index]!, as: UTF8.self)
        }
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits up to `seconds` for the process to end; its status and output, or nil if still running.
    func wait(seconds: Double) -> (status: Int32, stdout: String, stderr: String)? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        guard !process.isRunning else { return nil }
        return (process.terminationStatus, outputs.text(0), outputs.text(1))
    }

    deinit { if process.isRunning { kill(pid, SIGKILL) } }
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return try condition()
}

@Suite("One run at a time, and a clean stop", .serialized)
struct LeaseAndRunTests {
    /// The pid holding the lease of the fixture's client, if any.
    private func leasePID(_ fixture: IncrementalFixture) throws -> Int32? {
        guard FileManager.default.fileExists(atPath: fixture.storePath) else { return nil }
        return try fixture.value("SELECT pid FROM leases")
    }

    private func slapdPID(_ fixture: IncrementalFixture) throws -> Int32 {
        try #require(fixture.slapd.env["PID"].flatMap { Int32($0) })
    }

    @Test("two sync --apply at once: one proceeds, the other exits 5 naming the holder; a SIGKILLed holder's lease is taken over")
    func concurrentApplies() throws {
        let fixture = try IncrementalFixture("lease", users: 12)
        defer { fixture.slapd.stop() }
        let slapd = try slapdPID(fixture)
        let environment = ["DIRBRIDGE_URL": fixture.slapd.ldapURL]
        // The server stays frozen while the second run starts and is refused, however long that
        // takes on a busy machine: the directory timeout must not run out in that window (the
        // fixture's 10 s would fail the first apply, or leave it finishing late).
        let mappingPath = try makeTemporaryDirectory("lease-mapping").appendingPathComponent("incremental.yaml").path
        try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
            .replacingOccurrences(of: "timeout: 10s", with: "timeout: 300s")
            .write(toFile: mappingPath, atomically: true, encoding: .utf8)
        let apply = ["sync", mappingPath, "--store", fixture.storePath, "--apply"]

        // A frozen server keeps the first apply in its read, holding the lease.
        kill(slapd, SIGSTOP)
        defer { kill(slapd, SIGCONT) }
        let first = try BackgroundDirbridge(apply, environment: environment)
        #expect(eventually { (try? leasePID(fixture)) == first.pid })
        let second = try fixture.cli(apply)
        #expect(second.status == 5)
        #expect(second.stderr.contains("another sync of client Incremental Corp is running"))
        #expect(second.stderr.contains("`dirbridge sync --apply` (pid \(first.pid) on "))
        kill(slapd, SIGCONT)
        // Waits for the outcome; the bound only keeps a hung run from hanging the suite.
        let finished = try #require(first.wait(seconds: 300))
        #expect(finished.status == 0, "\(finished.stderr)")
        #expect(try fixture.value("SELECT count(*) FROM client_users") == 12)
        #expect(try leasePID(fixture) == nil)

        // A holder killed with SIGKILL leaves its lease row behind; the next apply takes it over.
        kill(slapd, SIGSTOP)
        let killed = try BackgroundDirbridge(apply, environment: environment)
        #expect(eventually { (try? leasePID(fixture)) == killed.pid })
        kill(killed.pid, SIGKILL)
        _ = killed.wait(seconds: 5)
        kill(slapd, SIGCONT)
        #expect(try leasePID(fixture) == killed.pid)
        let next = try fixture.cli(apply)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try leasePID(fixture) == nil)
    }

    @Test("a lease from another host is refused until it expires")
    func leaseExpiry() throws {
        let directory = try makeTemporaryDirectory("lease-expiry")
        let store = try PortalStore(path: directory.appendingPathComponent("portal.sqlite").path)
        let queue = try testDatabase(store.path)
        func plant(expires: Date) throws {
            try queue.write { db in
                try db.execute(sql: "DELETE FROM leases")
                try db.execute(sql: """
                    INSERT INTO leases (client, holder, token, pid, host, acquired_at, expires_at)
                    VALUES ('Acme', 'run', 'other-token', 4242, 'some-other-host', ?, ?)
                    """, arguments: [StoreTime.text(Date()), StoreTime.text(expires)])
            }
        }
        try plant(expires: Date().addingTimeInterval(600))
        let refusal = try #require(throws: LeaseError.self) { try store.acquireLease(client: "acme", holder: "sync --apply") }
        #expect(refusal.holder?.host == "some-other-host")
        #expect(refusal.kind == .refused)

        try plant(expires: Date().addingTimeInterval(-1))
        let lease = try store.acquireLease(client: "Acme", holder: "sync --apply")
        #expect(try store.leaseHolder(client: "Acme")?.pid == getpid())
        lease.release()
        #expect(try store.leaseHolder(client: "Acme") == nil)
    }

    @Test("run gets SIGTERM in the middle of a read: exits 0, store unchanged, lease released")
    func runStopsCleanly() throws {
        let fixture = try IncrementalFixture("run-stop", users: 12)
        defer { fixture.slapd.stop() }
        let slapd = try slapdPID(fixture)
        try fixture.sync()
        try fixture.slapd.modify("""
            dn: uid=u0003,ou=people,dc=example,dc=com
            changetype: modify
            replace: title
            title: Not Yet Synced

            """)
        let before = try fixture.portalContents()
        let runsBefore: Int? = try fixture.value("SELECT count(*) FROM sync_runs")

        kill(slapd, SIGSTOP)
        defer { kill(slapd, SIGCONT) }
        let run = try BackgroundDirbridge(
            ["run", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--every", "1h"],
            environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
        #expect(eventually { (try? leasePID(fixture)) == run.pid })
        kill(run.pid, SIGTERM)
        let ended = try #require(run.wait(seconds: 8))
        #expect(ended.status == 0, "\(ended.stderr)")
        #expect(ended.stderr.contains("stopped by a signal"))
        #expect(try leasePID(fixture) == nil)
        #expect(try fixture.portalContents() == before)
        #expect(try fixture.value("SELECT count(*) FROM sync_runs") == runsBefore)

        // Once the server answers again, a run applies the change and logs one line for it.
        kill(slapd, SIGCONT)
        let once = try fixture.cli(["run", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--every", "1h", "--runs", "1"])
        #expect(once.status == 0, "\(once.stderr)")
        #expect(once.stderr.contains("run 1: applied, incremental read (content-sync), 1 entries read; 0 to create, 1 to update"))
        // --runs 1: the only run is the last; no next run is announced.
        #expect(once.stderr.contains("last run") && !once.stderr.contains("next run at"))
        #expect(try fixture.user(uid: "u0003")?.title == "Not Yet Synced")
    }

    @Test("sync --apply gets SIGINT or SIGTERM while reading: 'interrupted: nothing applied', exit 130 or 143, store and lease untouched")
    func syncInterrupted() throws {
        let fixture = try IncrementalFixture("sync-interrupt", users: 12)
        defer { fixture.slapd.stop() }
        let slapd = try slapdPID(fixture)
        // As above: a frozen server must not time the read out, however loaded the machine.
        let mappingPath = try makeTemporaryDirectory("interrupt-mapping").appendingPathComponent("incremental.yaml").path
        try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
            .replacingOccurrences(of: "timeout: 10s", with: "timeout: 300s")
            .write(toFile: mappingPath, atomically: true, encoding: .utf8)
        for (signal, status, name) in [(SIGINT, Int32(130), "SIGINT"), (SIGTERM, Int32(143), "SIGTERM")] {
            kill(slapd, SIGSTOP)
            let sync = try BackgroundDirbridge(["sync", mappingPath, "--store", fixture.storePath, "--apply"],
                                               environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
            // The lease is taken after the signal handlers are in place, and before the read.
            #expect(eventually(seconds: 120) { (try? leasePID(fixture)) == sync.pid })
            kill(sync.pid, signal)
            kill(slapd, SIGCONT)
            let ended = try #require(sync.wait(seconds: 300))
            #expect(ended.status == status, "\(ended.stderr)")
            #expect(ended.stderr.contains("\(name): stopping before anything is written"), "\(ended.stderr)")
            #expect(ended.stderr.contains("dirbridge: interrupted: nothing applied"), "\(ended.stderr)")
            #expect(try fixture.value("SELECT count(*) FROM client_users") == 0)
            #expect(try fixture.value("SELECT count(*) FROM sync_runs") == 0)
            #expect(try leasePID(fixture) == nil)
        }
        // Uninterrupted, the same command applies.
        let apply = try fixture.cli(["sync", mappingPath, "--store", fixture.storePath, "--apply", "--quiet"])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(try fixture.value("SELECT count(*) FROM client_users") == 12)
    }
}

@Suite("run with many clients in one process")
struct ManyClientsRunTests {
    @Test("run FOLDER: each client on its own schedule and lease; a failing client never stops the others; one log line per client run")
    func manyClients() throws {
        let fixture = try EngineFixture("many-clients")
        defer { fixture.slapd.stop() }
        let folder = try makeTemporaryDirectory("clients.d")
        let text = try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
        for name in ["Alpha", "Beta"] {
            try text.replacingOccurrences(of: "client: Engine Corp", with: "client: \(name)")
                .write(to: folder.appendingPathComponent("\(name.lowercased()).yaml"), atomically: true, encoding: .utf8)
        }
        // Gamma's password variable is not set: every one of its runs fails.
        try text.replacingOccurrences(of: "client: Engine Corp", with: "client: Gamma")
            .replacingOccurrences(of: "bind_password_env: DIRBRIDGE_TEST_BIND_PASSWORD", with: "bind_password_env: DIRBRIDGE_UNSET_PASSWORD")
            .write(to: folder.appendingPathComponent("gamma.yaml"), atomically: true, encoding: .utf8)
        try "not a mapping".write(to: folder.appendingPathComponent("README.txt"), atomically: true, encoding: .utf8)

        let result = try fixture.cli(["run", folder.path, "--store", fixture.storePath, "--apply", "--every", "1s", "--runs", "2", "--concurrency", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        for client in ["Alpha", "Beta"] {
            let runs: Int = try fixture.int("""
                SELECT count(*) FROM sync_runs r JOIN clients c ON c.id = r.client_id WHERE c.name = ? AND r.status = 'succeeded' AND r.mode = 'apply'
                """, [client])
            #expect(runs == 2, "\(client)\n\(result.stderr)")
            #expect(try fixture.int("SELECT count(*) FROM client_users u JOIN clients c ON c.id = u.client_id WHERE c.name = ?", [client]) == 12)
        }
        #expect(try fixture.int("SELECT count(*) FROM sync_runs WHERE status = 'failed' AND mapping LIKE '%gamma.yaml'") == 2, "\(result.stderr)")
        #expect(try fixture.int("SELECT count(*) FROM clients WHERE name = 'Gamma'") == 0)
        let lines = result.stderr.split(separator: "\n")
        for client in ["Alpha", "Beta"] {
            #expect(lines.filter { $0.contains("client=\(client)") && $0.contains("run 1: applied") }.count == 1, "\(result.stderr)")
            #expect(lines.filter { $0.contains("client=\(client)") && $0.contains("run 2: applied") }.count == 1, "\(result.stderr)")
        }
        #expect(lines.filter { $0.contains("client=Gamma") && $0.contains(": failed after") }.count == 2, "\(result.stderr)")
        #expect(try fixture.int("SELECT count(*) FROM leases") == 0)

        // Two mappings of one client in one process are refused before anything runs.
        try text.replacingOccurrences(of: "client: Engine Corp", with: "client: alpha")
            .write(to: folder.appendingPathComponent("alpha-again.yaml"), atomically: true, encoding: .utf8)
        let twice = try fixture.cli(["run", folder.path, "--store", fixture.storePath, "--every", "1s", "--runs", "1"])
        #expect(twice.status == 1)
        #expect(twice.stderr.lowercased().contains("both sync client alpha: one mapping per client"), "\(twice.stderr)")
    }
}
