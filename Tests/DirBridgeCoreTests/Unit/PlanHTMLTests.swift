import Foundation
import Testing
@testable import DirBridgeCore

@Suite("The HTML report of a plan, without a server")
struct PlanHTMLTests {
    /// A plan with every kind of change, one of them to a user whose directory values are hostile.
    private func richDocument() throws -> PlanDocument {
        var world = try World(maxDisable: "100%")
        let mappingFile = try makeTemporaryDirectory("plan-html").appendingPathComponent("acme.yaml")
        try "client: Acme\n".write(to: mappingFile, atomically: true, encoding: .utf8)
        world.mapping.file = mappingFile.path
        world.stored(1, "a@acme.example", ga: true, title: "Boss")
        world.stored(2, "gone@acme.example")
        world.stored(3, "mover@acme.example")
        world.stored(4, "back@acme.example", enabled: false)
        let hostile = DirectoryUser(
            mapped: MappedFields(dn: "uid=x,ou=people,dc=a", externalID: "id-9",
                                 fields: [.email: "x@acme.example", .firstName: "<script>alert(1)</script>", .lastName: "\"&'", .title: "<b>Boss</b>"], disabled: false),
            outcome: RuleOutcome(userGroup: "R&D <Europe>", role: "Guest", globalAdmin: false, groupManager: false, decisions: []))
        let plan = world.plan([world.directoryUser(1, "a@acme.example", title: "CEO & Founder", ga: true), world.directoryUser(3, "mover@acme.example", group: "Sales"),
                               world.directoryUser(4, "back@acme.example"), hostile])
        let outcome = SyncOutcome(plan: plan, runID: 1, applied: false, stateFingerprint: StoreFingerprint(plan: plan, state: world.state))
        return try PlanDocument(outcome: outcome, request: SyncRequest(mapping: world.mapping, storePath: "/tmp/acme.sqlite"))
    }

    @Test("every directory value is escaped: a <script> display name renders as text")
    func escaping() throws {
        #expect(PlanHTML.escape("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;")
        #expect(PlanHTML.escape("\"&'") == "&quot;&amp;&#39;")
        #expect(PlanHTML.escape("a\u{0}b\u{7}") == "a\u{FFFD}b\u{FFFD}")
        let html = PlanHTML.render(try richDocument(), planFile: "plan.json")
        #expect(!html.contains("<script>alert"))
        #expect(!html.contains("<b>Boss"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &quot;&amp;&#39;"))
        #expect(html.contains("R&amp;D &lt;Europe&gt;"))
        let check = try HTMLCheck.check(html)
        #expect(check.problems == [])
        #expect(check.doctype)
        #expect(check.scripts == 1)
        #expect(check.text.contains("<script>alert(1)</script> \"&'"))
    }

    @Test("the page has the summary, a table per kind of change with old → new, the filters, and no external asset")
    func structure() throws {
        let document = try richDocument()
        let html = PlanHTML.render(document, planFile: "plan.json")
        for heading in ["Summary", "User groups to create", "New users", "Changed fields", "User group, role and flag changes", "Re-enabled users", "Disabled users"] {
            #expect(html.contains("<h2>\(heading)"), "missing \(heading)")
        }
        #expect(html.contains("<del>Boss</del> → <ins>CEO &amp; Founder</ins>"))
        #expect(html.contains("<del>Default User Group</del> → <ins>Sales</ins>"))
        #expect(html.contains("data-action=\"disable\" data-search=\"gone@acme.example"))
        #expect(html.contains("<input type=\"checkbox\" value=\"enable\" checked>"))
        #expect(html.contains("id=\"search\""))
        #expect(html.contains("dirbridge apply plan.json"))
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("@import") && !html.contains("url("))
        let groups = PlanHTML.groupCounts(document.plan)
        #expect(groups.map(\.name) == ["Default User Group", "R&D <Europe>", "Sales"])
        #expect(groups.first { $0.name == "Sales" }.map { ($0.movedIn, $0.new) } ?? (0, 0) == (1, 0))
        #expect(groups.first { $0.name == "R&D <Europe>" }?.created == true)
        #expect(try HTMLCheck.check(html).problems == [])
    }

    @Test("a plan with nothing to do says so, and a check result shows as a banner")
    func nothingToDo() throws {
        var world = try World()
        let mappingFile = try makeTemporaryDirectory("plan-html-empty").appendingPathComponent("acme.yaml")
        try "client: Acme\n".write(to: mappingFile, atomically: true, encoding: .utf8)
        world.mapping.file = mappingFile.path
        world.stored(1, "a@acme.example", ga: true)
        let plan = world.plan([world.directoryUser(1, "a@acme.example", ga: true)])
        #expect(plan.isEmpty)
        let outcome = SyncOutcome(plan: plan, runID: 1, applied: false, stateFingerprint: StoreFingerprint(plan: plan, state: world.state))
        let document = try PlanDocument(outcome: outcome, request: SyncRequest(mapping: world.mapping, storePath: "/tmp/acme.sqlite"))
        let html = PlanHTML.render(document)
        #expect(html.contains("Nothing to do: the portal already matches the directory."))
        #expect(!html.contains("<script>"))
        #expect(try HTMLCheck.check(html).problems == [])
        let refused = PlanHTML.render(document, check: PlanHTML.Check(objections: ["the store changed since the plan was made: client user <a> was edited"], checkedAt: Date()))
        #expect(refused.contains("an apply would be REFUSED"))
        #expect(refused.contains("client user &lt;a&gt; was edited"))
    }
}
