import DirBridgeCore
import Foundation
import Testing

/// `dirbridge doctor` against real slapd servers: all green, then each way a sync would fail.
@Suite("doctor on a real slapd", .serialized)
struct DoctorTests {
    /// The engine company plus 600 people under ou=bulk, so that the capped account (500) is too small.
    private func server(_ label: String, certificateDays: Int? = nil) throws -> TestSlapd {
        _ = testBindPassword
        let bulk = try makeTemporaryDirectory("doctor-bulk").appendingPathComponent("bulk.ldif")
        var ldif = "dn: ou=bulk,dc=example,dc=com\nobjectClass: organizationalUnit\nou: bulk\n\n"
        for index in 0..<600 {
            ldif += "dn: uid=bulk\(index),ou=bulk,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: bulk\(index)\ncn: Bulk \(index)\nsn: Bulk\n\n"
        }
        try Data(ldif.utf8).write(to: bulk)
        return try TestSlapd(label: label, fixtures: ["ldif/engine.ldif"], bulk: [bulk], certificateDays: certificateDays)
    }

    /// The engine mapping over ldaps with `caFile`, bound as `account`, with `edit` applied; and a store path.
    private func mapping(_ slapd: TestSlapd, caFile: String, account: String = "sync", edit: (String) -> String = { $0 }) throws -> (path: String, store: String) {
        let folder = try makeTemporaryDirectory("doctor")
        var text = try String(contentsOf: fixtureURL("mappings/engine.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "  timeout: 10s\n", with: "  timeout: 10s\n  ca_file: \(caFile)\n")
            .replacingOccurrences(of: "cn=sync,ou=services", with: "cn=\(account),ou=services")
        if account != "sync" {
            let passwordFile = folder.appendingPathComponent("password")
            try Data("\(account)-secret".utf8).write(to: passwordFile)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: passwordFile.path)
            text = text.replacingOccurrences(of: "bind_password_env: DIRBRIDGE_TEST_BIND_PASSWORD", with: "bind_password_file: \(passwordFile.path)")
        }
        let path = folder.appendingPathComponent("doctor.yaml").path
        try edit(text).write(toFile: path, atomically: true, encoding: .utf8)
        return (path, folder.appendingPathComponent("portal.sqlite").path)
    }

    private func doctor(_ slapd: TestSlapd, _ mapping: (path: String, store: String), url: String? = nil) throws -> (status: Int32, report: [String: Any], text: String) {
        let environment = ["DIRBRIDGE_URL": url ?? slapd.ldapsURL]
        let json = try runDirbridge(["doctor", mapping.path, "--store", mapping.store, "--json"], environment: environment)
        let text = try runDirbridge(["doctor", mapping.path, "--store", mapping.store], environment: environment)
        #expect(json.status == text.status)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.stdout)\(json.stderr)")
        #expect(report["exit_code"] as? Int == Int(json.status))
        return (json.status, report, text.stdout)
    }

    private func checks(_ report: [String: Any], status: String) -> [String] {
        (report["checks"] as? [[String: Any]] ?? []).filter { $0["status"] as? String == status }.compactMap { $0["check"] as? String }
    }

    @Test("all green over ldaps with the test CA; then the wrong CA, a capped account, a rule's missing group and a read-only store each fail with their exit code and what to do")
    func greenThenEachFailure() throws {
        let slapd = try server("doctor")
        defer { slapd.stop() }

        let good = try mapping(slapd, caFile: slapd.caFile)
        let green = try doctor(slapd, good)
        #expect(green.status == 0, "\(green.text)")
        #expect(checks(green.report, status: "failed").isEmpty && checks(green.report, status: "warning").isEmpty, "\(green.text)")
        #expect(Set(checks(green.report, status: "ok")).isSuperset(of: ["dns", "tcp", "tls", "bind", "entries", "server", "clock", "groups", "store"]))
        #expect(green.text.contains("certificate and host name verified against ca_file \(slapd.caFile)"), "\(green.text)")
        #expect(green.text.contains("content sync (RFC 4533)"))
        #expect(green.text.contains("no store at \(good.store) yet: the first apply creates it"))
        #expect(green.text.contains("A sync would work."))
        #expect(!FileManager.default.fileExists(atPath: good.store), "doctor never creates a store")

        // A CA that signed nothing here.
        let wrongCA = try doctor(slapd, try mapping(slapd, caFile: slapd.env["OTHER_CA_FILE"]!))
        #expect(wrongCA.status == 3, "\(wrongCA.text)")
        #expect(checks(wrongCA.report, status: "failed") == ["tls"], "\(wrongCA.text)")
        #expect(wrongCA.text.contains("next: check ca_file names the CA that signed the server's certificate"))

        // An account capped at 500 entries, where 600 + the company match.
        let capped = try doctor(slapd, try mapping(slapd, caFile: slapd.caFile, account: "capped"))
        #expect(capped.status == 3, "\(capped.text)")
        #expect(checks(capped.report, status: "failed") == ["entries"], "\(capped.text)")
        #expect(capped.text.contains("size limit"), "\(capped.text)")
        #expect(capped.text.contains("limits dn.exact=\"cn=capped,ou=services,dc=example,dc=com\" size=unlimited"), "\(capped.text)")

        // A rule naming a group that does not exist.
        let typo = try doctor(slapd, try mapping(slapd, caFile: slapd.caFile) {
            $0.replacingOccurrences(of: "cn=portal-admins,ou=groups", with: "cn=portal-admns,ou=groups")
        })
        #expect(typo.status == 3, "\(typo.text)")
        #expect(checks(typo.report, status: "failed") == ["groups"], "\(typo.text)")
        #expect(typo.text.contains("1 group named by a rule does not exist or cannot be read: rule 1 (line 32): cn=portal-admns,ou=groups,dc=example,dc=com"), "\(typo.text)")

        // A store that cannot be written (immutable even for root).
        let sync = try runDirbridge(["sync", good.path, "--store", good.store, "--apply", "--quiet"], environment: ["DIRBRIDGE_URL": slapd.ldapsURL])
        #expect(sync.status == 0, "\(sync.stderr)")
        let lock = try runProcess("/usr/bin/chattr", ["+i", good.store])
        try #require(lock.status == 0, "chattr +i failed: \(lock.stderr)")
        defer { _ = try? runProcess("/usr/bin/chattr", ["-i", good.store]) }
        let readOnly = try doctor(slapd, good)
        #expect(readOnly.status == 4, "\(readOnly.text)")
        #expect(checks(readOnly.report, status: "failed") == ["store"], "\(readOnly.text)")
        #expect(readOnly.text.contains("cannot be written: attempt to write a readonly database"), "\(readOnly.text)")
    }

    @Test("a server certificate that expires in 10 days is a warning; the exit code stays 0")
    func expiringCertificate() throws {
        let slapd = try server("doctor-expiring", certificateDays: 10)
        defer { slapd.stop() }
        let result = try doctor(slapd, try mapping(slapd, caFile: slapd.caFile))
        #expect(result.status == 0, "\(result.text)")
        #expect(checks(result.report, status: "warning") == ["tls"], "\(result.text)")
        #expect(result.text.contains("the certificate expires in 9 days") || result.text.contains("the certificate expires in 10 days"), "\(result.text)")
        #expect(result.text.contains("next: renew the server's certificate before"))
    }
}
