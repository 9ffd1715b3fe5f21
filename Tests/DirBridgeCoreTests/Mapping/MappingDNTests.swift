import Testing
@testable import DirBridgeCore

@Suite("Mapping DN normalisation")
struct MappingDNTests {
    @Test("equivalent spellings normalise to one canonical DN", arguments: [
        ("CN=Sales Leads,OU=Groups,DC=Acme,DC=Example", "cn=sales leads,ou=groups,dc=acme,dc=example"),
        ("cn = Sales   Leads , ou=Groups", "cn=sales leads,ou=groups"),
        ("cn=Smith\\, John,ou=people", "cn=smith\\, john,ou=people"),
        ("cn=Smith\\2C John,ou=people", "cn=smith\\, john,ou=people"),
        ("uid=jo+cn=Jo Smith,ou=people", "cn=jo smith+uid=jo,ou=people"),
        ("cn=a\\+b,ou=x", "cn=a\\+b,ou=x"),
        ("cn=Caf\\C3\\A9,ou=x", "cn=café,ou=x"),
        ("cn=\\#hash,ou=x", "cn=\\#hash,ou=x"),
        ("1.3.6.1.4.1.1466.0=#04024869,dc=x", "1.3.6.1.4.1.1466.0=#04024869,dc=x"),
        ("", ""),
    ])
    func normalise(dn: String, expected: String) throws {
        #expect(try MappingDN.normalize(dn) == expected)
    }

    @Test("malformed DNs are rejected", arguments: [
        "cn=a,,dc=b", "cn", "cn=a,", "=a", "cn=a\\", "cn=a\\zz", "c n=a", "cn=a,dc=b\\2",
    ])
    func malformed(dn: String) {
        #expect(throws: MappingDNError.self) { try MappingDN.normalize(dn) }
    }
}
