import Foundation
import Testing
@testable import DirBridgeCore

/// A plan made for the affected users only (their directory entries and the stored users
/// they match, with the whole client's figures) against the plan of every user: the same
/// changes, counts and guard verdicts.
@Suite("Affected-only plans judge like the plan of every user, without a server")
struct AffectedPlanUnitTests {
    /// 40 stored directory users (1 and 2 Global Admins), the directory as given; `changed`
    /// are the ids whose entries changed or went.
    struct Scenario {
        var world: World
        var directory: [DirectoryUser]
        var changed: Set<Int64>
    }

    static func scenario(_ name: String) throws -> Scenario {
        var world = try World(maxDisable: "5")
        for id in Int64(1)...40 { world.stored(id, "u\(id)@acme.example", ga: id <= 2) }
        var directory = (Int64(1)...40).map { world.directoryUser($0, "u\($0)@acme.example", ga: $0 <= 2) }
        var changed = Set<Int64>()
        switch name {
        case "six gone":  // above max_disable 5
            let gone = Set((11...16).map { "id-\($0)" })
            directory.removeAll { gone.contains($0.mapped.externalID) }
            changed = [11, 12, 13, 14, 15, 16]
        case "last admins demoted":
            directory[0] = world.directoryUser(1, "u1@acme.example")
            directory[1] = world.directoryUser(2, "u2@acme.example")
            changed = [1, 2]
        case "one admin demoted":
            directory[0] = world.directoryUser(1, "u1@acme.example")
            changed = [1]
        case "four promoted":  // above max_promote 3
            for id in Int64(20)...23 { directory[Int(id) - 1] = world.directoryUser(id, "u\(id)@acme.example", ga: true) }
            changed = [20, 21, 22, 23]
        case "two disabled in the directory":
            directory[29] = world.directoryUser(30, "u30@acme.example", disabled: true)
            directory[30] = world.directoryUser(31, "u31@acme.example", disabled: true)
            changed = [30, 31]
        default:
            Issue.record("unknown scenario \(name)")
        }
        return Scenario(world: world, directory: directory, changed: changed)
    }

    @Test("same changes, counts and guard verdicts", arguments: [
        "six gone", "last admins demoted", "one admin demoted", "four promoted", "two disabled in the directory",
    ])
    func sameVerdicts(_ name: String) throws {
        let scenario = try Self.scenario(name)
        let world = scenario.world
        let full = world.plan(scenario.directory)

        let affectedUsers = scenario.directory.filter { user in scenario.changed.contains { "id-\($0)" == user.mapped.externalID } }
        let snapshot = DirectorySnapshot(users: affectedUsers, skipped: [], presentIDs: [],
                                         entriesRead: affectedUsers.count, userEntries: affectedUsers.count, groupsRead: 0, references: 0)
        var partial = world.state
        partial.users = world.users.filter { scenario.changed.contains($0.id) }
        let scope = AffectedScope(total: scenario.directory.count, userEntries: scenario.directory.count,
                                  population: ClientPopulation(users: world.users))
        let affected = Planner(mapping: world.mapping).plan(snapshot: snapshot, state: partial, affected: scope)

        #expect(!full.guardViolations.isEmpty || name == "two disabled in the directory" || name == "one admin demoted")
        #expect(affected.guardViolations == full.guardViolations)
        #expect(affected.privilegeGrants == full.privilegeGrants)
        #expect(affected.userChanges.map(\.email) == full.userChanges.map(\.email))
        #expect(affected.userChanges.map(\.fields) == full.userChanges.map(\.fields))
        // Entries read differ by design: the affected plan's snapshot holds only the changed entries.
        #expect(affected.summary.counts.filter { $0.key != "entries_read" } == full.summary.counts.filter { $0.key != "entries_read" })
        #expect(affected.summary.line == full.summary.line)
    }

    @Test("the whole client's figures: directory users, enabled ones and enabled Global Admins")
    func population() throws {
        var world = try World()
        world.stored(1, "a@acme.example", ga: true)
        world.stored(2, "b@acme.example", ga: true, enabled: false)
        world.stored(3, "c@acme.example", enabled: false)
        world.stored(4, "d@acme.example", source: .portal)
        world.stored(5, "e@acme.example", ga: true, source: .portal)
        #expect(ClientPopulation(users: world.users) == ClientPopulation(enabledDirectoryUsers: 1, directoryUsers: 3, enabledGlobalAdmins: 2))
    }
}
