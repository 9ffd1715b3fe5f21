import Foundation
import Logging
import Testing
@testable import DirBridgeCore

/// A planner world whose mapping is a real file, so a plan document can hash it.
private func documentWorld() throws -> (World, URL) {
    var world = try World(maxDisable: "100%")
    let folder = try makeTemporaryDirectory("plan-document")
    let mappingFile = folder.appendingPathComponent("acme.yaml")
    try "client: Acme\n".write(to: mappingFile, atomically: true, encoding: .utf8)
    world.mapping.file = mappingFile.path
    world.stored(1, "a@acme.example", ga: true, title: "Boss")
    world.stored(2, "b@acme.example", title: "Clerk")
    world.stored(3, "c@acme.example", title: "Untouched")
    return (world, folder)
}

/// The sealed document of `plan`, computed against `world`'s state.
private func document(_ world: World, _ plan: Plan, storePath: String = "/tmp/acme.sqlite") throws -> PlanDocument {
    let outcome = SyncOutcome(plan: plan, runID: 7, applied: false, stateFingerprint: StoreFingerprint(plan: plan, state: world.state))
    return try PlanDocument(outcome: outcome, request: SyncRequest(mapping: world.mapping, storePath: storePath),
                            createdAt: Date(timeIntervalSince1970: 1_795_000_000))
}

@Suite("Plan documents: hashing, verification, store fingerprints, without a server")
struct PlanDocumentTests {
    @Test("SHA-256 matches the FIPS 180-4 test vectors", arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (String(repeating: "a", count: 1000), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"),
    ])
    func sha256(_ input: String, _ expected: String) {
        #expect(Digests.sha256Hex(input) == expected)
    }

    @Test("SHA-256 of binary input spanning several blocks")
    func sha256Binary() {
        let bytes = (0..<3).flatMap { _ in (0...255).map { UInt8($0) } }
        #expect(Digests.sha256Hex(bytes) == "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363")
    }

    @Test("HMAC-SHA256 matches RFC 4231 test case 2")
    func hmac() {
        #expect(Digests.hmacSHA256Hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("durations parse as people write them", arguments: [
        ("500ms", 0.5), ("30s", 30), ("15m", 900), ("24h", 86_400), ("2d", 172_800), ("90", 90),
    ])
    func durations(_ text: String, _ seconds: Double) {
        #expect(DurationText(text)?.seconds == seconds)
    }

    @Test("durations print in hours and minutes")
    func durationText() {
        #expect(DurationText.text(12) == "12s")
        #expect(DurationText.text(45 * 60) == "45m")
        #expect(DurationText.text(26 * 3600 + 5 * 60) == "26h 5m")
        #expect(DurationText.text(24 * 3600) == "24h")
        #expect(DurationText("soon") == nil)
    }

    @Test("a saved document reads back equal; its hash covers every value but survives re-indenting")
    func hashing() throws {
        let (world, folder) = try documentWorld()
        let plan = world.plan([world.directoryUser(1, "a@acme.example", title: "CEO", ga: true), world.directoryUser(2, "b@acme.example", title: "Clerk"),
                               world.directoryUser(3, "c@acme.example", title: "Untouched"), world.directoryUser(4, "new@acme.example")])
        let saved = try document(world, plan)
        #expect(saved.sha256 == saved.computedHash())
        #expect(saved.mapping.sha256 == Digests.sha256Hex("client: Acme\n"))
        #expect(saved.createdAt == "2026-11-18T11:06:40Z")
        let path = folder.appendingPathComponent("plan.json").path
        try saved.write(to: path)
        #expect(try PlanDocument.read(path: path) == saved)

        // Compact, with keys in another order: the same document.
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        #expect(try PlanDocument.read(path: path) == saved)

        // Any edited value is refused (exit 5), with what to do next.
        let original = try #require(object as? [String: Any])
        var edited = original
        var inner = try #require(edited["plan"] as? [String: Any])
        var changes = try #require(inner["userChanges"] as? [[String: Any]])
        let index = try #require(changes.firstIndex { $0["email"] as? String == "a@acme.example" })
        changes[index]["fields"] = ["title": ["old": "Boss", "new": "Chief Everything"]]
        inner["userChanges"] = changes
        edited["plan"] = inner
        try JSONSerialization.data(withJSONObject: edited).write(to: URL(fileURLWithPath: path))
        let refusal = try #require(throws: PlanError.self) { try PlanDocument.read(path: path) }
        #expect(refusal.kind == .refused)
        #expect(refusal.message.contains("was edited after it was saved"))
        #expect(refusal.message.contains("--plan-out"))

        // A missing hash is an edit too; a file that is not a plan is a usage error (exit 1).
        var unsealed = original
        unsealed["sha256"] = nil
        try JSONSerialization.data(withJSONObject: unsealed).write(to: URL(fileURLWithPath: path))
        #expect(try #require(throws: PlanError.self) { try PlanDocument.read(path: path) }.kind == .refused)
        try "{\"hello\": 1}".write(toFile: path, atomically: true, encoding: .utf8)
        let notAPlan = try #require(throws: PlanError.self) { try PlanDocument.read(path: path) }
        #expect(notAPlan.kind == .usage)
    }

    @Test("the store fingerprint moves with the users, groups and emails a plan touches, and only with them")
    func fingerprint() throws {
        let (world, _) = try documentWorld()
        let plan = world.plan([world.directoryUser(1, "a@acme.example", title: "CEO", ga: true), world.directoryUser(2, "b@acme.example", title: "Clerk", group: "Sales"),
                               world.directoryUser(3, "c@acme.example", title: "Untouched"), world.directoryUser(4, "new@acme.example", group: "Support")])
        let base = StoreFingerprint(plan: plan, state: world.state)
        #expect(base == StoreFingerprint(plan: plan, state: world.state))
        #expect(base.entities["user:1"] != StoreFingerprint.absent)
        #expect(base.entities["email:new@acme.example"] == StoreFingerprint.absent)
        #expect(base.entities["user_group:support"] == StoreFingerprint.absent)
        #expect(base.entities["user:3"] == nil)

        func moved(_ edit: (inout ClientState) -> Void) -> [String] {
            var state = world.state
            edit(&state)
            let now = StoreFingerprint(plan: plan, state: state)
            return now == base ? [] : base.differences(from: now, plan: plan)
        }
        // A touched user edited in the portal, even in a field the mapping does not map.
        #expect(moved { $0.users[0][.cellPhone] = "+47 1234" } == ["client user a@acme.example (id 1) was edited"])
        #expect(moved { $0.users[1][.title] = "Portal title" } == ["client user b@acme.example (id 2) was edited"])
        // An untouched user, or a new unrelated group: no difference.
        #expect(moved { $0.users[2][.title] = "Edited" }.isEmpty)
        #expect(moved { $0.userGroups.append(StoredUserGroup(id: 9, clientID: 1, name: "Unrelated", isDefault: false, source: .portal, externalID: nil, createdAt: "")) }.isEmpty)
        // A portal user taking a planned creation's email; a group the plan creates appearing; a moved-to group renamed.
        #expect(moved { $0.users.append(StoredUser(id: 10, clientID: 1, email: "NEW@acme.example", role: "Guest", userGroupID: 1, globalAdmin: false,
                                                   groupManager: false, hasLogin: false, enabled: true, source: .portal, externalID: nil, externalDN: nil,
                                                   createdAt: "", updatedAt: "")) } == ["a client user with email new@acme.example was created or edited"])
        #expect(moved { $0.userGroups.append(StoredUserGroup(id: 9, clientID: 1, name: "SUPPORT", isDefault: false, source: .portal, externalID: nil, createdAt: "")) }
                == ["user group support was created"])
        #expect(moved { $0.userGroups[1].name = "Sales EMEA" } == ["user group sales was renamed or deleted"])
        #expect(moved { $0.client.membershipEndDate = "2030-01-01" } == ["the client Acme was edited"])
        // A plan for a client that does not exist yet is moved by its creation.
        let fresh = StoreFingerprint(plan: plan, state: nil)
        #expect(fresh.entities["client"] == StoreFingerprint.absent)
        #expect(fresh != base)
    }

    @Test("guards are re-checked against today's store: last Global Admin, max_disable, max_demote, protected")
    func guardRecheck() throws {
        var world = try World(protected: ["b@acme.example"], maxDisable: "1")
        world.stored(1, "a@acme.example", ga: true)
        world.stored(2, "b@acme.example", ga: true)
        world.stored(3, "c@acme.example")
        // The plan takes Global Admin from a; b still has it: fine when planned.
        let plan = world.plan([world.directoryUser(1, "a@acme.example"), world.directoryUser(2, "b@acme.example", ga: true), world.directoryUser(3, "c@acme.example")])
        #expect(plan.guardViolations.isEmpty)
        let check = GuardCheck(mapping: world.mapping, overrides: GuardOverrides())
        #expect(check.violations(userEntries: 3, users: world.users, changes: plan.userChanges).isEmpty)
        // Since then the portal disabled b: applying would leave no enabled Global Admin.
        var today = world.users
        today[1].enabled = false
        #expect(check.violations(userEntries: 3, users: today, changes: plan.userChanges).map(\.guardName) == ["last_global_admin"])
        // A protected user's demotion can only come from outside the planner, and is always refused.
        var demoteProtected = plan.userChanges
        demoteProtected.append(PlannedUserChange(action: .update, historyAction: .flagsChanged, email: "B@acme.example", userID: 2, externalID: "id-2", dn: nil,
                                                 fields: [.globalAdmin: FieldChange(old: true, new: false)], reasons: [], invite: false))
        #expect(check.protectedViolations(demoteProtected).map(\.guardName) == ["protected"])
        #expect(check.violations(userEntries: 3, users: world.users, changes: demoteProtected).map(\.guardName) == ["max_demote", "last_global_admin"])
        // The limits travel in the plan as the mapping wrote them.
        let encoded = try JSONOutput.encode(value: check)
        #expect(encoded.contains("\"max_disable\" : \"1\""))
        #expect(try JSONDecoder().decode(GuardCheck.self, from: Data(encoded.utf8)) == check)
    }
}

@Suite("Guard checks on single changes")
struct GuardChangeTests {
    private func change(_ fields: AttributeChanges, action: PlannedAction = .update) -> PlannedUserChange {
        PlannedUserChange(action: action, historyAction: .updated, email: "a@acme.example", userID: 1, externalID: nil, dn: nil, fields: fields, reasons: [], invite: false)
    }

    @Test("removals lose access and count as demotions; a created user with its flags cleared loses nothing", arguments: [
        ([.enabled: FieldChange(old: true, new: false)], true, 0),
        ([.globalAdmin: FieldChange(old: true, new: false), .groupManager: FieldChange(old: true, new: false)], true, 2),
        ([.role: FieldChange(old: "Admin", new: "Guest")], true, 1),
        ([.role: FieldChange(old: "Guest", new: "Admin")], false, 0),
        ([.globalAdmin: FieldChange(old: false, new: true)], false, 0),
        ([.globalAdmin: FieldChange(old: nil, new: false), .groupManager: FieldChange(old: nil, new: false), .enabled: FieldChange(old: nil, new: true),
          .role: FieldChange(old: nil, new: "Guest")], false, 0),
    ] as [(AttributeChanges, Bool, Int)])
    func losesAccess(_ fields: AttributeChanges, _ loses: Bool, _ demotions: Int) {
        #expect(GuardCheck.losesAccess(change(fields)) == loses)
        #expect(GuardCheck.demotions(in: change(fields)) == demotions)
    }
}
