import Foundation
import Testing
@testable import DirBridgeCore

/// Builds a mapping, a store state and directory users in memory: the planner is pure. Also used by the plan document and report tests.
struct World {
    var mapping: Mapping
    var users: [StoredUser] = []
    var groups: [StoredUserGroup] = [StoredUserGroup(id: 1, clientID: 1, name: "Default User Group", isDefault: true, source: .portal, externalID: nil, createdAt: "2026-01-01T00:00:00Z"),
                                     StoredUserGroup(id: 2, clientID: 1, name: "Sales", isDefault: false, source: .directory, externalID: nil, createdAt: "2026-01-01T00:00:00Z")]

    init(protected: [String] = [], maxDisable: String = "2", adopt: String = "none") throws {
        let yaml = """
            client: Acme
            directory: { url: "ldap://127.0.0.1:1", bind_dn: "cn=x,dc=a", bind_password_env: X }
            users:
              base: ou=people,dc=a
              id: entryUUID
              fields: { email: mail, title: title }
              disabled: (locked=TRUE)
              login: invite
              adopt_existing: \(adopt)
            deprovision: { max_disable: \(maxDisable), max_demote: 1, protected: [\(protected.joined(separator: ", "))] }
            """
        mapping = try MappingLoader.load(yaml: yaml, file: "acme.yaml", baseDirectory: "/tmp", environment: [:])
    }

    mutating func stored(_ id: Int64, _ email: String, group: Int64 = 1, ga: Bool = false, gm: Bool = false, role: String = "Guest",
                         enabled: Bool = true, title: String? = nil, source: RecordSource = .directory) {
        users.append(StoredUser(id: id, clientID: 1, email: email, fields: PortalFieldValues(title.map { [.title: $0] } ?? [:]), role: role, userGroupID: group, globalAdmin: ga, groupManager: gm, hasLogin: true,
                                enabled: enabled, source: source, externalID: source == .directory ? "id-\(id)" : nil,
                                externalDN: source == .directory ? "uid=\(id),ou=people,dc=a" : nil, createdAt: "", updatedAt: ""))
    }

    var state: ClientState {
        ClientState(client: ClientRecord(id: 1, name: "Acme", parentID: nil, membershipEndDate: nil, active: true, createdAt: ""),
                    userGroups: groups, users: users)
    }

    func directoryUser(_ id: Int64, _ email: String, title: String? = nil, group: String = "Default User Group", ga: Bool = false,
                       disabled: Bool = false) -> DirectoryUser {
        var fields: PortalFieldValues = [.email: email]
        if let title { fields[.title] = title }
        return DirectoryUser(
            mapped: MappedFields(dn: "uid=\(id),ou=people,dc=a", externalID: "id-\(id)", fields: fields, disabled: disabled),
            outcome: RuleOutcome(userGroup: group, role: "Guest", globalAdmin: ga, groupManager: false, decisions: []))
    }

    func plan(_ directory: [DirectoryUser], read: Int? = nil) -> Plan {
        // No skipped entries: the users' own ids are present by being users.
        let snapshot = DirectorySnapshot(users: directory, skipped: [], presentIDs: [],
                                         entriesRead: read ?? directory.count, userEntries: read ?? directory.count, groupsRead: 0, references: 0)
        return Planner(mapping: mapping).plan(snapshot: snapshot, state: state)
    }
}

@Suite("Planner: the diff and the guards, without a server")
struct PlannerTests {
    @Test("creations are ordered by email as a String sort orders them, ASCII prefixes compared first")
    func emailOrderWithPrefixes() {
        // Shared and short prefixes, equal prefixes of other lengths, a NUL-free tie at eight
        // bytes, non-ASCII emails (precomposed and decomposed accents, a combining accent right
        // after the eighth byte), duplicates.
        var emails = ["a@x", "ab@x", "aarav.allen1@x", "aarav.allen10@x", "aarav.allen2@x", "aarav.al@x", "aarav.al", "aarav.a",
                      "zoe@x", "élise@x", "e\u{301}lise@x", "elise@x", "aarav.ale\u{301}@x", "aarav.alé@x", "aarav.ald@x", "ärzte@x",
                      "", "~tilde@x", "0digit@x", "aarav.allen1@x", "_under@x", "Aarav.allen@x", "aarav.allenn"]
        // And many generated ones, sharing their first bytes in groups.
        for index in 0..<500 { emails.append("user.\(String(index % 7, radix: 2))\(index)@bench.example") }
        // Ties in the first sixteen bytes, decided later.
        for index in 0..<100 { emails.append("aarav.allen.smith\(index % 13)\(index)@bench.example") }
        let fast = String.orderedPositions(emails).map { emails[$0] }
        let plain = emails.sorted()
        #expect(fast.count == plain.count)
        #expect(fast == plain)
        // Byte for byte as well where the strings are ASCII (no two spellings of one string).
        #expect(zip(fast, plain).allSatisfy { $0.asciiOrderPrefix == nil || $0.hasSameUTF8(as: $1) })
        #expect("aarav.alé@x".asciiOrderPrefix == nil && "e\u{301}".asciiOrderPrefix == nil)
        #expect("ab".asciiOrderPrefix.map { [$0.0, $0.1] } == [0x6162_0000_0000_0000, 0])
        #expect("abcdefghijklmnopq".asciiOrderPrefix.map { [$0.0, $0.1] } == [0x6162_6364_6566_6768, 0x696A_6B6C_6D6E_6F70])
    }

    @Test("an id is present when a user or a skipped entry has it: a skipped entry's user is kept, an email whose owner is still present is not taken over, a gone owner comes back")
    func presentIDs() throws {
        var world = try World(maxDisable: "100%")
        world.stored(1, "a@acme.example")
        world.stored(2, "b@acme.example")
        world.stored(3, "c@acme.example")
        // Entry 9 has b's email and comes first; b's own entry (id-2) is still there, later on:
        // entry 9 is skipped, not b re-keyed. c's entry is skipped (say, no usable email): c stays.
        // a's entry is gone and entry 8 has its email: a comes back with the new id.
        let directory = [world.directoryUser(9, "b@acme.example"), world.directoryUser(8, "a@acme.example"), world.directoryUser(2, "b2@acme.example")]
        let snapshot = DirectorySnapshot(users: directory, skipped: [SkippedEntry(dn: "uid=3,ou=people,dc=a", reason: "no email", externalID: "id-3")],
                                         presentIDs: ["id-3"], entriesRead: 4, userEntries: 4, groupsRead: 0, references: 0)
        let plan = Planner(mapping: world.mapping).plan(snapshot: snapshot, state: world.state)
        #expect(plan.skipped.contains { $0.dn == "uid=9,ou=people,dc=a" && $0.reason.contains("belongs to another directory user") })
        #expect(!plan.userChanges.contains { $0.userID == 3 })
        let comeback = try #require(plan.userChanges.first { $0.userID == 1 })
        #expect(comeback.fields[.externalID]?.new?.text == "id-8")
        #expect(comeback.reasons.contains { $0.hasPrefix("back in the directory with a new") && $0.contains("(was id-1)") }, "\(comeback.reasons)")
        #expect(plan.userChanges.first { $0.userID == 2 }?.fields[.field(.email)]?.new?.text == "b2@acme.example")
        #expect(plan.summary.disable == 0)
    }

    @Test("an unchanged directory gives an empty plan; a changed title is one update with old and new")
    func diff() throws {
        var world = try World()
        world.stored(1, "a@acme.example", ga: true, title: "Boss")
        world.stored(2, "b@acme.example", title: "Clerk")
        #expect(world.plan([world.directoryUser(1, "a@acme.example", title: "Boss", ga: true), world.directoryUser(2, "b@acme.example", title: "Clerk")]).isEmpty)
        let plan = world.plan([world.directoryUser(1, "a@acme.example", title: "Boss", ga: true), world.directoryUser(2, "b@acme.example", title: "Chief Clerk")])
        #expect(plan.userChanges.count == 1)
        #expect(plan.userChanges[0].fields == [.field(.title): FieldChange(old: "Clerk", new: "Chief Clerk")])
        #expect(plan.userChanges[0].historyAction == .updated)
        #expect(plan.summary.line == "0 to create, 1 to update, 0 to disable, 1 unchanged of 2")
    }

    @Test("a rule's spelling of a user group in another case is the stored group, for every user; a new group spelled two ways is created once")
    func groupSpellings() throws {
        var world = try World()
        world.stored(1, "a@acme.example", group: 2)
        world.stored(2, "b@acme.example", group: 2)
        world.stored(3, "c@acme.example", group: 1)
        let directory = [
            world.directoryUser(1, "a@acme.example", group: "sales"), world.directoryUser(2, "b@acme.example", group: "SALES"),
            world.directoryUser(3, "c@acme.example", group: "sales"), world.directoryUser(4, "d@acme.example", group: "Sales"),
            world.directoryUser(5, "e@acme.example", group: "ops"), world.directoryUser(6, "f@acme.example", group: "Ops"),
        ]
        let plan = world.plan(directory)
        // Alice and Bob stay; Carol moves to the stored spelling; Dave is created in it; one Ops group (its first spelling).
        #expect(plan.userChanges.map(\.email) == ["d@acme.example", "e@acme.example", "f@acme.example", "c@acme.example"])
        #expect(plan.userChanges.first { $0.email == "c@acme.example" }?.fields[.userGroup] == FieldChange(old: "Default User Group", new: "Sales"))
        #expect(plan.userChanges.first { $0.email == "d@acme.example" }?.fields[.userGroup]?.new == "Sales")
        #expect(plan.groupCreations.map(\.name) == ["ops"])
        #expect(Set(plan.userChanges.compactMap { $0.email < "e" ? nil : $0.fields[.userGroup]?.new?.text }) == ["ops"])
        #expect(plan.summary.unchanged == 2)
    }

    @Test("history actions follow precedence", arguments: [
        ([.enabled: FieldChange(old: true, new: false), .field(.title): FieldChange(old: "a", new: "b")] as AttributeChanges, HistoryAction.disabled),
        ([.enabled: FieldChange(old: false, new: true)], .enabled),
        ([.userGroup: FieldChange(old: "A", new: "B"), .groupManager: FieldChange(old: true, new: false)], .groupChanged),
        ([.globalAdmin: FieldChange(old: false, new: true), .role: FieldChange(old: "Guest", new: "Admin")], .flagsChanged),
        ([.role: FieldChange(old: "Guest", new: "Admin")], .roleChanged),
        ([.field(.title): FieldChange(old: "a", new: "b")], .updated),
    ] as [(AttributeChanges, HistoryAction)])
    func precedence(_ fields: AttributeChanges, _ expected: HistoryAction) {
        #expect(Planner.classify(fields).1 == expected)
    }

    @Test("a new user is created with an invitation and counted per user group")
    func create() throws {
        var world = try World()
        world.stored(1, "a@acme.example", ga: true)
        let plan = world.plan([world.directoryUser(1, "a@acme.example", ga: true), world.directoryUser(3, "new@acme.example", group: "Sales"),
                               world.directoryUser(4, "disabled@acme.example", disabled: true)])
        #expect(plan.userChanges.map(\.email) == ["new@acme.example"])
        #expect(plan.userChanges[0].invite)
        #expect(plan.userChanges[0].fields[.userGroup]?.new == "Sales")
        #expect(plan.onboarding == [GroupOnboarding(userGroup: "Sales", new: 1, managers: 0)])
        #expect(plan.summary.invitations == 1)
    }

    @Test("missing users are disabled up to max_disable; beyond it the guard objects with the figures")
    func maxDisable() throws {
        var world = try World(maxDisable: "2")
        for id in 1...5 { world.stored(Int64(id), "u\(id)@acme.example", ga: id == 1) }
        let two = world.plan([1, 2, 3].map { world.directoryUser(Int64($0), "u\($0)@acme.example", ga: $0 == 1) })
        #expect(two.summary.disable == 2)
        #expect(two.guardViolations.isEmpty)
        let three = world.plan([1, 2].map { world.directoryUser(Int64($0), "u\($0)@acme.example", ga: $0 == 1) })
        #expect(three.guardViolations.map(\.guardName) == ["max_disable"])
        #expect(three.guardViolations[0].message.contains("3 users would be disabled, above max_disable 2"))
    }

    @Test("an empty read objects when the store has directory users; the last Global Admin is kept")
    func emptyReadAndLastAdmin() throws {
        var world = try World(maxDisable: "100%")
        world.stored(1, "a@acme.example", ga: true)
        world.stored(2, "b@acme.example")
        #expect(world.plan([], read: 0).guardViolations.map(\.guardName).contains("empty_read"))
        let noAdmin = world.plan([world.directoryUser(1, "a@acme.example"), world.directoryUser(2, "b@acme.example")])
        #expect(noAdmin.guardViolations.map(\.guardName) == ["last_global_admin"])
    }

    @Test("a protected user keeps access; a portal user is untouched unless adopted")
    func protectedAndPortal() throws {
        var world = try World(protected: ["a@acme.example"], maxDisable: "100%")
        world.stored(1, "a@acme.example", ga: true)
        world.stored(2, "b@acme.example", ga: true)
        world.stored(3, "portal@acme.example", title: "Portal", source: .portal)
        let plan = world.plan([world.directoryUser(2, "b@acme.example", ga: true), world.directoryUser(9, "portal@acme.example", title: "Directory")])
        #expect(plan.protectedKept.map(\.email) == ["a@acme.example"])
        #expect(!plan.userChanges.contains { $0.email == "a@acme.example" })
        #expect(plan.skipped.contains { $0.reason.contains("adopt_existing") })
        #expect(!plan.userChanges.contains { $0.userID == 3 })

        var adopting = try World(adopt: "email")
        adopting.stored(3, "portal@acme.example", title: "Portal", source: .portal)
        let adopted = adopting.plan([adopting.directoryUser(9, "portal@acme.example", title: "Directory")])
        #expect(adopted.userChanges.first?.historyAction == .linked)
        #expect(adopted.userChanges.first?.fields[.field(.title)] == FieldChange(old: "Portal", new: "Directory"))
        #expect(adopted.userChanges.first?.fields[.externalID]?.new == "id-9")
    }

    @Test("the text plan groups by action with + ~ - lines, reasons and the summary; an empty plan says so")
    func rendering() throws {
        var world = try World(maxDisable: "100%")
        world.stored(1, "a@acme.example", ga: true, title: "Boss")
        world.stored(2, "gone@acme.example")
        let text = PlanText.render(world.plan([world.directoryUser(1, "a@acme.example", title: "CEO", ga: true), world.directoryUser(5, "n@acme.example")]))
        #expect(text.contains("Users to create (1):\n  + n@acme.example"))
        #expect(text.contains("  ~ a@acme.example\n      title: \"Boss\" → \"CEO\""))
        #expect(text.contains("Users to disable (1):\n  - gone@acme.example\n      why: not in the directory any more"))
        // The line adds up: the user gone from the directory is one of the 3 it speaks of.
        #expect(text.contains("1 to create, 1 to update, 1 to disable, 0 unchanged of 3"))
        let empty = PlanText.render(world.plan([world.directoryUser(1, "a@acme.example", title: "Boss", ga: true), world.directoryUser(2, "gone@acme.example")]))
        #expect(empty.contains("Nothing to do"))
        let json = try JSONOutput.encode(value: world.plan([world.directoryUser(1, "a@acme.example", title: "CEO", ga: true)]))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["client", "mapping", "directory", "groupCreations", "userChanges", "skipped", "protectedKept", "guardViolations", "summary", "onboarding"])
    }

    @Test("max_promote counts Global Admin, Group Manager and privileged-role grants (creations and re-enables too); a first sync is exempt")
    func maxPromote() throws {
        var world = try World(maxDisable: "100%")
        world.mapping.guards = GuardSettings(maxPromote: 1, privilegedRoles: ["Admin"])
        world.stored(1, "a@acme.example", ga: true)
        world.stored(2, "back@acme.example", ga: true, enabled: false)
        world.stored(3, "c@acme.example")
        var promoted = world.directoryUser(3, "c@acme.example")
        promoted.outcome.role = "admin"   // privileged roles compare case-insensitively
        let plan = world.plan([world.directoryUser(1, "a@acme.example", ga: true), world.directoryUser(2, "back@acme.example", ga: true),
                               promoted, world.directoryUser(9, "new@acme.example", ga: true)])
        #expect(plan.grants.map { "\($0.email) \($0.privilegeText) \($0.action)" } == [
            "new@acme.example Global Admin create", "c@acme.example role admin update", "back@acme.example Global Admin enable",
        ])
        // The HTML report lists them in a section of their own, above everything else.
        let mappingFile = try makeTemporaryDirectory("plan-grants").appendingPathComponent("acme.yaml")
        try "client: Acme\n".write(to: mappingFile, atomically: true, encoding: .utf8)
        var documented = world.mapping
        documented.file = mappingFile.path
        let outcome = SyncOutcome(plan: plan, runID: 1, applied: false, stateFingerprint: StoreFingerprint(plan: plan, state: world.state))
        let html = PlanHTML.render(try PlanDocument(outcome: outcome, request: SyncRequest(mapping: documented, storePath: "/tmp/acme.sqlite")))
        let privileges = try #require(html.range(of: "<section id=\"privileges\">"))
        let summary = try #require(html.range(of: "<section id=\"summary\">"))
        #expect(privileges.lowerBound < summary.lowerBound)
        #expect(html.contains("<td><strong>new@acme.example</strong></td><td>Global Admin <span class=\"muted\">(new user)</span></td>"))
        let violation = try #require(plan.guardViolations.first { $0.guardName == "max_promote" })
        #expect(violation.message.hasPrefix("3 Global Admin / Group Manager / privileged-role grants"))
        #expect(violation.message.contains("above max_promote 1"))
        // --max-promote 3 lets them through.
        let overridden = Planner(mapping: world.mapping, overrides: GuardOverrides(maxPromote: 3)).plan(
            snapshot: DirectorySnapshot(users: [world.directoryUser(1, "a@acme.example", ga: true), world.directoryUser(2, "back@acme.example", ga: true),
                                                promoted, world.directoryUser(9, "new@acme.example", ga: true)],
                                        skipped: [], presentIDs: ["id-1", "id-2", "id-3", "id-9"], entriesRead: 4, userEntries: 4, groupsRead: 0, references: 0),
            state: world.state)
        #expect(!overridden.guardViolations.contains { $0.guardName == "max_promote" })
        // A first sync (no directory users yet) brings its admins: exempt, though the grants are listed.
        var fresh = try World(maxDisable: "100%")
        fresh.mapping.guards.maxPromote = 0
        let onboarding = fresh.plan([fresh.directoryUser(1, "x@acme.example", ga: true), fresh.directoryUser(2, "y@acme.example", ga: true)])
        #expect(onboarding.grants.count == 2)
        #expect(onboarding.guardViolations.isEmpty)
    }

    @Test("guard limits at their defaults encode as before (saved plans keep their hash); other limits round-trip")
    func guardEncoding() throws {
        let world = try World()
        let defaults = GuardCheck(mapping: world.mapping, overrides: GuardOverrides())
        let text = String(decoding: try JSONEncoder().encode(defaults), as: UTF8.self)
        #expect(!text.contains("max_promote") && !text.contains("privileged_roles"))
        #expect(try JSONDecoder().decode(GuardCheck.self, from: Data(text.utf8)) == defaults)
        var custom = defaults
        custom.maxPromote = 7
        custom.privilegedRoles = ["Owner"]
        #expect(try JSONDecoder().decode(GuardCheck.self, from: try JSONEncoder().encode(custom)) == custom)
    }

    @Test("a plan of hundreds reads on a screen: the first lines of each section and '… and N more'; --verbose lists all")
    func longPlanIsShortened() throws {
        let world = try World(maxDisable: "100%")
        let plan = world.plan((1...25).map { world.directoryUser(Int64($0), String(format: "u%02d@acme.example", $0)) })
        let text = PlanText.render(plan)
        #expect(text.contains("Users to create (25):"))
        #expect(text.contains("  + u10@acme.example") && !text.contains("  + u11@acme.example"))
        #expect(text.contains("  … and 15 more: see --report, --json or --verbose"))
        #expect(text.contains("25 to create"))
        let verbose = PlanText.render(plan, verbose: true)
        #expect(verbose.contains("  + u25@acme.example") && !verbose.contains("more: see"))
    }

    @Test("updated and disabled users carry their name in the plan (the HTML report's search finds them by name)")
    func namesOfUpdatedAndDisabledUsers() throws {
        var world = try World(maxDisable: "100%")
        world.stored(1, "a@acme.example", title: "Boss")
        world.users[0].user.fields[.firstName] = "Ada"
        world.users[0].user.fields[.lastName] = "Lovelace"
        world.stored(2, "gone@acme.example")
        world.users[1].user.fields[.firstName] = "Gon"
        world.users[1].user.fields[.lastName] = "Away"
        let plan = world.plan([world.directoryUser(1, "a@acme.example", title: "CEO")])
        #expect(plan.userChanges.first { $0.email == "a@acme.example" }?.displayName == "Ada Lovelace")
        #expect(plan.userChanges.first { $0.email == "gone@acme.example" }?.displayName == "Gon Away")
        let mappingFile = try makeTemporaryDirectory("plan-names").appendingPathComponent("acme.yaml")
        try "client: Acme\n".write(to: mappingFile, atomically: true, encoding: .utf8)
        world.mapping.file = mappingFile.path
        let outcome = SyncOutcome(plan: plan, runID: 1, applied: false, stateFingerprint: StoreFingerprint(plan: plan, state: world.state))
        let html = PlanHTML.render(try PlanDocument(outcome: outcome, request: SyncRequest(mapping: world.mapping, storePath: "/tmp/acme.sqlite")))
        #expect(html.contains("data-search=\"a@acme.example ada lovelace"))
        #expect(html.contains("data-search=\"gone@acme.example gon away"))
        // A plan saved before names were carried still decodes, and shows what its fields hold.
        var old = try #require(plan.userChanges.first)
        old.name = nil
        let data = try JSONEncoder().encode(old)
        #expect(!String(decoding: data, as: UTF8.self).contains("\"name\""))
        #expect(try JSONDecoder().decode(PlannedUserChange.self, from: data) == old)
    }
}
