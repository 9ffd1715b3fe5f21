import DirBridgeCore
import Foundation
import Testing

/// One demo-company slapd for the `check` command's contract tests.
private let demoServer = Result { try TestSlapd(label: "check", fixtures: ["../../../demo/company.ldif"]) }

@Suite("dirbridge check on the command line", .serialized)
struct CheckCommandTests {
    private func environment(_ slapd: TestSlapd, password: String = "sync-secret", url: String? = nil) -> [String: String] {
        ["DIRBRIDGE_URL": url ?? slapd.ldapURL, "DIRBRIDGE_BIND_PASSWORD": password]
    }

    private var demoMapping: String { repositoryRoot.appendingPathComponent("mappings/demo.yaml").path }

    @Test("check counts the demo company and shows five mapped users")
    func checkCounts() throws {
        let slapd = try demoServer.get()
        let result = try runDirbridge(["check", demoMapping], environment: environment(slapd))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("users:  292 under ou=people,dc=example,dc=com"))
        #expect(result.stdout.contains("groups: 9 under ou=groups,dc=example,dc=com"))
        #expect(result.stdout.components(separatedBy: "\nuid=").count - 1 == 5)
        let json = try runDirbridge(["check", demoMapping, "--json"], environment: environment(slapd))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["users"] as? Int == 292)
        #expect((object["sample"] as? [Any])?.count == 5)
    }

    @Test("a wrong password exits 3 and the password appears in no output")
    func wrongPasswordExits3() throws {
        let slapd = try demoServer.get()
        let secret = "NotTheP4ssword-\(UUID().uuidString.prefix(8))"
        let result = try runDirbridge(["check", demoMapping, "--verbose"], environment: environment(slapd, password: secret))
        #expect(result.status == 3)
        #expect(result.stderr.contains("Invalid credentials"))
        #expect(!result.stdout.contains(secret))
        #expect(!result.stderr.contains(secret))
    }

    @Test("a stopped server exits 3 with what to check next")
    func stoppedServerExits3() throws {
        let dead = try TestSlapd(label: "check-dead")
        let url = dead.ldapURL
        dead.stop()
        let result = try runDirbridge(["check", demoMapping], environment: ["DIRBRIDGE_URL": url, "DIRBRIDGE_BIND_PASSWORD": "sync-secret"])
        #expect(result.status == 3)
        #expect(result.stderr.contains("unreachable"))
        #expect(result.stderr.contains("next:"))
    }

    @Test("an unset password variable exits 1 naming the variable")
    func unsetPasswordExits1() throws {
        let slapd = try demoServer.get()
        var env = ProcessInfo.processInfo.environment
        env["DIRBRIDGE_URL"] = slapd.ldapURL
        env.removeValue(forKey: "DIRBRIDGE_BIND_PASSWORD")
        let result = try runProcess(try #require(dirbridgeBinary).path, ["check", demoMapping], environment: env)
        #expect(result.status == 1)
        #expect(result.stderr.contains("DIRBRIDGE_BIND_PASSWORD"))
    }
}
