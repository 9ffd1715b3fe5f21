import DirBridgeCore
import Foundation
import Logging
import Testing

/// The test's webhook receiver: a Python HTTP server on 127.0.0.1 (Fixtures/scripts/webhook-server.py).
final class WebhookServer {
    let process = Process()
    let log: URL
    let port: Int

    init(statuses: [Int]) throws {
        let folder = try makeTemporaryDirectory("webhook")
        log = folder.appendingPathComponent("received.jsonl")
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixtureURL("scripts/webhook-server.py").path, log.path, statuses.map(String.init).joined(separator: ",")]
        process.standardOutput = output
        try process.run()
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        port = try #require(Int(line), "the webhook server did not say its port: \(line)")
    }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    /// What it received, oldest first: status answered, headers (lowercased), body.
    func received() throws -> [(status: Int, headers: [String: String], body: String)] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return (object["status"] as? Int ?? 0, object["headers"] as? [String: String] ?? [:], object["body"] as? String ?? "")
        }
    }

    deinit {
        // SIGKILL: a child of the test runner inherits its blocked SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

@Suite("Webhooks delivered to a real HTTP server", .serialized)
struct NotifyTests {
    private let secret = "webhook-test-secret"

    private func fixture(_ label: String, notify: String, guards: String = "") throws -> EngineFixture {
        try EngineFixture(label) { $0 + guards + notify }
    }

    private func sync(_ fixture: EngineFixture, _ extra: [String] = ["--apply"]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runDirbridge(["sync", fixture.mappingPath, "--store", fixture.storePath] + extra,
                         environment: fixture.environment.merging(["DIRBRIDGE_TEST_WEBHOOK_SECRET": secret]) { $1 })
    }

    @Test("a refusal is posted with a valid signature, the guard and its figures; an applied run, not in `on`, is not posted")
    func refusalSigned() throws {
        let server = try WebhookServer(statuses: [200])
        let fixture = try fixture("notify-refused", notify: """
            notify:
              webhook: \(server.url)
              on: [failed, refused]
              secret_env: DIRBRIDGE_TEST_WEBHOOK_SECRET

            """, guards: "guards:\n  max_promote: 0\n")
        defer { fixture.slapd.stop() }
        #expect(fixture.mapping.notify?.on == [.failed, .refused])
        let first = try sync(fixture)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try server.received().isEmpty, "an applied run is not in `on`")

        try fixture.slapd.modify(peopleLDIF(["eve"], memberOf: portalAdmins))
        let refused = try sync(fixture)
        #expect(refused.status == 5, "\(refused.stderr)")
        let received = try server.received()
        try #require(received.count == 1)
        let delivery = received[0]
        #expect(delivery.headers["x-dirbridge-signature"] == "sha256=" + Digests.hmacSHA256Hex(key: Array(secret.utf8), message: Array(delivery.body.utf8)))
        #expect(delivery.headers["x-dirbridge-event"] == "refused")
        #expect(delivery.headers["content-type"] == "application/json")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(delivery.body.utf8)) as? [String: Any])
        #expect(body["event"] as? String == "refused")
        #expect(body["client"] as? String == "Engine Corp")
        #expect(body["status"] as? String == "refused")
        let refusedRun: Int64? = try fixture.value("SELECT id FROM sync_runs WHERE status = 'refused'")
        #expect((body["run_id"] as? Int).map(Int64.init) == refusedRun)
        let guards = try #require(body["guards"] as? [[String: Any]])
        #expect(guards.first?["guard"] as? String == "max_promote")
        #expect((guards.first?["message"] as? String)?.contains("above max_promote 0") == true)
        #expect((body["changes"] as? [[String: Any]])?.first?["email"] as? String == "eve@example.com")
        #expect(body["changes_total"] as? Int == 1)
        #expect((body["summary"] as? [String: Int])?["create"] == 1)
        #expect(!delivery.body.contains("sync-secret"), "the bind password never leaves")
    }

    @Test("a server answering 500 twice and then 200 gets the payload, delivered once; a dead endpoint does not change the exit code")
    func retriesAndDeadEndpoint() throws {
        let server = try WebhookServer(statuses: [500, 500, 200])
        let fixture = try fixture("notify-retry", notify: """
            notify:
              webhook: \(server.url)
              on: [changed]
              timeout: 5s

            """)
        defer { fixture.slapd.stop() }
        let applied = try sync(fixture)
        #expect(applied.status == 0, "\(applied.stderr)")
        let received = try server.received()
        #expect(received.map(\.status) == [500, 500, 200])
        #expect(Set(received.map(\.body)).count == 1, "every attempt carries the same payload")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(received[0].body.utf8)) as? [String: Any])
        #expect(body["event"] as? String == "changed")
        #expect(received[0].headers["x-dirbridge-signature"] == nil, "no secret_env: unsigned")
        // Nothing changed the second time: `changed` is not posted.
        #expect(try sync(fixture).status == 0)
        #expect(try server.received().count == 3)

        // Nobody listens on port 1: the sync still exits as it would without a webhook.
        let dead = try EngineFixture("notify-dead") { $0 + "notify:\n  webhook: http://127.0.0.1:1/hook\n  on: [applied, failed]\n  timeout: 2s\n" }
        defer { dead.slapd.stop() }
        let result = try sync(dead)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("webhook not delivered; the run's outcome stands"), "\(result.stderr)")
        #expect(try dead.int("SELECT count(*) FROM client_users") > 0)
    }

    @Test("a shared tick another worker took (synced already, or syncing now) is neither posted as failed nor counted as one")
    func skippedTicksAreNotFailures() throws {
        let server = try WebhookServer(statuses: [200])
        // A client of its own: /healthz's record is per client name, and other tests fail Engine Corp's runs on purpose.
        let fixture = try EngineFixture("notify-skipped") {
            $0.replacingOccurrences(of: "client: Engine Corp", with: "client: Skipped Tick Corp")
                + "notify:\n  webhook: \(server.url)\n  on: [failed, refused]\n"
        }
        defer { fixture.slapd.stop() }
        let first = try sync(fixture)
        #expect(first.status == 0, "\(first.stderr)")
        let client = fixture.mapping.client.name
        // This tick's sync is in sync_runs already (as another worker would have left it).
        var request = SyncRequest(mapping: fixture.mapping, storePath: fixture.storePath, apply: true, incremental: true, holder: "run")
        request.skipIfSyncedSince = Date().addingTimeInterval(-3600)
        #expect(throws: SyncSkipped.self) { try SyncEngine.run(request, logger: Logger(label: "test")) }
        // Another run holds the lease right now.
        let lease = try openPortalStorage(fixture.storePath).acquireLease(client: client, holder: "run")
        request.skipIfSyncedSince = Date().addingTimeInterval(3600)
        let held = #expect(throws: LeaseError.self) { try SyncEngine.run(request, logger: Logger(label: "test")) }
        #expect(held?.lost == false)
        lease.release()
        #expect(try server.received().isEmpty, "a skipped tick is not a failed run")
        #expect(RunHealth.shared.check(clients: [client], window: 3600).detail.contains("did not succeed") == false)
        #expect(try fixture.int("SELECT count(*) FROM sync_runs WHERE status = 'failed'") == 0)
    }

    @Test("a failed run is posted with its error; an unset secret_env sends nothing rather than an unsigned body")
    func failedRun() throws {
        let server = try WebhookServer(statuses: [200])
        let fixture = try fixture("notify-failed", notify: "notify:\n  webhook: \(server.url)\n")
        defer { fixture.slapd.stop() }
        let folder = try makeTemporaryDirectory("notify-failed")
        // The directory answers nowhere: a failed run.
        let failed = try runDirbridge(["sync", fixture.mappingPath, "--store", folder.appendingPathComponent("p.sqlite").path, "--apply"],
                                      environment: ["DIRBRIDGE_URL": "ldap://127.0.0.1:1"])
        #expect(failed.status == 3)
        let received = try server.received()
        try #require(received.count == 1)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(received[0].body.utf8)) as? [String: Any])
        #expect(body["event"] as? String == "failed")
        #expect((body["error"] as? String)?.contains("ldap://127.0.0.1:1") == true)
        #expect(body["run_id"] as? Int != nil)

        let unsigned = try EngineFixture("notify-unset") { $0 + "notify:\n  webhook: \(server.url)\n  secret_env: DIRBRIDGE_UNSET_SECRET\n" }
        defer { unsigned.slapd.stop() }
        let result = try runDirbridge(["sync", unsigned.mappingPath, "--store", folder.appendingPathComponent("q.sqlite").path, "--apply"],
                                      environment: ["DIRBRIDGE_URL": "ldap://127.0.0.1:1"])
        #expect(result.status == 3)
        #expect(result.stderr.contains("webhook not sent: notify.secret_env names DIRBRIDGE_UNSET_SECRET, which is not set"), "\(result.stderr)")
        #expect(try server.received().count == 1)
    }
}
