import DirBridgeCore
import Foundation
import Testing

/// A real 389 Directory Server on 127.0.0.1, started by `scripts/test-389ds` from its template
/// copy and loaded with the FreeIPA-shaped and the plain fixtures.
///
/// One per suite (``DirectoryServer389Scope``): started before the suite's first test, stopped
/// after its last one, at the latest a second after the test process exits (the watchdog).
final class Test389DS: Sendable {
    let directory: URL
    let env: [String: String]

    /// The suite's server, set by ``DirectoryServer389Scope`` around the suite's tests.
    @TaskLocal static var current: Test389DS?

    var ldapURL: String { env["LDAP_URL"]! }
    var ldapsURL: String { env["LDAPS_URL"]! }
    var caFile: String { env["CA_FILE"]! }
    var otherCAFile: String { env["OTHER_CA_FILE"]! }
    var syncDN: String { env["SYNC_DN"]! }

    init(label: String, contentSync: Bool = true) throws {
        directory = try makeTemporaryDirectory("389ds-\(label)")
        var arguments = [repositoryRoot.appendingPathComponent("scripts/test-389ds").path, "start", directory.path,
                         "--ldif", fixtureURL("ldif/freeipa-initech.ldif").path, "--ldif", fixtureURL("ldif/389ds-example.ldif").path,
                         "--owner-pid", String(ProcessInfo.processInfo.processIdentifier)]
        if !contentSync { arguments.append("--no-contentsync") }
        let result = try runProcess("/bin/bash", arguments)
        guard result.status == 0 else {
            throw HarnessError(description: "scripts/test-389ds start failed (\(result.status)): \(result.stderr)")
        }
        env = keyValueLines(result.stdout)
    }

    /// The suite's server, or a failure saying the suite runs without one.
    static func server() throws -> Test389DS {
        guard let current else { throw HarnessError(description: "no 389 DS: the suite must carry the .directoryServer389 trait") }
        return current
    }

    /// Stops the server and waits for it to exit.
    func stop() {
        _ = try? runProcess("/bin/bash", [repositoryRoot.appendingPathComponent("scripts/test-389ds").path, "stop", directory.path])
    }

    /// Applies LDIF changes (ldapmodify syntax) as Directory Manager.
    func modify(_ ldif: String) throws {
        let result = try runProcess("/usr/bin/ldapmodify", ["-x", "-H", ldapURL, "-D", env["ROOT_DN"]!, "-w", env["ROOT_PASSWORD"]!], input: ldif)
        guard result.status == 0 else { throw HarnessError(description: "ldapmodify failed: \(result.stderr)") }
    }

    /// One attribute's values of an entry, read as Directory Manager.
    func values(_ dn: String, _ attribute: String) throws -> [String] {
        let result = try runProcess("/usr/bin/ldapsearch", ["-LLL", "-o", "ldif-wrap=no", "-x", "-H", ldapURL, "-D", env["ROOT_DN"]!,
                                                             "-w", env["ROOT_PASSWORD"]!, "-b", dn, "-s", "base", "(objectClass=*)", attribute])
        guard result.status == 0 else { throw HarnessError(description: "ldapsearch failed: \(result.stderr)") }
        let prefix = attribute.lowercased() + ": "
        return result.stdout.split(separator: "\n").filter { $0.lowercased().hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// A 0600 file holding `password`, for `bind_password_file`.
    func passwordFile(_ password: String = "dirbridge-secret") throws -> String {
        let file = directory.appendingPathComponent("password-\(UUID().uuidString.prefix(6))")
        try Data(password.utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        return file.path
    }

    /// `mappings/NAME.yaml` pointed at this server: its ldaps URL, the test CA, a password file
    /// (holding `password`) instead of the environment variable; then `edit` on the text; written to a fresh folder.
    func mappingFile(_ name: String, label: String, password: String = "dirbridge-secret", edit: (String) -> String = { $0 }) throws -> (mapping: String, store: String) {
        let folder = try makeTemporaryDirectory("389ds-\(label)")
        var text = try String(contentsOf: repositoryRoot.appendingPathComponent("mappings/\(name).yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "url: ldaps://ipa.initech.example", with: "url: \(ldapsURL)")
            .replacingOccurrences(of: "url: ldaps://ds.example.com", with: "url: \(ldapsURL)")
            .replacingOccurrences(of: "ca_file: /etc/ipa/ca.crt", with: "ca_file: \(caFile)")
            .replacingOccurrences(of: "ca_file: /etc/dirsrv/ssca/ca.crt", with: "ca_file: \(caFile)")
            .replacingOccurrences(of: "bind_password_env: DIRBRIDGE_BIND_PASSWORD", with: "bind_password_file: \(try passwordFile(password))")
        let path = folder.appendingPathComponent("\(name).yaml").path
        try edit(text).write(toFile: path, atomically: true, encoding: .utf8)
        return (path, folder.appendingPathComponent("portal.sqlite").path)
    }
}

/// Starts one 389 DS before a suite's first test and stops it after its last: the suite's
/// tests share it (``Test389DS/current``).
struct DirectoryServer389Scope: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let server = try Test389DS(label: "suite")
        defer { server.stop() }
        try await Test389DS.$current.withValue(server) { try await function() }
    }
}

extension Trait where Self == DirectoryServer389Scope {
    /// One 389 DS shared by the suite's tests.
    static var directoryServer389: Self { Self() }
}
