import Foundation
import PostgresNIO
import Testing
@testable import DirBridgeCore

/// Several `dirbridge run` processes (workers) sharing one PostgreSQL store and the same
/// clients, on a real slapd and a real PostgreSQL server.
@Suite("Workers sharing a PostgreSQL store")
struct PostgresWorkersTests {
    static let every: TimeInterval = 4
    static let clients = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"]

    /// The engine fixture's slapd, a new PostgreSQL database, and a folder of six mappings.
    struct Workers {
        let fixture: EngineFixture
        let folder: URL

        init(_ label: String) throws {
            fixture = try EngineFixture(label, store: .postgres)
            folder = try makeTemporaryDirectory("\(label)-clients.d")
            let text = try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
            for name in PostgresWorkersTests.clients {
                try text.replacingOccurrences(of: "client: Engine Corp", with: "client: \(name)")
                    .write(to: folder.appendingPathComponent("\(name.lowercased()).yaml"), atomically: true, encoding: .utf8)
            }
        }

        /// Starts a worker: `run FOLDER --apply --every 3s --runs N` on the shared store.
        func start(runs: Int, log: String) throws -> Process {
            let process = Process()
            process.executableURL = try #require(dirbridgeBinary)
            process.arguments = ["run", folder.path, "--store", fixture.storePath, "--apply", "--every", "\(Int(PostgresWorkersTests.every))s",
                                 "--runs", "\(runs)", "--concurrency", "6"]
            process.environment = ProcessInfo.processInfo.environment.merging(fixture.environment) { $1 }
            FileManager.default.createFile(atPath: log, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            return process
        }

        /// Every succeeded apply: client, start, finish, worker.
        func runs() throws -> [(client: String, started: Date, finished: Date, worker: String)] {
            try fixture.rows("""
                SELECT c.name AS client, r.started_at AS started, r.finished_at AS finished, r.worker
                FROM sync_runs r JOIN clients c ON c.id = r.client_id
                WHERE r.mode = 'apply' AND r.status = 'succeeded' ORDER BY r.id
                """).map { row in
                (row["client"], try #require(StoreTime.date(row["started"])), try #require(StoreTime.date(row["finished"])), row["worker"])
            }
        }
    }

    /// Per client: the ticks of its runs are all different and follow each other without a gap,
    /// and no two of its runs overlap in time.
    static func checkOncePerTick(_ runs: [(client: String, started: Date, finished: Date, worker: String)], minimumTicks: Int) {
        for client in clients {
            let mine = runs.filter { $0.client == client }
            let ticks = mine.map { Int(SharedTicks.start(of: $0.started, every: every, client: client).timeIntervalSince1970 / every) }
            #expect(Set(ticks).count == ticks.count, "\(client) synced twice in one tick: \(mine)")
            #expect(ticks.count >= minimumTicks, "\(client): \(ticks.count) ticks")
            if let first = ticks.min(), let last = ticks.max() {
                #expect(last - first + 1 == Set(ticks).count, "\(client) missed a tick: \(ticks)")
            }
            let ordered = mine.sorted { $0.started < $1.started }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                // Whole-second start times: a run may start in the second its predecessor finished.
                #expect(later.started >= earlier.finished.addingTimeInterval(-1), "\(client): runs overlap: \(earlier) and \(later)")
            }
        }
    }

    @Test("two workers and six clients over three ticks: every client synced once per tick, by one worker at a time, the work shared")
    func twoWorkersShareTheClients() throws {
        let workers = try Workers("workers")
        defer { workers.fixture.slapd.stop() }
        let logs = [workers.folder.appendingPathComponent("a.log").path, workers.folder.appendingPathComponent("b.log").path]
        let a = try workers.start(runs: 3, log: logs[0])
        let b = try workers.start(runs: 3, log: logs[1])
        a.waitUntilExit()
        b.waitUntilExit()
        let log = try logs.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n")
        #expect(a.terminationStatus == 0 && b.terminationStatus == 0, "\(log)")
        let runs = try workers.runs()
        Self.checkOncePerTick(runs, minimumTicks: 3)
        // Both workers synced, and the ticks one of them left were synced by the other.
        #expect(Set(runs.map(\.worker)) == ["\(ProcessInfo.processInfo.hostName):\(a.processIdentifier)", "\(ProcessInfo.processInfo.hostName):\(b.processIdentifier)"], "\(log)")
        #expect(log.contains("skipped"), "\(log)")
        for client in Self.clients {
            #expect(try workers.fixture.int("SELECT count(*) FROM client_users u JOIN clients c ON c.id = u.client_id WHERE c.name = ?", [client]) == 12)
        }
        #expect(try workers.fixture.int("SELECT count(*) FROM leases") == 0)
        // The clients view says when each last ran and by which worker.
        let clients = try workers.fixture.cli(["clients", "--store", workers.fixture.storePath, "--json"])
        #expect(clients.status == 0, "\(clients.stderr)")
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(clients.stdout.utf8)) as? [[String: Any]])
        #expect(listed.count == 6 && listed.allSatisfy { ($0["last_run_worker"] as? String)?.hasPrefix(ProcessInfo.processInfo.hostName + ":") == true })
    }

    @Test("a worker killed with SIGKILL while it syncs: the other takes its clients over and keeps every tick")
    func killedWorkerIsTakenOver() throws {
        let workers = try Workers("killed-worker")
        defer { workers.fixture.slapd.stop() }
        let logs = [workers.folder.appendingPathComponent("a.log").path, workers.folder.appendingPathComponent("b.log").path]
        let a = try workers.start(runs: 50, log: logs[0])
        let b = try workers.start(runs: 6, log: logs[1])
        defer { if a.isRunning { kill(a.processIdentifier, SIGKILL) } }
        // Kill A while it holds a lease: in the middle of one of its syncs.
        let store = try PostgresStore(url: workers.fixture.storePath)
        var holding = false
        let deadline = Date().addingTimeInterval(60)
        while !holding && Date() < deadline && a.isRunning {
            holding = try store.session.exclusive { db in
                try db.row("SELECT count(*) AS held FROM leases WHERE pid = $1", .init([Int32(a.processIdentifier)]))?.int("held") ?? 0
            } > 0
            if !holding { usleep(5_000) }
        }
        #expect(holding, "worker A never held a lease")
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        let killedAt = Date()
        b.waitUntilExit()
        let log = try logs.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n")
        #expect(b.terminationStatus == 0, "\(log)")
        let runs = try workers.runs()
        Self.checkOncePerTick(runs, minimumTicks: 3)
        let survivor = "\(ProcessInfo.processInfo.hostName):\(b.processIdentifier)"
        for client in Self.clients {
            // After the kill, B synced every client in the ticks that followed (it runs six ticks in all).
            let after = runs.filter { $0.client == client && $0.started >= killedAt.addingTimeInterval(-1) }
            #expect(after.count >= 2 && after.allSatisfy { $0.worker == survivor }, "\(client): \(after)\n\(log)")
        }
        // The killed worker's half-done apply left nothing: every client has its 12 users once.
        for client in Self.clients {
            #expect(try workers.fixture.int("SELECT count(*) FROM client_users u JOIN clients c ON c.id = u.client_id WHERE c.name = ?", [client]) == 12)
        }
        #expect(try workers.fixture.int("SELECT count(*) FROM leases WHERE pid = ?", [Int64(b.processIdentifier)]) == 0)
    }
}
