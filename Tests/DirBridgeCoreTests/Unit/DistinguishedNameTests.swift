import Testing
@testable import DirBridgeCore

@Suite("RFC 4514 DNs and RFC 4515 filter escaping")
struct DistinguishedNameTests {
    @Test("equivalent spellings compare equal", arguments: [
        ("CN=A\\,B,OU=X", "cn=a\\2cb,ou=x"),
        ("uid=jsmith+cn=Smith\\, John,ou=People,dc=Example,dc=com", "CN=Smith\\2C John+UID=jsmith,OU=people,DC=example,DC=COM"),
        ("cn=R\\2CD (Europe)\\2B,ou=groups", "CN=R\\,D (Europe)\\+,OU=Groups"),
        ("cn = Sales  Leads , ou=g", "cn=sales leads,ou=g"),
        ("cn=\"Quoted, Name\",dc=x", "cn=quoted\\, name,dc=x"),
        ("OID.2.5.4.3=x,dc=y", "2.5.4.3=X,DC=Y"),
    ])
    func equal(_ left: String, _ right: String) throws {
        #expect(try DistinguishedName(left) == DistinguishedName(right))
    }

    @Test("different DNs differ", arguments: [
        ("cn=a,ou=x", "cn=a,ou=y"),
        ("cn=a+uid=b,ou=x", "cn=a,uid=b,ou=x"),
        ("cn=a\\2c b,ou=x", "cn=a,cn=b,ou=x"),
    ])
    func different(_ left: String, _ right: String) throws {
        #expect(try DistinguishedName(left) != DistinguishedName(right))
    }

    @Test("malformed DNs are rejected with a position", arguments: ["cn", "cn=a,,dc=x", "=a", "cn=a\\", "cn=a\\zz", "cn=\"open"])
    func malformed(_ text: String) {
        #expect(throws: DistinguishedNameError.self) { try DistinguishedName(text) }
    }

    @Test("the canonical form re-escapes what needs it and parses back to itself")
    func canonicalRoundTrip() throws {
        let dn = try DistinguishedName("CN=R\\,D (Europe)\\+ ,OU=Groups,DC=Example")
        #expect(dn.normalized == "cn=r\\,d (europe)\\+,ou=groups,dc=example")
        #expect(try DistinguishedName(dn.normalized).normalized == dn.normalized)
        #expect(dn.rdnValue == "R,D (Europe)+")
        #expect(dn.parent?.normalized == "ou=groups,dc=example")
        #expect(dn.isWithin(try DistinguishedName("dc=Example")))
        #expect(!dn.isWithin(try DistinguishedName("ou=people,dc=example")))
        // Found by the seeded fuzzing: a `,` or `#` followed by a combining mark is escaped too
        // (the parser reads bytes, so a grapheme-wise escaper missed them).
        for text in ["cn=x\\,\u{0301}dc=x", "cn=\\#\u{0301}hash\\2c comma"] {
            let odd = try DistinguishedName(text)
            #expect(try DistinguishedName(odd.normalized).normalized == odd.normalized, "\(text.debugDescription)")
        }
    }

    @Test("the fast canonical check never accepts what normalisation would change", arguments: [
        "cn=a,ou=x", "CN=a,ou=x", "cn=a ,ou=x", "cn=a\\2c,ou=x", "cn=a+uid=b,ou=x", "cn=Ø,ou=x", "cn=a  b,ou=x", "cn=a,,ou=x",
        // Found by the seeded fuzzing: a tab is folded to a space by normalisation.
        "uid=u\t0001,ou=people", "cn=a\t,ou=x", "cn=a,ou=x\t",
    ])
    func fastCheck(_ text: String) throws {
        if DistinguishedName.isCanonical(text) {
            #expect(try DistinguishedName.normalize(text) == text)
        }
    }

    @Test("the fast canonical check accepts the forms a directory sends, and its fingerprint is the same for bytes and text")
    func fastCheckAccepts() throws {
        let canonical = ["uid=u000001,ou=people,dc=example,dc=com", "cn=dept-sales,ou=groups,dc=example,dc=com", "cn=a b,dc=x", "dc=x"]
        let other = ["", "uid=U1,dc=x", "cn=a ,dc=x", "cn=a,,dc=x", "cn=a,dc=x ", "cn=", "cn", "cn=a\\2c,dc=x", "cn=Ø,dc=x"]
        func fingerprint(_ text: String) -> UInt64? {
            Array(text.utf8).withUnsafeBufferPointer { DistinguishedName.canonicalFingerprint($0) }
        }
        for text in canonical {
            #expect(DistinguishedName.isCanonical(text), "\(text.debugDescription)")
            #expect(fingerprint(text) == DistinguishedName.fingerprint(text), "\(text.debugDescription)")
        }
        for text in other {
            #expect(!DistinguishedName.isCanonical(text), "\(text.debugDescription)")
            #expect(fingerprint(text) == nil, "\(text.debugDescription)")
        }
        // Eight bytes at a time, then the tail: texts that differ in any byte, or only in length, hash apart here.
        let texts = (0...24).flatMap { length in ["a", "b"].map { String(repeating: "x", count: length) + $0 } } + ["", "x", "xx"]
        #expect(Set(texts.map { DistinguishedName.fingerprint($0) }).count == Set(texts).count)
    }

    @Test("filter values escape * ( ) \\ and NUL")
    func filterEscaping() {
        #expect(LDAPFilterText.escape("a*b(c)d\\e\u{0}f") == "a\\2ab\\28c\\29d\\5ce\\00f")
        #expect(LDAPFilterText.equality("mail", "x*@y") == "(mail=x\\2a@y)")
        #expect(LDAPFilterText.escape(bytes: [0x01, 0xFF, 0x41], escapeNonASCII: true) == "\\01\\ffA")
        #expect(LDAPFilterText.escape("Åsa") == "Åsa")
    }

    @Test("URL parts for the TLS probe", arguments: [
        ("ldaps://127.0.0.1:636", "127.0.0.1", 636), ("ldap://dc1.example.com", "dc1.example.com", 389),
        ("ldaps://[::1]:1636/", "::1", 1636), ("ldaps://host", "host", 636),
    ])
    func urlParts(_ url: String, _ host: String, _ port: Int) throws {
        let parts = try #require(LDAPURLParts(url))
        #expect(parts.host == host)
        #expect(Int(parts.port) == port)
    }
}
