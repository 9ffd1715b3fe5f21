@testable import DirBridgeCore
import Foundation
import Logging
import Testing

/// One slapd for the suite: foundation fixtures plus 1,200 bulk entries under ou=bulk.
private let sharedServer = Result { () throws -> TestSlapd in
    let bulk = try makeTemporaryDirectory("bulk").appendingPathComponent("bulk.ldif")
    var ldif = ""
    for index in 1...1200 {
        ldif += "dn: uid=bulk\(index),ou=bulk,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: bulk\(index)\ncn: Bulk \(index)\nsn: Bulk\n\n"
    }
    // One entry larger than the connection's read-ahead buffer (3,000 values, about 130 KB).
    ldif += "dn: ou=large,dc=example,dc=com\nobjectClass: organizationalUnit\nou: large\n\n"
    ldif += "dn: uid=large,ou=large,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: large\ncn: Large\nsn: Large\n"
    ldif += largeEntryValues.map { "description: \($0)\n" }.joined() + "\n"
    // slapadd loads before start, so the bulk file carries its own OU.
    let withOU = "dn: ou=bulk,dc=example,dc=com\nobjectClass: organizationalUnit\nou: bulk\n\n" + ldif
    try Data(withOU.utf8).write(to: bulk)
    return try TestSlapd(label: "directory", fixtures: ["ldif/foundation.ldif"], bulk: [bulk])
}

private func server() throws -> TestSlapd { try sharedServer.get() }

private let largeEntryValues = (1...3000).map { "value \($0) of the entry larger than the read-ahead buffer" }

private func readAll(_ connection: DirectoryConnection, _ request: SearchRequest) throws -> ([DirectoryEntry], SearchStatistics, [Int]) {
    var entries: [DirectoryEntry] = []
    var pageSizes: [Int] = []
    let statistics = try connection.search(request) { page in
        pageSizes.append(page.count)
        entries += page
    }
    return (entries, statistics, pageSizes)
}

/// A result handed from one thread to another.
private final class LockedOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Void, any Error>?
    func set(_ value: Result<Void, any Error>) { lock.withLock { result = value } }
    func get() -> Result<Void, any Error>? { lock.withLock { result } }
}

private func expectDirectoryError(_ code: DirectoryError.Code, _ body: () throws -> Void) -> DirectoryError? {
    do {
        try body()
        Issue.record("expected a \(code) DirectoryError, got success")
        return nil
    } catch let error as DirectoryError {
        #expect(error.code == code, "\(error)")
        return error
    } catch {
        Issue.record("expected DirectoryError, got \(error)")
        return nil
    }
}

@Suite("Reading a real slapd", .serialized)
struct DirectoryReadingTests {
    let log = CapturedLog()

    @Test("a plain simple bind reads the people")
    func plainBind() throws {
        let slapd = try server()
        let connection = try DirectoryConnection.open(try slapd.configuration(), logger: log.logger)
        let (entries, statistics, _) = try readAll(connection, SearchRequest(base: "ou=people,dc=example,dc=com", scope: .one, filter: "(objectClass=inetOrgPerson)"))
        #expect(Set(entries.compactMap { $0.first("uid") }) == ["tricky", "decoy1", "decoy2", "jsmith"])
        #expect(statistics.entries == 4)
        #expect(statistics.references == 0)
    }

    @Test("a wrong password is a bind error that never shows the password")
    func wrongPassword() throws {
        let slapd = try server()
        let secret = "Wr0ng-S3cret-\(UUID().uuidString.prefix(6))"
        let configuration = try slapd.configuration(password: secret)
        let error = expectDirectoryError(.bind) { _ = try DirectoryConnection.open(configuration, logger: log.logger) }
        #expect(error?.resultCode == 49)
        #expect(error.map { !$0.description.contains(secret) } == true)
        #expect(error?.description.contains("cn=sync,ou=services,dc=example,dc=com") == true)
        #expect(error?.kind.exitCode == 3)
        #expect(!log.messages.contains { $0.1.contains(secret) })
    }

    @Test("ldaps verifies the server against the test CA")
    func ldapsWithCA() throws {
        let slapd = try server()
        var configuration = try slapd.configuration(url: slapd.ldapsURL)
        configuration.caFile = slapd.caFile
        let connection = try DirectoryConnection.open(configuration, logger: log.logger)
        let (entries, _, _) = try readAll(connection, SearchRequest(base: "dc=example,dc=com", scope: .base))
        #expect(entries.count == 1)
    }

    @Test("StartTLS upgrades an ldap:// connection")
    func startTLS() throws {
        let slapd = try server()
        var configuration = try slapd.configuration()
        configuration.startTLS = true
        configuration.caFile = slapd.caFile
        let connection = try DirectoryConnection.open(configuration, logger: log.logger)
        let (entries, _, _) = try readAll(connection, SearchRequest(base: "dc=example,dc=com", scope: .base))
        #expect(entries.count == 1)
    }

    @Test("reads go through the read-ahead buffer whole: 1,200 entries in pages and an entry larger than the buffer, on ldap, ldaps and StartTLS",
          arguments: ["ldap", "ldaps", "starttls"])
    func readAheadWhole(transport: String) throws {
        let slapd = try server()
        var configuration = try slapd.configuration(account: "sync", url: transport == "ldaps" ? slapd.ldapsURL : slapd.ldapURL, pageSize: 500)
        configuration.startTLS = transport == "starttls"
        configuration.caFile = slapd.caFile
        let connection = try DirectoryConnection.open(configuration, logger: log.logger)
        #expect(connection.readsAhead)
        let (bulk, _, _) = try readAll(connection, SearchRequest(base: "ou=bulk,dc=example,dc=com", scope: .one, filter: "(objectClass=inetOrgPerson)", attributes: ["uid", "cn"]))
        #expect(bulk.count == 1200)
        #expect(bulk.allSatisfy { entry in entry.first("uid").map { "Bulk \($0.dropFirst(4))" } == entry.first("cn") })
        let (large, _, _) = try readAll(connection, SearchRequest(base: "uid=large,ou=large,dc=example,dc=com", scope: .base, attributes: ["description"]))
        #expect(large.count == 1)
        #expect(large.first?.strings("description") == largeEntryValues)
    }

    @Test("a server that stops in the middle of an answer fails the read with a time limit error instead of holding it")
    func stalledAnswer() throws {
        let slapd = try server()
        let upstream = try #require(slapd.ldapURL.split(separator: ":").last.flatMap { UInt16($0) })
        // The bind's answer and about half of the 130 KB entry, then nothing: the read-ahead
        // layer holds part of a message and reads for the rest.
        let proxy = try StallingProxy(upstreamPort: upstream, serverBytes: 65_000)
        defer { proxy.close() }
        var configuration = try slapd.configuration(account: "sync", url: proxy.url)
        configuration.timeout = 2
        nonisolated(unsafe) let connection = try DirectoryConnection.open(configuration, logger: log.logger)
        #expect(connection.readsAhead)
        let outcome = LockedOutcome()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            outcome.set(Result { _ = try readAll(connection, SearchRequest(base: "uid=large,ou=large,dc=example,dc=com", scope: .base, attributes: ["description"])) })
            done.signal()
        }
        // Waits for the outcome; a read that has not returned long after the 2 s timeout never
        // will (the proxy's close then ends it, and the test fails).
        if done.wait(timeout: .now() + 120) == .timedOut {
            Issue.record("the read did not give up on a server that stopped mid-answer")
            proxy.close()
            done.wait()
        }
        let error = outcome.get().flatMap { result -> DirectoryError? in
            if case .failure(let error) = result { return error as? DirectoryError } else { return nil }
        }
        #expect(error?.code == .timeLimit, "\(String(describing: outcome.get()))")
    }

    @Test("a certificate from another CA is refused, on ldaps and on StartTLS")
    func untrustedCertificate() throws {
        let slapd = try server()
        var ldaps = try slapd.configuration(url: slapd.ldapsURL)
        ldaps.caFile = slapd.otherCAFile
        _ = expectDirectoryError(.tls) { _ = try DirectoryConnection.open(ldaps, logger: log.logger) }
        var startTLS = try slapd.configuration()
        startTLS.startTLS = true
        startTLS.caFile = slapd.otherCAFile
        _ = expectDirectoryError(.tls) { _ = try DirectoryConnection.open(startTLS, logger: log.logger) }
    }

    @Test("with verification off an untrusted certificate works, with a warning")
    func verificationOff() throws {
        let slapd = try server()
        let captured = CapturedLog()
        var configuration = try slapd.configuration(url: slapd.ldapsURL)
        configuration.caFile = slapd.otherCAFile
        configuration.tlsVerify = false
        let connection = try DirectoryConnection.open(configuration, logger: captured.logger)
        let (entries, _, _) = try readAll(connection, SearchRequest(base: "dc=example,dc=com", scope: .base))
        #expect(entries.count == 1)
        #expect(captured.messages.contains { $0.0 == .warning && $0.1.contains("verification is OFF") })
    }

    @Test("a paged read gets all 1,200 entries through the 500-entry limit", arguments: [("reader", 500, 3), ("sync", 500, 3), ("sync", 100, 12)])
    func pagedRead(account: String, pageSize: Int, pages: Int) throws {
        let slapd = try server()
        let connection = try DirectoryConnection.open(try slapd.configuration(account: account, pageSize: pageSize), logger: log.logger)
        let (entries, statistics, pageSizes) = try readAll(connection, SearchRequest(base: "ou=bulk,dc=example,dc=com", scope: .one, filter: "(objectClass=inetOrgPerson)", attributes: ["uid"]))
        #expect(entries.count == 1200)
        #expect(Set(entries.compactMap { $0.first("uid") }).count == 1200)
        #expect(statistics.pages == pages)
        #expect(pageSizes.allSatisfy { $0 <= pageSize })
    }

    @Test("an account capped at 500 entries fails the read instead of returning 500")
    func sizeLimitFails() throws {
        let slapd = try server()
        let connection = try DirectoryConnection.open(try slapd.configuration(account: "capped"), logger: log.logger)
        var delivered = 0
        let error = expectDirectoryError(.sizeLimit) {
            try connection.search(SearchRequest(base: "ou=bulk,dc=example,dc=com", scope: .one, attributes: ["uid"])) { delivered += $0.count }
        }
        #expect(error?.resultCode == 4)
        #expect(delivered <= 500)
    }

    @Test("a stopped server is an unreachable error; fail-over moves to the next URL")
    func stoppedServer() throws {
        let slapd = try server()
        let dead = try TestSlapd(label: "dead")
        let deadURL = dead.ldapURL
        dead.stop()
        let alone = try slapd.configuration(url: deadURL)
        let error = expectDirectoryError(.unreachable) { _ = try DirectoryConnection.open(alone, logger: log.logger) }
        #expect(error?.kind.exitCode == 3)
        var both = try slapd.configuration()
        both.urls = [deadURL, slapd.ldapURL]
        let connection = try DirectoryConnection.open(both, logger: log.logger)
        #expect(connection.url == slapd.ldapURL)
    }

    @Test("a filter built from a value with * ( ) \\ and NUL matches exactly the intended entry")
    func escapedFilterValue() throws {
        let slapd = try server()
        let connection = try DirectoryConnection.open(try slapd.configuration(), logger: log.logger)
        let value = "star*paren(close)back\\nul\u{0}end"
        let filter = LDAPFilterText.equality("description", value)
        #expect(filter == "(description=star\\2aparen\\28close\\29back\\5cnul\\00end)")
        let (entries, _, _) = try readAll(connection, SearchRequest(base: "ou=people,dc=example,dc=com", filter: filter, attributes: ["DESCRIPTION"]))
        #expect(entries.map(\.dn) == ["uid=tricky,ou=people,dc=example,dc=com"])
        // Binary-safe, case-insensitive: the NUL survives and the name's case does not matter.
        #expect(entries.first?.bytes("Description") == [Array(value.utf8)])
    }

    @Test("DNs from the server compare equal to differently written forms")
    func dnNormalisation() throws {
        let slapd = try server()
        let connection = try DirectoryConnection.open(try slapd.configuration(), logger: log.logger)
        let (people, _, _) = try readAll(connection, SearchRequest(base: "ou=people,dc=example,dc=com", filter: "(uid=jsmith)", attributes: ["memberOf"]))
        let person = try #require(people.first)
        #expect(try DistinguishedName(person.dn) == DistinguishedName("UID=jsmith+CN=Smith\\, John,OU=People,DC=Example,DC=Com"))
        let group = try #require(person.strings("memberof").first)
        #expect(try DistinguishedName(group) == DistinguishedName("CN=R\\,D (Europe)\\+,ou=groups,dc=example,dc=com"))
    }

    @Test("continuation references are skipped and counted; a referral result fails the read")
    func references() throws {
        let slapd = try server()
        let connection = try DirectoryConnection.open(try slapd.configuration(), logger: log.logger)
        let (entries, statistics, _) = try readAll(connection, SearchRequest(base: "dc=example,dc=com", filter: "(objectClass=organizationalUnit)", attributes: ["ou"]))
        #expect(statistics.references == 1)
        #expect(Set(entries.compactMap { $0.first("ou") }).isSuperset(of: ["people", "groups", "bulk", "services"]))
        _ = expectDirectoryError(.referral) {
            try connection.search(SearchRequest(base: "ou=x,ou=elsewhere,dc=example,dc=com")) { _ in }
        }
    }

    @Test("a password file readable by others is refused; 0600 is accepted")
    func passwordFileMode() throws {
        let slapd = try server()
        var configuration = try slapd.configuration()
        guard case .file(let path) = configuration.password else { Issue.record("harness gives a file"); return }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let error = expectDirectoryError(.credentials) { _ = try DirectoryConnection.open(configuration, logger: log.logger) }
        #expect(error?.description.contains("chmod 600") == true)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        _ = try DirectoryConnection.open(configuration, logger: log.logger)
        configuration.password = .environment("DIRBRIDGE_TEST_UNSET_\(UUID().uuidString.prefix(6))")
        _ = expectDirectoryError(.credentials) { _ = try DirectoryConnection.open(configuration, logger: log.logger) }
    }

    @Test("a bad base DN is a search error naming the base")
    func badBase() throws {
        let slapd = try server()
        let connection = try DirectoryConnection.open(try slapd.configuration(), logger: log.logger)
        let error = expectDirectoryError(.search) {
            try connection.search(SearchRequest(base: "ou=nowhere,dc=example,dc=com")) { _ in }
        }
        #expect(error?.resultCode == 32)
        #expect(error?.description.contains("ou=nowhere,dc=example,dc=com") == true)
    }
}
