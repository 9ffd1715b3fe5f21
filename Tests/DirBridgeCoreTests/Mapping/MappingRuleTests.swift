import Foundation
import Testing
@testable import DirBridgeCore

@Suite("Mapping rules")
struct MappingRuleTests {
    static let groups = "ou=groups,dc=example,dc=com"
    static let yaml = """
        client: Example Corp
        directory: { url: "ldap://127.0.0.1:3890" }
        users:
          base: ou=people,dc=example,dc=com
          id: entryUUID
          fields: { email: "{mail | lower}" }
          disabled: "(pwdAccountLockedTime=*)"
        groups: { base: "ou=groups,dc=example,dc=com" }
        rules:
          - group: CN=Portal-Admins,OU=Groups,DC=Example,DC=Com
            global_admin: true
          - group: cn=sales-leads,ou=groups,dc=example,dc=com
            user_group: Sales
            group_manager: true
          - groups: cn=dept-*
            user_group: '{cn | trimprefix("dept-")}'
          - filter: (departmentNumber=42)
            user_group: Engineering
            role: Admin
          - groups: team-*
            user_group: '{description | default("Teams")}'
            role: Member
        """

    static func mapping() throws -> Mapping {
        try MappingLoader.load(yaml: yaml, file: "rules.yaml", baseDirectory: "/tmp")
    }

    static func group(_ cn: String, via path: [String] = []) -> GroupMembership {
        let dn = "cn=\(cn),\(groups)"
        return GroupMembership(groupDN: dn, cn: cn, path: path.map { "cn=\($0),\(groups)" } + [dn])
    }

    static let ada = EntryAttributes(dn: "uid=ada,ou=people,dc=example,dc=com", strings: [
        "mail": ["Ada@Example.com"], "entryUUID": ["6d1c3e5a-0000-4000-8000-000000000001"], "departmentNumber": ["42"],
    ])
    static let bob = EntryAttributes(dn: "uid=bob,ou=people,dc=example,dc=com", strings: [
        "mail": ["bob@example.com"], "entryUUID": ["6d1c3e5a-0000-4000-8000-000000000002"],
    ])

    @Test("the first matching rule that names a group wins when a user is in several matching groups")
    func precedence() throws {
        let outcome = try Self.mapping().evaluateRules(for: Self.ada, memberships: [
            Self.group("dept-marketing"), Self.group("sales-leads", via: ["emea"]), Self.group("portal-admins"),
        ])
        #expect(outcome.userGroup == "Sales")
        #expect(outcome.groupManager)
        #expect(!outcome.globalAdmin)   // Global Admin needs the Default User Group
        #expect(outcome.role == "Admin")  // rule 4, the first naming a role
        let userGroup = try #require(outcome.decisions.first { $0.attribute == .userGroup })
        #expect(userGroup.rule == 2)
        #expect(userGroup.line == 12)
        #expect(userGroup.reason.description
            == "via cn=sales-leads,ou=groups,dc=example,dc=com via cn=emea,ou=groups,dc=example,dc=com")
        let admin = try #require(outcome.decisions.first { $0.attribute == .globalAdmin })
        #expect(admin.value == "false")
        #expect(admin.note?.contains("Sales") == true)
        let role = try #require(outcome.decisions.first { $0.attribute == .role })
        #expect(role.reason == .filter("(departmentNumber=42)"))
    }

    @Test("a Global Admin rule applies when the user stays in the Default User Group")
    func globalAdmin() throws {
        let outcome = try Self.mapping().evaluateRules(for: Self.bob, memberships: [
            GroupMembership(groupDN: "cn=portal-admins, ou=Groups,dc=example,dc=com", cn: "portal-admins"),
        ])
        #expect(outcome.userGroup == defaultUserGroupName)
        #expect(outcome.globalAdmin)
        #expect(!outcome.groupManager)
        #expect(outcome.role == "Guest")
        #expect(outcome.decisions.map(\.attribute) == [.globalAdmin])
        #expect(outcome.decisions.first?.rule == 1)
    }

    @Test("no matching rule gives the Default User Group, Guest, no flags and no decisions")
    func defaults() throws {
        let outcome = try Self.mapping().evaluateRules(for: Self.bob, memberships: [Self.group("unrelated")])
        #expect(outcome == RuleOutcome(
            userGroup: defaultUserGroupName, role: "Guest", globalAdmin: false, groupManager: false, decisions: []))
    }

    @Test("a wildcard rule names the user group after the matched group")
    func wildcardRule() throws {
        let outcome = try Self.mapping().evaluateRules(for: Self.bob, memberships: [Self.group("dept-marketing")])
        #expect(outcome.userGroup == "marketing")
        #expect(outcome.decisions.first?.rule == 3)
    }

    @Test("when a pattern matches several groups the nearest wins, then the DN in order")
    func nearestGroup() throws {
        let mapping = try Self.mapping()
        let nested = mapping.evaluateRules(for: Self.bob, memberships: [
            Self.group("dept-a", via: ["x"]), Self.group("dept-b"),
        ])
        #expect(nested.userGroup == "b")
        let direct = mapping.evaluateRules(for: Self.bob, memberships: [Self.group("dept-d"), Self.group("dept-c")])
        #expect(direct.userGroup == "c")
    }

    @Test("Group Manager only holds for the group the user ends up in")
    func groupManagerNeedsFinalGroup() throws {
        let yaml = Self.yaml.replacingOccurrences(
            of: "  - group: CN=Portal-Admins", with: "  - groups: dept-*\n    user_group: \"{cn}\"\n  - group: CN=Portal-Admins")
        let mapping = try MappingLoader.load(yaml: yaml, file: "rules.yaml", baseDirectory: "/tmp")
        let outcome = mapping.evaluateRules(for: Self.bob, memberships: [Self.group("sales-leads"), Self.group("dept-x")])
        #expect(outcome.userGroup == "dept-x")
        #expect(!outcome.groupManager)
        #expect(outcome.decisions.contains { $0.attribute == .groupManager && $0.value == "false" })
    }

    @Test("a user group template reads the matched group's attributes, with its default")
    func groupAttributes() throws {
        let mapping = try Self.mapping()
        var team = Self.group("team-blue")
        team.attributes = EntryAttributes(dn: team.groupDN, strings: ["cn": ["team-blue"], "description": ["Blue Team"]])
        #expect(mapping.evaluateRules(for: Self.bob, memberships: [team]).userGroup == "Blue Team")
        #expect(mapping.evaluateRules(for: Self.bob, memberships: [Self.group("team-red")]).userGroup == "Teams")
        #expect(mapping.evaluateRules(for: Self.bob, memberships: [Self.group("team-red")]).role == "Member")
    }

    @Test("group patterns match DNs RDN-prefix-wise and cns, ignoring case", arguments: [
        ("cn=dept-*", "cn=dept-sales,ou=groups,dc=example,dc=com", "dept-sales", true),
        ("CN=Dept-*", "cn=dept-sales,ou=groups,dc=example,dc=com", "Dept-Sales", true),
        ("cn=dept-*, ou=groups", "cn=dept-sales,ou=groups,dc=example,dc=com", "dept-sales", true),
        ("cn=dept-*,ou=other", "cn=dept-sales,ou=groups,dc=example,dc=com", "dept-sales", false),
        ("cn=dept-*", "cn=sales,ou=dept-x,dc=example,dc=com", "sales", false),
        ("dept-*", "cn=dept-hr,ou=groups,dc=example,dc=com", "dept-hr", true),
        ("*-leads", "cn=sales-leads,ou=groups,dc=example,dc=com", "sales-leads", true),
        ("dept-*", "cn=sales,ou=groups,dc=example,dc=com", "sales", false),
        ("cn=*", "cn=anything,dc=x", "anything", true),
    ])
    func patterns(pattern: String, dn: String, cn: String, expected: Bool) {
        #expect(GroupPattern(pattern).matches(groupDN: dn, cn: cn) == expected)
    }

    @Test("mapUser renders the fields, the external id and the disabled state")
    func mapUser() throws {
        let mapping = try Self.mapping()
        var locked = Self.ada
        locked.values["pwdaccountlockedtime"] = [Array("20250101000000Z".utf8)]
        let mapped = try mapping.mapUser(locked).get()
        #expect(mapped.email == "ada@example.com")
        #expect(mapped.externalID == "6d1c3e5a-0000-4000-8000-000000000001")
        #expect(mapped.disabled)
        #expect(try !mapping.mapUser(Self.bob).get().disabled)
    }

    @Test("an entry without email or id is a reported skip, not an error")
    func skips() throws {
        let mapping = try Self.mapping()
        var noMail = Self.bob
        noMail.values["mail"] = nil
        #expect(mapping.mapUser(noMail) == .failure(.missingEmail(dn: Self.bob.dn, template: "{mail | lower}")))
        var noID = Self.bob
        noID.values["entryuuid"] = nil
        #expect(mapping.mapUser(noID) == .failure(.missingID(dn: Self.bob.dn, attribute: "entryuuid")))
    }

    @Test("attributesToRead lists what templates, id, disabled and rule filters read")
    func attributesToRead() throws {
        let mapping = try Self.mapping()
        #expect(mapping.attributesToRead == ["entryuuid", "mail", "pwdaccountlockedtime", "departmentnumber"])
        #expect(mapping.groupAttributesToRead == ["cn", "member", "description"])
    }
}
