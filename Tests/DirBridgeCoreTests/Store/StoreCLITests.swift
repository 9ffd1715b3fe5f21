import Foundation
import Testing
@testable import DirBridgeCore

@Suite("Store views on the command line")
struct StoreCLITests {
    @Test("a view of a missing store exits 4 naming the path and creates nothing")
    func missingStoreExits4() throws {
        let temp = try TemporaryStore()
        let result = try runDirbridge(["runs", "--store", temp.path])
        #expect(result.status == 4)
        #expect(result.stderr.contains(temp.path))
        #expect(!FileManager.default.fileExists(atPath: temp.path))
    }

    @Test("users --sort with an unknown column exits 1 listing the valid ones")
    func badSortExits1() throws {
        let temp = try TemporaryStore()
        let result = try runDirbridge(["users", "--store", temp.path, "--sort", "surname"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("last_name"))
    }

    @Test("users --json prints the client's users sorted by last name, descending")
    func usersJSONContract() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(clientID: client.id, userCreations: [
                NewClientUser(email: "a@acme.example", fields: [.lastName: "Ångström"], externalID: "1"),
                NewClientUser(email: "z@acme.example", fields: [.lastName: "Zimmer"], externalID: "2"),
                NewClientUser(email: "b@acme.example", fields: [.lastName: "berg"], externalID: "3"),
            ]),
            run: applyRun(clientID: client.id))
        let result = try runDirbridge(
            ["users", "--store", temp.path, "--client", "Acme Corp", "--sort", "last_name", "--desc", "--json"])
        #expect(result.status == 0)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(rows.compactMap { $0["last_name"] as? String } == ["Zimmer", "berg", "Ångström"])
        let text = try runDirbridge(["users", "--store", temp.path, "--sort", "last_name"])
        #expect(text.status == 0)
        #expect(text.stdout.hasPrefix("Client     Email"))
    }

    @Test("history --user with an email no client user has says so; a user without history says there is none")
    func historyOfUnknownUser() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(ChangeSet(clientID: client.id, userCreations: [NewClientUser(email: "a@acme.example", externalID: "1")]),
                            run: applyRun(clientID: client.id))
        let unknown = try runDirbridge(["history", "--store", temp.path, "--user", "nobody@acme.example"])
        #expect(unknown.status == 0)
        #expect(unknown.stdout.contains("No client user with email nobody@acme.example in \(temp.path)."))
        let known = try runDirbridge(["history", "--store", temp.path, "--user", "A@acme.example"])
        #expect(known.stdout.contains("a@acme.example") && known.stdout.contains("created"))
    }
}

@Suite("What a new user trips on")
struct NewUserMessagesTests {
    @Test("a missing mapping or plan file says `no such file: PATH`, with no made-up position")
    func missingFiles() throws {
        let mapping = try runDirbridge(["validate", "/nonexistent/acme.yaml"])
        #expect(mapping.status == 1)
        #expect(mapping.stderr.contains("no such file: /nonexistent/acme.yaml") && !mapping.stderr.contains(":1:1:"))
        let plan = try runDirbridge(["apply", "/nonexistent/plan.json"])
        #expect(plan.status == 1)
        #expect(plan.stderr.contains("no such file: /nonexistent/plan.json"))
    }

    @Test("an unset password variable is a setup error (exit 1), not labelled a directory error")
    func unsetPassword() throws {
        let result = try runDirbridge(["check", repositoryRoot.appendingPathComponent("mappings/demo.yaml").path],
                                      environment: ["DIRBRIDGE_BIND_PASSWORD": ""])
        #expect(result.status == 1)
        #expect(result.stderr.contains("setup error (credentials)") && !result.stderr.contains("directory error"))
    }
}
