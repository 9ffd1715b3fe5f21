import Testing
@testable import DirBridgeCore

@Suite("EmailAddress")
struct EmailAddressTests {
    @Test("usable: an @ with text on both sides, no whitespace or control characters",
          arguments: ["ada@example.com", "a@b", "\"odd@name\"@example.com", "Ådä@exämple.org", "x+tag@sub.example.com"])
    func usable(_ email: String) {
        #expect(EmailAddress.isUsable(email))
    }

    @Test("unusable: no @, nothing before or after it, spaces, tabs, newlines or control characters",
          arguments: ["not-an-email", "@example.com", "ada@", "@", "", "ada @example.com", "ada@example.com ",
                      "ada@exa\tmple.com", "ada@example.com\n", "ada\u{0}@example.com", "ada@ex\u{7F}ample.com",
                      "ada@\u{A0}example.com"])
    func unusable(_ email: String) {
        #expect(!EmailAddress.isUsable(email))
    }

    @Test("an entry whose email is not usable is a reported skip, by DN, like one without email")
    func skippedByMapping() throws {
        let mapping = try MappingRuleTests.mapping()
        let entry = EntryAttributes(dn: MappingRuleTests.bob.dn, strings: [
            "mail": ["Not-An-Email"], "entryUUID": ["6d1c3e5a-0000-4000-8000-000000000002"],
        ])
        let result = mapping.mapUser(entry)
        #expect(result == .failure(.unusableEmail(dn: MappingRuleTests.bob.dn, email: "not-an-email")))
        if case .failure(let reason) = result {
            #expect(reason.dn == MappingRuleTests.bob.dn)
            #expect(reason.description.contains("no usable email"))
            #expect(reason.description.hasSuffix("skipped"))
        }
    }
}
