import Foundation
import GRDB
import Logging
import Testing
@testable import DirBridgeCore

/// The pieces that spread a sync over two cores, without a server: their order and results
/// must be those of the plain loop they replace.
@Suite("Pipeline helpers")
struct PipelineUnitTests {
    @Test("BackgroundRelease frees the value on another thread, once, and leaves the caller nothing")
    func backgroundRelease() {
        final class Tracked: @unchecked Sendable {
            let freed: DispatchSemaphore
            let thread: UnsafeMutablePointer<pthread_t?>
            init(_ freed: DispatchSemaphore, _ thread: UnsafeMutablePointer<pthread_t?>) { (self.freed, self.thread) = (freed, thread) }
            deinit {
                thread.pointee = pthread_self()
                freed.signal()
            }
        }
        let freed = DispatchSemaphore(value: 0)
        let thread = UnsafeMutablePointer<pthread_t?>.allocate(capacity: 1)
        defer { thread.deallocate() }
        thread.initialize(to: nil)
        var value: [Tracked]? = [Tracked(freed, thread)]
        BackgroundRelease.release(&value)
        #expect(value == nil)
        #expect(freed.wait(timeout: .now() + 120) == .success)
        #expect(thread.pointee.map { pthread_equal($0, pthread_self()) == 0 } == true)
        #expect(freed.wait(timeout: .now()) == .timedOut)
        var none: [Tracked]? = nil
        BackgroundRelease.release(&none)
        #expect(none == nil)
    }

    @Test("concurrentMap gives map's result, in order, for short and long arrays and uneven chunks")
    func concurrentMapKeepsOrder() {
        for count in [0, 1, 99, 100, 201, 10_007] {
            let items = Array(0..<count)
            #expect(items.concurrentMap(minimumChunk: 100) { $0 * 3 + 1 } == items.map { $0 * 3 + 1 })
        }
    }

    @Test("PageMapper maps pages in the order they are submitted, and finish waits for the last")
    func pageMapperKeepsOrder() {
        let mapper = PageMapper([String]()) { seen, page in
            for entry in page { seen.append(entry.dn) }
        }
        var expected: [String] = []
        for page in 0..<50 {
            let entries = (0..<20).map { EntryAttributes(dn: "uid=u\(page)-\($0)", values: [:]) }
            expected += entries.map(\.dn)
            mapper.submit(entries)
        }
        #expect(mapper.finish() == expected)
    }

    @Test("each portal field's slot is its position in allCases")
    func fieldSlots() {
        for (offset, field) in PortalField.allCases.enumerated() {
            #expect(field.slot == offset, "\(field)")
        }
    }

    @Test("a user read by position equals the same row read by name")
    func orderedRowMatchesNamedRow() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(clientID: client.id, userCreations: [
                NewClientUser(email: "a@acme.example", fields: [.firstName: "Ann", .lastName: "Lee", .title: "CTO", .cellPhone: "1",
                                                                .officePhone: "2", .extension: "3", .location: "Oslo"],
                              role: "Admin", globalAdmin: true, hasLogin: true, externalID: "ext-a", externalDN: "uid=a,dc=x"),
                NewClientUser(email: "b@acme.example", enabled: false, source: .portal),
            ]),
            run: applyRun(clientID: client.id))
        let byName = try temp.sql().read { db in try StoredUser.fetchAll(db, sql: "SELECT * FROM client_users ORDER BY id") }
        let byPosition = try store.loadState(clientID: client.id).users
        #expect(byPosition.count == 2)
        #expect(byPosition == byName)
    }

    @Test("concurrentMap with a context: each chunk's state runs through its elements in order, and extra capacity is room only")
    func concurrentMapWithContext() {
        // Uneven parts: with a chunk of 1, 5 elements on 4 cores leave the last part past the end.
        #expect(Array(0..<5).concurrentMap(minimumChunk: 1, context: {}) { _, item in item } == Array(0..<5))
        for count in [0, 1, 150, 10_007] {
            let items = Array(0..<count)
            // The context counts the elements its chunk has seen: within a chunk they come in order.
            let mapped = items.concurrentMap(minimumChunk: 100, extraCapacity: 7, context: { [Int]() }) { seen, item -> Int in
                let previous = seen.last ?? item - 1
                seen.append(item)
                return item - previous
            }
            #expect(mapped == Array(repeating: 1, count: count))
            #expect(mapped.capacity >= count + 7)
        }
    }

    @Test("a sharing pool hands back its first copy of equal strings and arrays")
    func stringPoolShares() {
        var pool = StringPool()
        let first = pool.shared(String(repeating: "sales-emea-", count: 3))
        let second = pool.shared(String(repeating: "sales-emea-", count: 3))
        #expect(first == second)
        #expect(first.utf8.withContiguousStorageIfAvailable { $0.baseAddress } == second.utf8.withContiguousStorageIfAvailable { $0.baseAddress })
        #expect(pool.shared("other") == "other")

        var arrays = SharingPool<[Int]>()
        let one = arrays.shared(Array(0..<10)), two = arrays.shared(Array(0..<10))
        #expect(one == two)
        #expect(one.withUnsafeBufferPointer { $0.baseAddress } == two.withUnsafeBufferPointer { $0.baseAddress })
    }

    /// A created user with every kind of attribute: text fields, flags, a role and the link.
    private static let created = PortalUser(
        email: "ann@acme.example", fields: [.firstName: "Ann", .title: "CTO"], role: "Admin", globalAdmin: true, hasLogin: true,
        externalID: "id-1", externalDN: "uid=ann,dc=a")

    /// The changes of a creation, listed one by one as before creations were held as their user.
    private static func listed(_ user: PortalUser, userGroup: String) -> AttributeChanges {
        var changes = AttributeChanges()
        for attribute in UserAttribute.allCases where attribute != .source {
            if let value = attribute == .userGroup ? .text(userGroup) : user[attribute] { changes[attribute] = FieldChange(old: nil, new: value) }
        }
        return changes
    }

    @Test("a creation held as its user reads, counts, encodes and changes like the list of its attributes")
    func creationStorageIsTheList() throws {
        let compact = AttributeChanges(creating: Self.created, userGroup: "Sales")
        let list = Self.listed(Self.created, userGroup: "Sales")
        #expect(compact.creation != nil && list.creation == nil)
        #expect(compact == list)
        #expect(Array(compact) == Array(list))
        #expect(compact.count == list.count && compact.count == 11)
        #expect(compact.attributes == list.attributes)
        #expect(!compact.isEmpty)
        for attribute in UserAttribute.allCases {
            #expect(compact[attribute] == list[attribute], "\(attribute)")
        }
        #expect(compact[.source] == nil && compact[.field(.cellPhone)] == nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(try encoder.encode(compact) == encoder.encode(list))

        // A change to a creation (a protected user's withheld flag, say) turns it into the list, changed.
        var changed = compact, changedList = list
        #expect(changed.removeValue(forKey: .globalAdmin) == FieldChange(old: nil, new: .flag(true)))
        changedList[.globalAdmin] = nil
        changed[.field(.location)] = .text(nil, "Oslo")
        changedList[.field(.location)] = .text(nil, "Oslo")
        #expect(changed.creation == nil)
        #expect(changed == changedList)
        #expect(Array(changed).map(\.attribute) == Array(changedList).map(\.attribute))
    }

    @Test("a change set made from a planned creation equals one made from the same creation read back from a saved plan")
    func changeSetFromCompactCreation() throws {
        let change = PlannedUserChange(
            action: .create, historyAction: .created, email: Self.created.email, userID: nil, externalID: Self.created.externalID,
            dn: Self.created.externalDN, fields: AttributeChanges(creating: Self.created, userGroup: "Sales"),
            reasons: ["new in the directory: uid=ann,dc=a", "rule 1 (line 9): user_group = Sales"], invite: true)
        var plan = try World().plan([])
        plan.userChanges = [change]
        let saved = try JSONDecoder().decode(Plan.self, from: JSONEncoder().encode(plan))
        #expect(saved.userChanges[0].fields.creation == nil)
        let direct = ChangeSet(plan: plan, clientID: 1, editor: "dirbridge")
        let fromSaved = ChangeSet(plan: saved, clientID: 1, editor: "dirbridge")
        #expect(direct == fromSaved)
        let user = try #require(direct.userCreations.first)
        #expect(user.user == Self.created && user.userGroupName == "Sales" && user.invite)
        #expect(user.reason == "new in the directory: uid=ann,dc=a\nrule 1 (line 9): user_group = Sales")
    }

    @Test("an index of cached groups for a few users finds their memberships whether member values are canonical or not")
    func groupIndexMemberFilter() throws {
        let mapping = try Self.mapping(members: "[member]")
        let groups = [
            EntryAttributes(dn: "cn=sales,ou=groups,dc=a", strings: ["cn": ["sales"], "member": [
                "UID=Ann,OU=People,DC=a", "uid=bob,ou=people,dc=a", "uid=carl,ou=people,dc=a", "cn=emea,ou=groups,dc=a"]]),
            EntryAttributes(dn: "cn=EMEA,ou=groups,dc=a", strings: ["cn": ["emea"], "member": ["uid=dora,ou=people,dc=a"]]),
        ]
        let wanted: Set<String> = ["uid=ann,ou=people,dc=a", "uid=bob,ou=people,dc=a", "uid=dora,ou=people,dc=a"]
        var filtered = GroupIndex(mapping: mapping, groups: groups, members: wanted)
        var whole = GroupIndex(mapping: mapping, groups: groups)
        for dn in ["uid=Ann,ou=people,dc=a", "uid=bob,ou=people,dc=a", "uid=dora,ou=people,dc=a"] {
            let user = EntryAttributes(dn: dn, values: [:])
            let memberships = filtered.memberships(of: user)
            #expect(!memberships.isEmpty, "\(dn)")
            #expect(memberships == whole.memberships(of: user), "\(dn)")
        }
        // Dora is in EMEA directly and in sales through it: nesting survives the filter.
        #expect(Set(filtered.memberships(of: EntryAttributes(dn: "uid=dora,ou=people,dc=a", values: [:])).map(\.cn)) == ["emea", "sales"])
    }

    @Test("GroupsByMember: one group held inline, several in order, an unknown member none")
    func groupsByMember() {
        var index = GroupsByMember()
        index.add("uid=a", group: 3)
        index.add("uid=b", group: 1)
        index.add("uid=b", group: 7)
        index.add("uid=b", group: 2)
        index.add("uid=c", group: 5)
        index.add("uid=c", group: 5)  // listed twice (member and uniqueMember): kept twice, as before
        index.add("uid=d", group: 0)
        index.add("uid=d", group: 4)
        #expect(Array(index.groups(of: "uid=a")) == [3])
        #expect(Array(index.groups(of: "uid=b")) == [1, 7, 2])
        #expect(Array(index.groups(of: "uid=c")) == [5, 5])
        #expect(Array(index.groups(of: "uid=d")) == [0, 4])
        #expect(Array(index.groups(of: "uid=nobody")).isEmpty)
        #expect(Set(index.groups(of: "uid=b")) == [1, 2, 7])
    }

    /// The users kept and skipped, as the snapshot builder notes each user's lowercased email.
    private func removeDuplicateEmails(_ users: [DirectoryUser]) -> ([DirectoryUser], [SkippedEntry]) {
        var emails = DuplicateEmails(capacity: users.count)
        for (position, user) in users.enumerated() { emails.add(user.mapped.email.lowercasedSharingStorage, at: position) }
        return emails.remove(from: users)
    }

    @Test("entries sharing an email (any case) are all skipped, the others kept in order")
    func duplicateEmails() {
        func user(_ uid: String, _ email: String) -> DirectoryUser {
            DirectoryUser(mapped: MappedFields(dn: "uid=\(uid),ou=people,dc=a", externalID: uid, fields: [.email: email], disabled: false),
                          outcome: RuleOutcome(userGroup: "Default User Group", role: "Guest", globalAdmin: false, groupManager: false, decisions: []))
        }
        let users = [user("a", "a@example.com"), user("s1", "s@example.com"), user("b", "b@example.com"), user("s2", "S@Example.com"),
                     user("c", "c@example.com"), user("s3", "s@example.com"), user("t1", "Ünal@example.com"), user("t2", "ünal@example.com"),
                     user("n1", "jos\u{00E9}@example.com"), user("n2", "jose\u{0301}@example.com")]
        let (kept, skipped) = removeDuplicateEmails(users)
        #expect(kept.map(\.mapped.externalID) == ["a", "b", "c"])
        #expect(skipped.map(\.externalID) == ["n1", "n2", "s1", "s2", "s3", "t1", "t2"])
        // An NFC and an NFD spelling are one email, named as first spelled (NFC here), byte for byte.
        #expect(skipped[0].reason.utf8.starts(with: "duplicate email jos\u{00E9}@example.com (also".utf8))
        #expect(skipped[2].reason == "duplicate email s@example.com (also uid=s2,ou=people,dc=a; uid=s3,ou=people,dc=a); skipped, none chosen")
        #expect(skipped[5].reason.hasPrefix("duplicate email ünal@example.com (also uid=t2,ou=people,dc=a)"))
        #expect(removeDuplicateEmails(Array(users.prefix(1))).1.isEmpty)
    }

    /// A mapping of users under ou=people,dc=a and nested groups under ou=groups,dc=a.
    private static func mapping(members: String, rules: String = "") throws -> Mapping {
        try MappingLoader.load(yaml: """
            client: Acme
            directory: { url: "ldap://127.0.0.1:1", bind_dn: "cn=x,dc=a", bind_password_env: X }
            users: { base: "ou=people,dc=a", id: entryUUID, fields: { email: mail } }
            groups: { base: "ou=groups,dc=a", members: \(members), nested: true }
            """ + rules, file: "acme.yaml", baseDirectory: "/tmp", environment: [:])
    }

    @Test("users alike in memberships and filter answers share one outcome, equal to evaluating the rules for each user")
    func outcomesAreSharedOnlyWhenAlike() throws {
        let mapping = try Self.mapping(members: "[member, memberOf]", rules: """

            rules:
              - filter: (title=Manager)
                group_manager: true
                user_group: Sales
              - group: cn=emea,ou=groups,dc=a
                role: Editor
              - groups: cn=dept-*
                user_group: '{cn | trimprefix("dept-")}'
              - group: cn=outside,ou=elsewhere,dc=a
                global_admin: true
            """)
        let groups = [
            EntryAttributes(dn: "cn=dept-sales,ou=groups,dc=a", strings: ["cn": ["dept-sales"], "member": [
                "uid=a,ou=people,dc=a", "uid=b,ou=people,dc=a", "uid=c,ou=people,dc=a", "cn=emea,ou=groups,dc=a"]]),
            EntryAttributes(dn: "cn=emea,ou=groups,dc=a", strings: ["cn": ["emea"], "member": ["uid=d,ou=people,dc=a", "uid=e,ou=people,dc=a"]]),
            EntryAttributes(dn: "cn=dept-hr,ou=groups,dc=a", strings: ["cn": ["dept-hr"], "member": ["uid=f,ou=people,dc=a", "uid=e,ou=people,dc=a"]]),
        ]
        func user(_ uid: String, title: String? = nil, memberOf: [String] = []) -> EntryAttributes {
            var strings = ["entryuuid": [uid], "mail": ["\(uid)@example.com"], "memberof": memberOf]
            if let title { strings["title"] = [title] }
            return EntryAttributes(dn: "uid=\(uid),ou=people,dc=a", strings: strings)
        }
        let entries = [
            user("a"), user("b"), user("c", title: "Manager"), // one group; c also matches the filter
            user("d"), user("e"), user("f"), user("g"),         // nested, two groups, another group, none
            user("h", memberOf: ["cn=outside,ou=elsewhere,dc=a"]), user("i", title: "Manager"),
            user("j", memberOf: ["cn=dept-hr,ou=groups,dc=a"]),  // memberOf naming a group read: as a member
        ]
        var builder = SnapshotBuilder(mapping: mapping, index: GroupIndex(mapping: mapping, groups: groups))
        for entry in entries { builder.add(user: entry) }
        let snapshot = builder.finish(entriesRead: entries.count, references: 0, logger: Logger(label: "test"))
        var fresh = GroupIndex(mapping: mapping, groups: groups)
        let evaluator = RuleEvaluator(rules: mapping.rules)
        #expect(snapshot.users.count == entries.count)
        for (entry, user) in zip(entries, snapshot.users) {
            #expect(user.outcome == evaluator.evaluate(user: entry, memberships: fresh.memberships(of: entry)), "\(entry.dn)")
        }
        let outcome = Dictionary(uniqueKeysWithValues: snapshot.users.map { ($0.mapped.externalID, $0.outcome) })
        #expect(outcome["a"] == outcome["b"] && outcome["a"]?.userGroup == "sales" && outcome["a"]?.role == "Guest")
        // Alike users hold one outcome: the same decisions' storage, not equal copies.
        let storage = { (id: String) in outcome[id]?.decisions.withUnsafeBufferPointer { $0.baseAddress } }
        #expect(storage("a") != nil && storage("a") == storage("b") && storage("j") == storage("f"))
        #expect(outcome["d"]?.userGroup == "sales" && outcome["d"]?.role == "Editor")
        #expect(outcome["c"] != outcome["a"] && outcome["c"]?.userGroup == "Sales" && outcome["c"]?.groupManager == true)
        #expect(outcome["i"]?.userGroup == "Sales" && outcome["g"]?.userGroup == defaultUserGroupName)
        #expect(outcome["h"]?.globalAdmin == true && outcome["g"]?.globalAdmin == false)
        #expect(outcome["j"] == outcome["f"] && outcome["j"]?.userGroup == "hr")
        #expect(outcome["e"]?.role == "Editor" && outcome["e"]?.userGroup == "hr")
    }
}
