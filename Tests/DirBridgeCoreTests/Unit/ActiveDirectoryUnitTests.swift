import Foundation
import Testing
@testable import DirBridgeCore

@Suite("Active Directory pieces without a server")
struct ActiveDirectoryUnitTests {
    @Test("ranged attribute descriptions parse; anything else is not ranged", arguments: [
        ("member;range=0-1499", RangedAttribute(attribute: "member", first: 0, last: 1499)),
        ("member;range=1500-*", RangedAttribute(attribute: "member", first: 1500, last: nil)),
        ("Member;Range=0-*", RangedAttribute(attribute: "member", first: 0, last: nil)),
        ("member;binary;range=10-19", RangedAttribute(attribute: "member;binary", first: 10, last: 19)),
        ("member", nil), ("member;range=", nil), ("member;range=5-4", nil), ("member;range=a-*", nil),
        ("member;range=0-1-2", nil), (";range=0-*", nil), ("member;range=-1-5", nil),
    ] as [(String, RangedAttribute?)])
    func rangedAttributeParsing(description: String, expected: RangedAttribute?) {
        #expect(RangedAttribute(description) == expected)
    }

    @Test("following ranges are asked for in turn and appended once; a plain answer or none ends them; a range that starts elsewhere is an error")
    func followingRanges() throws {
        func values(_ range: ClosedRange<Int>) -> [[UInt8]] { range.map { Array("member \($0)".utf8) } }
        typealias Answer = (values: [[UInt8]], range: RangedAttribute?)?
        func complete(_ answers: [String: Answer]) throws -> (values: [[UInt8]], asked: [String]) {
            var asked: [String] = []
            let all = try DirectoryConnection.allValues(
                of: RangedAttribute(attribute: "member", first: 0, last: 2), received: values(0...2), operation: "range retrieval of member"
            ) { request in
                asked.append(request)
                return answers[request] ?? nil
            }
            return (all, asked)
        }
        // Ranges of three until the server answers *.
        let whole = try complete([
            "member;range=3-5": (values(3...5), RangedAttribute(attribute: "member", first: 3, last: 5)),
            "member;range=6-8": (values(6...7), RangedAttribute(attribute: "member", first: 6, last: nil)),
        ])
        #expect(whole.values == values(0...7) && whole.asked == ["member;range=3-5", "member;range=6-8"])
        // The plain attribute: all the rest at once. No attribute: nothing past the last range.
        let plain = try complete(["member;range=3-5": (values(3...9), nil)])
        #expect(plain.values == values(0...9) && plain.asked == ["member;range=3-5"])
        let none = try complete([:])
        #expect(none.values == values(0...2) && none.asked == ["member;range=3-5"])
        // A range that starts past the one asked for (values missing) or repeats one (no end).
        for answer in [RangedAttribute(attribute: "member", first: 4, last: 6), RangedAttribute(attribute: "member", first: 0, last: 2)] {
            #expect {
                _ = try complete(["member;range=3-5": (values(answer.first...answer.last!), answer)])
            } throws: { error in
                (error as? DirectoryError)?.diagnostic == "asked for member;range=3-5, the server answered range \(answer.first)-\(answer.last!)"
            }
        }
    }

    @Test("the next range keeps the size; the last range has none")
    func nextRange() throws {
        #expect(RangedAttribute.request("member", from: 0, size: 1500) == "member;range=0-1499")
        #expect(RangedAttribute.request("member", from: 1500, size: nil) == "member;range=1500-*")
        #expect(try #require(RangedAttribute("member;range=0-1499")).next == "member;range=1500-2999")
        #expect(try #require(RangedAttribute("member;range=500-999")).next == "member;range=1000-1499")
        #expect(try #require(RangedAttribute("member;range=1500-*")).next == nil)
        #expect(try #require(RangedAttribute("member;range=1500-*")).isFinal)
    }

    @Test("objectGUID renders in AD's text form: first three fields byte-swapped")
    func objectGUIDText() throws {
        // Read from Samba as `objectGUID:: Evs5/eIa9Em6R35Pw4hoEg==`; Python's uuid.UUID(bytes_le=…) agrees.
        let bytes = try #require(Data(base64Encoded: "Evs5/eIa9Em6R35Pw4hoEg==")).map { $0 }
        let entry = EntryAttributes(dn: "CN=x", values: ["objectguid": [bytes]])
        #expect(Mapping.externalID(entry, attribute: "objectguid") == "fd39fb12-1ae2-49f4-ba47-7e4fc3886812")
    }

    @Test("a group's RID comes from primaryGroupToken, else the last sub-authority of objectSid")
    func primaryGroupRID() throws {
        // S-1-5-21-905273011-3411470866-3009051773-513: Domain Users.
        let sid = try #require(Data(base64Encoded: "AQUAAAAAAAUVAAAAs171NRLqVst9fFqzAQIAAA==")).map { $0 }
        #expect(PrimaryGroups.relativeID(fromSID: sid) == 513)
        #expect(PrimaryGroups.text(ofSID: sid) == "S-1-5-21-905273011-3411470866-3009051773-513")
        #expect(PrimaryGroups.relativeID(ofGroup: EntryAttributes(dn: "CN=g", values: ["objectsid": [sid]])) == 513)
        #expect(PrimaryGroups.relativeID(ofGroup: EntryAttributes(dn: "CN=g", strings: ["primaryGroupToken": ["1105"]])) == 1105)
        #expect(PrimaryGroups.relativeID(fromSID: Array(sid.dropLast())) == nil)
        #expect(PrimaryGroups.relativeID(fromSID: [1, 0, 0, 0, 0, 0, 0, 5]) == nil)
        #expect(PrimaryGroups.primaryGroupID(of: EntryAttributes(dn: "CN=u", strings: ["primaryGroupID": ["513"]])) == 513)
    }

    @Test("users whose primaryGroupID is a group's RID are its members, nested groups above it too")
    func primaryGroupMembership() throws {
        let mapping = Mapping(
            file: "t.yaml", client: ClientSettings(name: "T"), directory: DirectoryConfiguration(urls: ["ldap://x"]),
            users: UsersSection(base: "DC=t", id: "objectGUID", fields: [.email: try FieldTemplate.compile("mail", bareNameIsAttribute: true)]),
            groups: GroupsSection(base: "DC=t"))
        #expect(mapping.readsPrimaryGroups)
        #expect(mapping.attributesToRead.contains("primarygroupid"))
        #expect(mapping.groupAttributesToRead.suffix(2) == ["objectsid", "primarygrouptoken"])
        var index = GroupIndex(mapping: mapping)
        index.add(EntryAttributes(dn: "CN=Domain Users,CN=Users,DC=t", strings: ["cn": ["Domain Users"], "primaryGroupToken": ["513"]]))
        index.add(EntryAttributes(dn: "CN=Users,CN=Builtin,DC=t", strings: ["cn": ["Users"], "member": ["CN=Domain Users,CN=Users,DC=t"]]))
        index.link()
        let user = EntryAttributes(dn: "CN=u,DC=t", strings: ["primaryGroupID": ["513"]])
        #expect(index.memberships(of: user).map(\.groupDN) == ["cn=domain users,cn=users,dc=t", "cn=users,cn=builtin,dc=t"])
        let other = EntryAttributes(dn: "CN=v,DC=t", strings: ["primaryGroupID": ["1105"]])
        #expect(index.memberships(of: other).isEmpty)
        var off = mapping
        off.groups?.primaryGroup = false
        #expect(!off.readsPrimaryGroups)
        #expect(!off.attributesToRead.contains("primarygroupid"))
    }

    @Test("the incremental cache keys an AD group by objectGUID, so a renamed group stays one entry")
    func groupCacheKey() throws {
        let mapping = try MappingLoader.load(yaml: Self.base, file: "t.yaml", baseDirectory: "/tmp")
        let guid = try #require(Data(base64Encoded: "Evs5/eIa9Em6R35Pw4hoEg==")).map { $0 }
        let group = EntryAttributes(dn: "CN=Old Name,OU=Groups,DC=acme,DC=example", values: ["objectguid": [guid]])
        var renamed = group
        renamed.dn = "CN=New Name,OU=Groups,DC=acme,DC=example"
        #expect(DirectoryCacheCollector.key(of: group, kind: .group, mapping: mapping) == "guid:fd39fb12-1ae2-49f4-ba47-7e4fc3886812")
        #expect(DirectoryCacheCollector.key(of: renamed, kind: .group, mapping: mapping) == DirectoryCacheCollector.key(of: group, kind: .group, mapping: mapping))
        #expect(DirectoryCacheCollector.key(of: EntryAttributes(dn: "cn=g,ou=x", values: [:]), kind: .group, mapping: mapping) == "dn:cn=g,ou=x")
    }

    @Test("the in-chain filter wraps the users filter and escapes the group DN")
    func inChainFilter() {
        #expect(InChainMembership.filter(users: "(objectClass=user)", groupDN: "CN=R\\2cD (EU),OU=G")
            == "(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=R\\5c2cD \\28EU\\29,OU=G))")
        #expect(InChainMembership.filter(users: "objectClass=user", groupDN: "CN=G").hasPrefix("(&(objectClass=user)(memberOf:"))
    }

    /// A minimal AD mapping: objectGUID as the id, groups at the domain root; a line appended to it is line 11.
    static let base = MappingLoaderTests.minimal.replacingOccurrences(of: "id: entryUUID", with: "id: objectGUID")
        + "\ngroups:\n  base: DC=acme,DC=example\n"

    @Test("groups.nested takes true, false, client or server; true keeps meaning the client walk", arguments: [
        ("true", true, NestedResolution.client), ("false", false, .client), ("client", true, .client), ("server", true, .server),
        ("Server", true, .server),
    ])
    func nestedKey(value: String, nested: Bool, resolution: NestedResolution) throws {
        let mapping = try MappingLoader.load(yaml: Self.base + "  nested: \(value)\n", file: "t.yaml", baseDirectory: "/tmp")
        #expect(mapping.groups?.nested == nested)
        #expect(mapping.groups?.nestedResolution == resolution)
    }

    @Test("groups.range and groups.primary_group load; bad values are errors with their line")
    func rangeAndPrimaryGroupKeys() throws {
        let mapping = try MappingLoader.load(yaml: Self.base + "  range: 1500\n  primary_group: false\n", file: "t.yaml", baseDirectory: "/tmp")
        #expect(mapping.groups?.rangeSize == 1500)
        #expect(mapping.groups?.primaryGroup == false)
        #expect(!mapping.readsPrimaryGroups)
        let defaults = try MappingLoader.load(yaml: Self.base, file: "t.yaml", baseDirectory: "/tmp")
        #expect(defaults.groups?.rangeSize == nil)
        #expect(defaults.readsPrimaryGroups)   // id: objectGUID
        for (line, message) in [("  nested: sometimes", "`nested` must be true, false"), ("  range: 0", "`range` must be at least 1"),
                                ("  primary_group: maybe", "`primary_group` must be true or false")] {
            do {
                _ = try MappingLoader.load(yaml: Self.base + line + "\n", file: "t.yaml", baseDirectory: "/tmp")
                Issue.record("\(line) was accepted")
            } catch {
                #expect(error.issues.map { (issue: MappingIssue) in issue.message }.contains { $0.hasPrefix(message) }, "\(error.issues)")
                #expect(error.issues.first?.line == 11)
            }
        }
    }
}
