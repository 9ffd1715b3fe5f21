import Foundation
import Testing
@testable import DirBridgeCore

@Suite("Store views")
struct StoreViewTests {
    static let people: [UserListingRow] = [
        UserListingRow(client: "Acme", email: "z@acme.example", fields: [.lastName: "Zimmer"]),
        UserListingRow(client: "Acme", email: "o1@acme.example", fields: [.lastName: "Ødegaard"]),
        UserListingRow(client: "Acme", email: "a2@acme.example", fields: [.lastName: "Ångström"]),
        UserListingRow(client: "Acme", email: "c@acme.example", fields: [.lastName: "Çelik"]),
        UserListingRow(client: "Acme", email: "a1@acme.example", fields: [.lastName: "adams"]),
        UserListingRow(client: "Acme", email: "b@acme.example", fields: [.lastName: "Berg"]),
        UserListingRow(client: "Acme", email: "o2@acme.example", fields: [.lastName: "oliveira"]),
        UserListingRow(client: "Acme", email: "n@acme.example"),
        UserListingRow(client: "Acme", email: "b0@acme.example", fields: [.lastName: "BERG"]),
    ]

    @Test("--sort last_name orders accented names with their base letter, case-insensitively")
    func sortByLastName() {
        let sorted = UserListing.sorted(Self.people, by: .field(.lastName))
        #expect(sorted.map(\.email) == [
            "a1@acme.example", "a2@acme.example", "b0@acme.example", "b@acme.example", "c@acme.example",
            "o1@acme.example", "o2@acme.example", "z@acme.example", "n@acme.example",
        ])
    }

    @Test("--desc reverses the column order but ties stay by email")
    func sortDescending() {
        let sorted = UserListing.sorted(Self.people, by: .field(.lastName), descending: true)
        #expect(sorted.map(\.email) == [
            "n@acme.example", "z@acme.example", "o2@acme.example", "o1@acme.example", "c@acme.example",
            "b0@acme.example", "b@acme.example", "a2@acme.example", "a1@acme.example",
        ])
    }

    @Test("the sort key folds case, accents and letters without decomposition", arguments: [
        ("Ångström", "angstrom"), ("Ødegaard", "odegaard"), ("Çelik", "celik"), ("Straße", "strasse"),
        ("Łukasz", "lukasz"), ("ÆSIR", "aesir"),
    ])
    func sortKey(name: String, key: String) {
        #expect(UnicodeOrder.key(name) == key)
    }

    @Test("flags sort unset before set, then by email")
    func sortByFlag() {
        let rows = [
            UserListingRow(client: "Acme", email: "b@x", globalAdmin: true),
            UserListingRow(client: "Acme", email: "c@x"),
            UserListingRow(client: "Acme", email: "a@x", globalAdmin: true),
        ]
        #expect(UserListing.sorted(rows, by: .globalAdmin).map(\.email) == ["c@x", "a@x", "b@x"])
    }

    @Test("users JSON is an array of objects with every snake_case key, sorted, null when missing")
    func usersJSON() throws {
        let text = try UserListing.json([
            UserListingRow(client: "Acme", email: "ann@acme.example", fields: [.firstName: "Ann", .lastName: "Ångström"],
                           hasLogin: true, globalAdmin: true),
        ])
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
        #expect(parsed.count == 1)
        let keys = [
            "cell_phone", "client", "email", "enabled", "extension", "first_name", "global_admin", "group_manager",
            "has_login", "last_name", "location", "office_phone", "role", "title", "user_group",
        ]
        #expect(parsed[0].keys.sorted() == keys)
        #expect(parsed[0]["title"] is NSNull)
        #expect(parsed[0]["has_login"] as? Bool == true)
        #expect(parsed[0]["last_name"] as? String == "Ångström")
        #expect(parsed[0]["user_group"] as? String == "Default User Group")
        let positions = keys.compactMap { text.range(of: "\"\($0)\"")?.lowerBound }
        #expect(positions == positions.sorted())
    }

    @Test("the table renderer aligns columns by Unicode characters")
    func tableAlignment() {
        let text = TextTable(
            headers: ["Name", "GA", "Count"],
            rows: [["Ångström", "✓", "7"], ["Li", "", "12"]],
            rightAligned: [2]
        ).render()
        #expect(text == """
            Name      GA  Count
            Ångström  ✓       7
            Li               12

            """)
    }

    @Test("the views read what an apply wrote")
    func viewsReadTheStore() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.ensureClient(ClientSpec(name: "Beta Ltd"))
        let runID = try store.apply(
            ChangeSet(
                clientID: client.id, groupCreations: [NewUserGroup(name: "Sales")],
                userCreations: [
                    NewClientUser(email: "ann@acme.example", fields: [.lastName: "Lee", .location: "Paris"], globalAdmin: true,
                                  hasLogin: true, externalID: "1"),
                    NewClientUser(email: "bob@acme.example", fields: [.location: "paris "], userGroupName: "Sales",
                                  groupManager: true, externalID: "2"),
                    NewClientUser(email: "cy@acme.example", fields: [.location: ""], externalID: "3"),
                    NewClientUser(email: "dee@acme.example", fields: [.location: "Oslo"], externalID: "4"),
                ]),
            run: applyRun(clientID: client.id))
        let annID = try #require(try store.loadState(clientID: client.id).users.first { $0.email == "ann@acme.example" }?.id)
        _ = try store.apply(
            ChangeSet(clientID: client.id, userUpdates: [
                ClientUserUpdate(userID: annID, action: .updated, fields: [.field(.title): FieldChange(old: nil, new: "CEO")],
                                 reason: "title from directory"),
            ]),
            run: applyRun(clientID: client.id))

        let users = try store.userListing(clientName: "acme corp")
        #expect(users.map(\.email) == ["ann@acme.example", "bob@acme.example", "cy@acme.example", "dee@acme.example"])
        #expect(users[0].globalAdmin && users[0].hasLogin && users[0][.title] == "CEO")
        #expect(users[1].userGroup == "Sales" && users[1].groupManager)
        let text = UserListing.text(users, showClient: false)
        #expect(text.split(separator: "\n").count == 5)
        #expect(text.contains("✓"))

        let unknown = #expect(throws: StoreError.self) { try store.userListing(clientName: "Gamma") }
        #expect(unknown?.code == .unknownClient)
        #expect(unknown?.message.contains("Acme Corp, Beta Ltd") == true)

        let annHistory = try store.historyListing(userEmail: "ANN@acme.example")
        #expect(annHistory.map(\.action) == ["created", "updated"])
        #expect(annHistory[1].changes["title"] == [.null, .text("CEO")])
        #expect(annHistory[1].reason == "title from directory")
        #expect(HistoryListing.text(annHistory).contains("title: — -> CEO"))
        #expect(try store.historyListing(runID: runID).count == 5)
        let historyJSON = try HistoryListing.json(annHistory)
        let parsedHistory = try #require(try JSONSerialization.jsonObject(with: Data(historyJSON.utf8)) as? [[String: Any]])
        #expect(parsedHistory[1]["subject"] as? String == "ann@acme.example")
        #expect((parsedHistory[1]["changes"] as? [String: [Any]])?["title"]?.last as? String == "CEO")

        let runs = try store.runListing()
        #expect(runs.map(\.id) == [runID, runID + 1])
        #expect(runs[0].summary == ["created": 4, "group_created": 1])
        #expect(runs[0].client == "Acme Corp" && runs[0].mode == "apply")
        #expect(runs[0].durationSeconds != nil)

        let clients = try store.clientListing()
        #expect(clients.map(\.name) == ["Acme Corp", "Beta Ltd"])
        #expect(clients[0].users == 4 && clients[0].membershipEndDate == "2027-12-31" && clients[0].active)
        #expect(clients[0].locations == 2)
        #expect(clients[1].users == 0 && clients[1].locations == 0)
    }

    @Test("run durations read as seconds, minutes, hours", arguments: [
        (5, "5s"), (125, "2m 05s"), (3720, "1h 02m"),
    ])
    func durations(seconds: Int, text: String) {
        #expect(RunListing.duration(seconds) == text)
    }
}

@Suite("History JSON")
struct ChangesJSONTests {
    @Test("changes are a JSON object with sorted keys, escaped strings, booleans and nulls")
    func changesObject() throws {
        let text = ChangesJSON.object([
            ("title", .null, .text("Head of \"Sales\"\\\n\u{1}")),
            ("enabled", .flag(true), .flag(false)),
            ("last_name", .text("Ødegaard"), .text("Øde")),
        ])
        #expect(text == #"{"enabled":[true,false],"last_name":["Ødegaard","Øde"],"title":[null,"Head of \"Sales\"\\\n\u0001"]}"#)
        let parsed = try parseChanges(text)
        #expect(parsed["title"]?.last as? String == "Head of \"Sales\"\\\n\u{1}")
        #expect(ChangesJSON.counts(["updated": 2, "created": 10]) == #"{"created":10,"updated":2}"#)
    }

    @Test("history prints a reason of several lines in the Change column, each line indented under `reason:`")
    func multiLineReasons() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(clientID: client.id, userCreations: [
                NewClientUser(email: "ann@acme.example", externalID: "1", reason: "new in the directory: uid=ann\nrule 2 (line 40): role = Admin"),
            ]),
            run: applyRun(clientID: client.id))
        let lines = HistoryListing.text(try store.historyListing(userEmail: "ann@acme.example")).split(separator: "\n").map(String.init)
        let first = try #require(lines.first { $0.contains("reason: new in the directory: uid=ann") })
        let second = try #require(lines.first { $0.contains("rule 2 (line 40): role = Admin") })
        let column = try #require(first.range(of: "reason: ")).upperBound
        #expect(second.distance(from: second.startIndex, to: try #require(second.range(of: "rule 2")).lowerBound)
                == first.distance(from: first.startIndex, to: column))
    }

    @Test("runs shows each run's non-zero plan counts once, not the history actions that repeat them")
    func runCounts() {
        let applied = ["create": 292, "created": 292, "disable": 0, "entries_read": 292, "group_created": 6, "groups_created": 6,
                       "invitations": 292, "link": 0, "unchanged": 0, "update": 0]
        #expect(RunListing.counts(applied) == "create 292, groups_created 6, invitations 292")
        #expect(RunListing.counts(["create": 0, "unchanged": 12, "entries_read": 12]) == "unchanged 12")
        #expect(RunListing.counts([:]) == "")
    }
}
