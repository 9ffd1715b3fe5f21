import Foundation
import Testing
@testable import DirBridgeCore

@Suite("Access history: the view as of a date and privilege events, without a server")
struct AccessHistoryTests {
    private func event(_ at: String, _ action: String, _ changes: [String: [HistoryValue]], run: Int64 = 1) -> UserTimeline.Event {
        UserTimeline.Event(at: at, action: action, changes: changes, runID: run)
    }

    @Test("a user older than the history: a disable of a Global Admin is a removal, the re-enable a grant; a role's case change is none")
    func preHistoryPrivileges() {
        let alice = UserTimeline(
            userID: 7, client: "Acme",
            events: [
                event("2026-11-02T00:00:00Z", "disabled", ["enabled": [.flag(true), .flag(false)]], run: 2),
                event("2026-11-03T00:00:00Z", "enabled", ["enabled": [.flag(false), .flag(true)]], run: 3),
                event("2026-11-04T00:00:00Z", "role_changed", ["role": [.text("admin"), .text("Admin")]], run: 4),
                event("2026-11-05T00:00:00Z", "role_changed", ["role": [.text("Admin"), .text("Guest")]], run: 5),
            ],
            current: ["email": .text("alice@acme.example"), "global_admin": .flag(true), "enabled": .flag(true), "role": .text("Guest")],
            createdAt: "2020-01-01T00:00:00Z")
        let events = AccessHistory.privilegeEvents([alice], privilegedRoles: ["Admin"])
        #expect(events.map { "\($0.runID ?? 0) \($0.privilege) \($0.change)" } == [
            "2 Global Admin removed (disabled)", "2 role admin removed (disabled)",
            "3 Global Admin granted (re-enabled)", "3 role admin granted (re-enabled)",
            "5 role Admin removed",
        ])
        #expect(events.allSatisfy { $0.email == "alice@acme.example" })
    }

    @Test("a renamed user group: the view as of a date names it as it was then, and is not taken for an edit outside history")
    func groupRename() throws {
        var bob = UserTimeline(
            userID: 1, client: "Acme",
            events: [event("2026-11-01T00:00:00Z", "created", ["email": [.null, .text("bob@acme.example")], "user_group": [.null, .text("Sales")],
                                                                 "enabled": [.null, .flag(true)]])],
            current: ["email": .text("bob@acme.example"), "user_group": .text("Sales EMEA"), "enabled": .flag(true)],
            createdAt: "2026-11-01T00:00:00Z")
        bob.groupRenames = [UserTimeline.GroupRename(at: "2026-11-10T00:00:00Z", old: "Sales", new: "Sales EMEA")]
        let before = try #require(AccessHistory.reconstruct(bob, at: "2026-11-05T00:00:00Z"))
        #expect(before.unknown.isEmpty && before.notes.isEmpty)
        #expect(before.values["user_group"] == .text("Sales"))
        let after = try #require(AccessHistory.reconstruct(bob, at: "2026-11-20T00:00:00Z"))
        #expect(after.values["user_group"] == .text("Sales EMEA"))
        #expect(AccessHistory.reconstruct(bob, at: "2026-10-01T00:00:00Z") == nil)

        // A row deleted outside dirbridge: still shown as history knew it, and said to be gone.
        var gone = bob
        gone.current = nil
        gone.createdAt = nil
        let deleted = try #require(AccessHistory.reconstruct(gone, at: "2026-11-20T00:00:00Z"))
        #expect(deleted.notes.contains { $0.contains("no longer in client_users") })
    }
}
