import Foundation
import Testing
@testable import DirBridgeCore

@Suite("dirbridge --version")
struct VersionTests {
    @Test("OpenLDAP's vendor version reads as dotted text", arguments: [
        (20513, "2.5.13"), (20600, "2.6.0"), (20459, "2.4.59"), (30001, "3.0.1"),
    ])
    func vendorVersion(number: Int, text: String) {
        #expect(LDAPLibraryVersion.format(vendorVersion: number) == text)
    }

    @Test("no vendor version, no made-up one")
    func zeroVendorVersion() { #expect(LDAPLibraryVersion.format(vendorVersion: 0) == nil) }

    @Test("names the libldap and SQLite loaded at run time")
    func runtimeLibraries() throws {
        let ldap = try #require(DirBridge.libldapVersion)
        #expect(ldap.split(separator: ".").count == 3 && ldap.hasPrefix("2."))
        #expect(DirBridge.sqliteVersion.hasPrefix("3."))
        #expect(DirBridge.versionLine == "\(DirBridge.version) (libldap \(ldap), SQLite \(DirBridge.sqliteVersion))")
    }

    @Test("the CLI prints `dirbridge VERSION (libldap X, SQLite Y)` and exits 0")
    func cliVersion() throws {
        let result = try runDirbridge(["--version"])
        #expect(result.status == 0)
        let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line == "dirbridge \(DirBridge.versionLine)")
        #expect(line.split(separator: " ").dropFirst().first.map(String.init) == DirBridge.version)
    }
}
