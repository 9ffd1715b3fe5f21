import Testing
@testable import DirBridgeCore

@Suite("Mapping LDAP filters")
struct MappingFilterTests {
    static func entry(_ strings: [String: [String]]) -> EntryAttributes {
        EntryAttributes(dn: "uid=x,ou=people,dc=example,dc=com", strings: strings)
    }

    @Test("the AD ACCOUNTDISABLE bit matches 514 and not 512")
    func accountDisable() throws {
        let filter = try LDAPFilter.parse("(userAccountControl:1.2.840.113556.1.4.803:=2)")
        #expect(filter.matches(Self.entry(["userAccountControl": ["514"]])))
        #expect(!filter.matches(Self.entry(["userAccountControl": ["512"]])))
        #expect(!filter.matches(Self.entry([:])))
    }

    @Test("the bitwise OR rule matches when any bit of the mask is set")
    func bitwiseOr() throws {
        let filter = try LDAPFilter.parse("(userAccountControl:1.2.840.113556.1.4.804:=18)")
        #expect(filter.matches(Self.entry(["userAccountControl": ["16"]])))
        #expect(!filter.matches(Self.entry(["userAccountControl": ["512"]])))
    }

    @Test("filters evaluate as RFC 4515 says", arguments: [
        ("(uid=ada)", true),
        ("(UID=ADA)", true),
        ("(uid=bob)", false),
        ("(mail=*)", true),
        ("(title=*)", false),
        ("(cn=Ada*)", true),
        ("(cn=*Love*)", true),
        ("(cn=A*a L*ce)", true),
        ("(cn=*King)", false),
        ("(cn=A*x*)", false),
        ("(employeeNumber>=42)", true),
        ("(employeeNumber>=100)", false),
        ("(employeeNumber<=9)", false),
        ("(sn>=L)", true),
        ("(sn<=K)", false),
        ("(sn~=LOVELACE)", true),
        ("(&(uid=ada)(mail=*))", true),
        ("(&(uid=ada)(title=*))", false),
        ("(|(uid=bob)(uid=ada))", true),
        ("(!(uid=ada))", false),
        ("(&(|(uid=bob)(sn=lovelace))(!(title=*)))", true),
        ("(&(objectClass=person)(|(departmentNumber=42)(departmentNumber=7))(!(pwdAccountLockedTime=*)))", true),
        ("(description=a\\2astar)", true),
        ("(description=*\\28parens\\29*)", true),
        ("(description=back\\5cslash)", true),
        ("(description=a*star)", true),
        ("(uid:=ada)", true),
        ("uid=ada", true),
        ("(member=CN=Sales,  OU=Groups,DC=Example,DC=Com)", true),
    ])
    func evaluation(filter: String, expected: Bool) throws {
        let entry = Self.entry([
            "uid": ["ada"], "mail": ["ada@example.com"], "cn": ["Ada Lovelace"], "sn": ["Lovelace"],
            "employeeNumber": ["42"], "objectClass": ["top", "person", "inetOrgPerson"], "departmentNumber": ["7"],
            "description": ["a*star", "(parens)", "back\\slash"],
            "member": ["cn=sales,ou=groups,dc=example,dc=com"],
        ])
        #expect(try LDAPFilter.parse(filter).matches(entry) == expected)
    }

    @Test("numbers compare numerically, text case-insensitively")
    func ordering() throws {
        let entry = Self.entry(["uidNumber": ["1000"], "sn": ["lovelace"]])
        #expect(try LDAPFilter.parse("(uidNumber>=999)").matches(entry))   // "1000" < "999" as text
        #expect(try LDAPFilter.parse("(sn<=LOVELACE)").matches(entry))
    }

    @Test("escaped NUL and parentheses round-trip through the parser")
    func escapes() throws {
        let filter = try LDAPFilter.parse("(cn=a\\00b\\28c\\29)")
        #expect(filter == .equality(attribute: "cn", value: "a\u{0}b(c)"))
        #expect(filter.description == "(cn=a\\00b\\28c\\29)")
    }

    @Test("a filter lists the attributes it reads")
    func attributes() throws {
        let filter = try LDAPFilter.parse("(&(objectClass=person)(|(departmentNumber=42)(!(Mail=*))))")
        #expect(filter.attributes == ["objectclass", "departmentnumber", "mail"])
    }

    @Test("parse errors say what is wrong and where", arguments: [
        ("(uid=ada", "missing `)`", 8),
        ("(&(uid=a)(uid=b)", "missing `)`", 16),
        ("(uid=a(b)", "unescaped `(`", 6),
        ("(uid=a\\zz)", "two hex digits", 6),
        ("(&)", "needs at least one filter", 2),
        ("(uid=a))", "unexpected text after", 7),
        ("(uid:1.2.3:=x)", "unsupported matching rule", 1),
        ("(userAccountControl:1.2.840.113556.1.4.803:=two)", "non-negative integer", 47),
        ("(=x)", "expected an attribute name", 1),
        ("", "empty", 0),
    ])
    func parseErrors(filter: String, fragment: String, offset: Int) {
        #expect {
            _ = try LDAPFilter.parse(filter)
        } throws: { error in
            guard let error = error as? LDAPFilterError else { return false }
            return error.message.contains(fragment) && error.offset == offset
        }
    }
}
