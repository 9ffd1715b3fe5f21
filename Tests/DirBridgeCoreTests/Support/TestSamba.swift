import DirBridgeCore
import Foundation

/// A real Samba Active Directory DC on a loopback address, started by `scripts/test-samba`.
///
/// One per test run (``shared``): provisioning and loading the company take ~15 s, and Samba's
/// LDAP ports are fixed, so the Active Directory suite shares it and runs serialized. Loaded with
/// `Fixtures/ldif/ad-company.ldif` and the ``operators`` generated members of `Dept Operations`.
/// Stops at the latest a second after the test process exits (the script's watchdog).
final class TestSamba: Sendable {
    let directory: URL
    let env: [String: String]

    /// Members of `CN=Dept Operations,OU=Groups`: more than AD's 1,500 values per answer.
    static let operators = 1_600
    static let baseDN = "DC=test,DC=example"
    static let operationsDN = "CN=Dept Operations,OU=Groups,DC=test,DC=example"

    var ldapsURL: String { env["LDAPS_URL"]! }
    var caFile: String { env["CA_FILE"]! }
    var syncDN: String { env["SYNC_DN"]! }

    /// The run's server, started on first use; the error when it could not start.
    static let shared: Result<TestSamba, HarnessError> = Result { () throws(HarnessError) -> TestSamba in
        do { return try TestSamba() } catch let error as HarnessError { throw error } catch {
            throw HarnessError(description: "could not start the Samba test DC: \(error)")
        }
    }

    /// The shared server, or the reason it could not start.
    static func server() throws -> TestSamba { try shared.get() }

    private init() throws {
        directory = try makeTemporaryDirectory("samba")
        let operations = directory.appendingPathComponent("operations.ldif")
        try Data(Self.operationsLDIF().utf8).write(to: operations)
        let result = try runProcess("/bin/bash", [
            repositoryRoot.appendingPathComponent("scripts/test-samba").path, "start", directory.path,
            "--ldif", fixtureURL("ldif/ad-company.ldif").path, "--ldif", operations.path,
            "--owner-pid", String(ProcessInfo.processInfo.processIdentifier),
        ])
        guard result.status == 0 else {
            throw HarnessError(description: "scripts/test-samba start failed (\(result.status)): \(result.stderr)")
        }
        env = keyValueLines(result.stdout)
    }

    /// `CN=Operator 0001` … under `OU=Operations,OU=Staff`, enabled, and the group holding them all.
    static func operationsLDIF() -> String {
        var text = ""
        var members = ""
        for number in 1...operators {
            let name = String(format: "Operator %04d", number)
            let dn = "CN=\(name),OU=Operations,OU=Staff,\(baseDN)"
            text += """
                dn: \(dn)
                objectClass: user
                sAMAccountName: op\(String(format: "%04d", number))
                givenName: Operator
                sn: \(String(format: "%04d", number))
                mail: op\(String(format: "%04d", number))@test.example
                userAccountControl: 544


                """
            members += "member: \(dn)\n"
        }
        return text + "dn: \(operationsDN)\nobjectClass: group\nsAMAccountName: dept-operations\n" + members
    }

    /// Applies LDIF changes (ldapmodify syntax) as Administrator over ldaps.
    func modify(_ ldif: String) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["LDAPTLS_CACERT"] = caFile
        let result = try runProcess(
            "/usr/bin/ldapmodify", ["-x", "-H", ldapsURL, "-D", env["ADMIN_DN"]!, "-w", env["ADMIN_PASSWORD"]!],
            environment: environment, input: ldif)
        guard result.status == 0 else { throw HarnessError(description: "ldapmodify failed: \(result.stderr)") }
    }

    /// A 0600 file holding the service account's password, for `bind_password_file`.
    func passwordFile() throws -> String {
        let file = directory.appendingPathComponent("password-\(UUID().uuidString.prefix(6))")
        try Data(env["SYNC_PASSWORD"]!.utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        return file.path
    }

    /// Bound as the service account over ldaps, verifying the test CA.
    func configuration(pageSize: Int = 1000) throws -> DirectoryConfiguration {
        DirectoryConfiguration(urls: [ldapsURL], caFile: caFile, bindDN: syncDN, password: .file(try passwordFile()), pageSize: pageSize, timeout: 30)
    }

    /// `mappings/active-directory.yaml` for the test domain: its DNs, CA and bind account, a password
    /// file instead of the environment variable, then `edit` on the text; written to a fresh folder.
    func mappingFile(_ label: String, edit: (String) -> String = { $0 }) throws -> (mapping: String, store: String) {
        let folder = try makeTemporaryDirectory("ad-\(label)")
        var text = try String(contentsOf: repositoryRoot.appendingPathComponent("mappings/active-directory.yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "DC=contoso,DC=example", with: Self.baseDN)
            .replacingOccurrences(of: "ca_file: contoso-root-ca.pem", with: "ca_file: \(caFile)")
            .replacingOccurrences(of: "bind_password_env: DIRBRIDGE_BIND_PASSWORD", with: "bind_password_file: \(try passwordFile())")
        let path = folder.appendingPathComponent("active-directory.yaml").path
        try edit(text).write(toFile: path, atomically: true, encoding: .utf8)
        return (path, folder.appendingPathComponent("portal.sqlite").path)
    }
}
