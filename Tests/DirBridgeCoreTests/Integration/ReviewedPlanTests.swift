import DirBridgeCore
import Foundation
import GRDB
import Logging
import Testing

extension EngineFixture {
    /// Runs `dirbridge sync --plan-out` (a dry run) and returns the plan file's path.
    func savePlan(_ name: String = "plan.json", store: String? = nil, _ extra: [String] = []) throws -> String {
        let path = URL(fileURLWithPath: storePath).deletingLastPathComponent().appendingPathComponent(name).path
        let result = try cli(["sync", mappingPath, "--store", store ?? storePath, "--plan-out", path, "--quiet"] + extra)
        guard result.status == 0 else { throw HarnessError(description: "sync --plan-out exited \(result.status): \(result.stderr)") }
        return path
    }

    /// A store synced once, then a directory change (e2's new title) saved as a plan: the fixture and the plan's path.
    static func reviewedTitleChange(_ label: String) throws -> (EngineFixture, String) {
        let fixture = try EngineFixture(label)
        try fixture.sync()
        try fixture.slapd.modify("dn: uid=e2,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n")
        return (fixture, try fixture.savePlan())
    }

    /// The contents a portal reads, without ids, run ids and times: users (with their group's
    /// name), user groups, history (by subject), invitations, and the applies' counts.
    static func portalContent(_ path: String) throws -> [String: [String]] {
        let queries = [
            "users": """
                SELECT u.email, u.first_name, u.last_name, u.title, u.cell_phone, u.office_phone, u.extension, u.location, u.role,
                       g.name, u.global_admin, u.group_manager, u.has_login, u.enabled, u.source, u.external_id, u.external_dn
                FROM client_users u JOIN user_groups g ON g.id = u.user_group_id ORDER BY u.email
                """,
            "user_groups": "SELECT c.name, g.name, g.is_default, g.source, g.external_id FROM user_groups g JOIN clients c ON c.id = g.client_id ORDER BY g.name",
            "history": """
                SELECT h.entity, CASE h.entity WHEN 'user' THEN (SELECT email FROM client_users WHERE id = h.entity_id)
                                               WHEN 'user_group' THEN (SELECT name FROM user_groups WHERE id = h.entity_id)
                                               ELSE (SELECT name FROM clients WHERE id = h.entity_id) END AS subject,
                       h.action, h.changes, h.editor, h.reason, h.run_id IS NULL
                FROM history h ORDER BY subject, h.id
                """,
            "invitations": "SELECT email, sent_at FROM invitations ORDER BY email",
            "applies": "SELECT summary, entries_read FROM sync_runs WHERE mode = 'apply' AND status = 'succeeded' ORDER BY id",
        ]
        return try testDatabase(path).read { db in
            try queries.mapValues { sql in try Row.fetchAll(db, sql: sql).map(\.description) }
        }
    }
}

@Suite("Reviewed plans: save a dry run, review it, apply exactly it")
struct ReviewedPlanTests {
    @Test("a saved plan applied gives the same store as sync --apply: onboarding, then directory changes")
    func sameAsSyncApply() throws {
        let fixture = try EngineFixture("plan-same")
        let direct = URL(fileURLWithPath: fixture.storePath).deletingLastPathComponent().appendingPathComponent("direct.sqlite").path
        func planAndApply(_ name: String) throws {
            let plan = try fixture.savePlan(name)
            let applied = try fixture.cli(["apply", plan])
            #expect(applied.status == 0, "\(applied.stderr)")
            #expect(applied.stdout.contains("Applied plan"))
            let synced = try fixture.cli(["sync", fixture.mappingPath, "--store", direct, "--apply", "--quiet"])
            #expect(synced.status == 0, "\(synced.stderr)")
            #expect(try EngineFixture.portalContent(fixture.storePath) == EngineFixture.portalContent(direct))
            // The apply's run records the hash of the plan file it executed.
            let document = try PlanDocument.read(path: plan)
            let run = try #require(try fixture.rows("SELECT mode, status, plan_hash FROM sync_runs ORDER BY id DESC").first)
            #expect(run["mode"] as String == "apply" && run["status"] as String == "succeeded")
            #expect(run["plan_hash"] as String? == document.sha256)
        }
        // A new client: the plan creates it with its groups and users.
        try planAndApply("onboarding.json")
        #expect(try fixture.int("SELECT count(*) FROM client_users") == 12)

        try fixture.slapd.modify(String(contentsOf: fixtureURL("ldif/engine-changes.ldif"), encoding: .utf8))
        try planAndApply("changes.json")
        #expect(try fixture.user("e1@example.com")?["group_name"] as String? == "Sales")
        #expect(try fixture.user("e3@example.com")?["enabled"] as Int? == 0)
        #expect(try fixture.user("s2@example.com")?["external_dn"] as String? == "uid=s2-renamed,ou=alumni,dc=example,dc=com")
        #expect(try fixture.int("SELECT count(*) FROM history WHERE action IN ('disabled', 'group_changed', 'flags_changed', 'updated')") == 6)
    }

    @Test("a plan applied twice is refused the second time (exit 5); the refusal is the only row written")
    func appliedTwice() throws {
        let (fixture, plan) = try EngineFixture.reviewedTitleChange("plan-twice")
        #expect(try fixture.cli(["apply", plan]).status == 0)
        let before = try fixture.portalContents()
        let again = try fixture.cli(["apply", plan])
        #expect(again.status == 5)
        #expect(again.stderr.contains("this plan was applied already, by sync run"))
        #expect(!again.stderr.contains("store changed"), "an applied plan moved the store; saying so is noise")
        #expect(again.stderr.contains("nothing was changed"))
        #expect(try fixture.portalContents() == before)
        let hash = try PlanDocument.read(path: plan).sha256
        let runs = try fixture.rows("SELECT status, plan_hash FROM sync_runs WHERE mode = 'apply' AND plan_hash = ? ORDER BY id", [hash])
        #expect(runs.map { $0["status"] as String } == ["succeeded", "refused"])
    }

    @Test("a portal-side edit to a user the plan touches refuses it; an edit to a user it does not touch does not")
    func storeMoved() throws {
        let (fixture, plan) = try EngineFixture.reviewedTitleChange("plan-moved")
        let e2 = try #require(try fixture.user("e2@example.com"))["id"] as Int64

        try fixture.database().write { try $0.execute(sql: "UPDATE client_users SET cell_phone = '+47 555 0101' WHERE email = 's1@example.com'") }
        let unrelated = try fixture.cli(["apply", plan, "--dry-run"])
        #expect(unrelated.status == 0, "\(unrelated.stderr)")
        #expect(unrelated.stdout.contains("an apply of this plan would go ahead"))

        // An edit of a field the mapping does not even map: the reviewed old values are no longer the store's.
        try fixture.database().write { try $0.execute(sql: "UPDATE client_users SET cell_phone = '+47 555 0102' WHERE email = 'e2@example.com'") }
        let runsBefore = try fixture.int("SELECT count(*) FROM sync_runs")
        let dryRun = try fixture.cli(["apply", plan, "--dry-run"])
        #expect(dryRun.status == 5)
        #expect(try fixture.int("SELECT count(*) FROM sync_runs") == runsBefore)
        let before = try fixture.portalContents()
        let refused = try fixture.cli(["apply", plan])
        #expect(refused.status == 5)
        #expect(refused.stderr.contains("the store changed since the plan was made: client user e2@example.com (id \(e2)) was edited"))
        #expect(try fixture.portalContents() == before)
        #expect(try fixture.user("e2@example.com")?["title"] as String? == "Engineer")
        let last = try #require(try fixture.rows("SELECT mode, status, error, plan_hash FROM sync_runs ORDER BY id DESC").first)
        #expect(last["status"] as String == "refused")
        #expect((last["error"] as String?)?.contains("e2@example.com") == true)
        #expect(last["plan_hash"] as String? == (try PlanDocument.read(path: plan).sha256))

        // A fresh plan, computed against the edited store, goes through.
        #expect(try fixture.cli(["apply", try fixture.savePlan("fresh.json")]).status == 0)
        #expect(try fixture.user("e2@example.com")?["title"] as String? == "Staff Engineer")
    }

    @Test("a plan is refused after the mapping file changed, when older than --max-age, and when the file was edited")
    func mappingAgeAndEdits() throws {
        let (fixture, plan) = try EngineFixture.reviewedTitleChange("plan-refusals")
        let before = try fixture.portalContents()

        // Expired: --max-age on the command line, and the 24h default seen from tomorrow.
        Thread.sleep(forTimeInterval: 1.1)
        let old = try fixture.cli(["apply", plan, "--max-age", "1s"])
        #expect(old.status == 5)
        #expect(old.stderr.contains("longer than --max-age 1s"))
        let tomorrow = try #require(throws: PlanError.self) {
            try PlanApplier.run(ApplyRequest(planPath: plan), logger: Logger(label: "test"), now: Date().addingTimeInterval(25 * 3600))
        }
        #expect(tomorrow.kind == .refused)
        #expect(tomorrow.reasons.contains { $0.contains("longer than --max-age 24h") })

        // The mapping file changed since (even a comment: the reviewer saw the old one).
        let mappingText = try String(contentsOfFile: fixture.mappingPath, encoding: .utf8)
        try (mappingText + "# edited after review\n").write(toFile: fixture.mappingPath, atomically: true, encoding: .utf8)
        let changed = try fixture.cli(["apply", plan])
        #expect(changed.status == 5)
        #expect(changed.stderr.contains("the mapping file \(fixture.mappingPath) changed since the plan was made"))
        try mappingText.write(toFile: fixture.mappingPath, atomically: true, encoding: .utf8)

        // The plan file edited: a reviewed title swapped for another.
        let text = try String(contentsOfFile: plan, encoding: .utf8)
        try text.replacingOccurrences(of: "\"new\" : \"Staff Engineer\"", with: "\"new\" : \"Chief Hacker\"").write(toFile: plan, atomically: true, encoding: .utf8)
        let edited = try fixture.cli(["apply", plan])
        #expect(edited.status == 5)
        #expect(edited.stderr.contains("was edited after it was saved"))
        #expect(try fixture.portalContents() == before)
        let refusals = try fixture.rows("SELECT plan_hash, error FROM sync_runs WHERE status = 'refused' ORDER BY id")
        #expect(refusals.count == 4)  // max-age (CLI and library), mapping, edited
        #expect(refusals.last?["plan_hash"] as String? == nil)
        #expect((refusals.last?["error"] as String?)?.contains("was edited") == true)

        // Restored to what was reviewed, it applies.
        try text.write(toFile: plan, atomically: true, encoding: .utf8)
        #expect(try fixture.cli(["apply", plan]).status == 0)
        #expect(try fixture.user("e2@example.com")?["title"] as String? == "Staff Engineer")
    }

    @Test("a plan that would now remove the last enabled Global Admin is refused; --force applies it")
    func guardsRechecked() throws {
        let fixture = try EngineFixture("plan-guards") { $0.replacingOccurrences(of: "protected: [it-breakglass@example.com]", with: "protected: []") }
        try fixture.sync()
        try fixture.slapd.modify("""
            dn: cn=portal-admins,ou=groups,dc=example,dc=com
            changetype: modify
            replace: member
            member: uid=breakglass,ou=people,dc=example,dc=com

            """)
        let plan = try fixture.savePlan()
        #expect(try PlanDocument.read(path: plan).plan.guardViolations.isEmpty)
        // Since the review, the portal disabled the one admin the plan leaves (a user it does not touch).
        try fixture.database().write { try $0.execute(sql: "UPDATE client_users SET enabled = 0 WHERE email = 'it-breakglass@example.com'") }
        let refused = try fixture.cli(["apply", plan])
        #expect(refused.status == 5)
        #expect(refused.stderr.contains("guard last_global_admin"))
        #expect(!refused.stderr.contains("store changed"))
        let forced = try fixture.cli(["apply", plan, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try fixture.int("SELECT count(*) FROM client_users WHERE global_admin = 1") == 1)
    }

    @Test("a plan with nothing to do says so in text, JSON and HTML; apply --dry-run writes nothing")
    func nothingToDo() throws {
        let fixture = try EngineFixture("plan-empty")
        try fixture.sync()
        let folder = URL(fileURLWithPath: fixture.storePath).deletingLastPathComponent()
        let plan = folder.appendingPathComponent("empty.json").path, page = folder.appendingPathComponent("empty.html").path
        let text = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--plan-out", plan, "--report", page])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("Nothing to do"))
        #expect(text.stdout.contains("Plan saved to \(plan)"))
        let json = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--json", "--plan-out", plan])
        #expect(try JSONDecoder().decode(Plan.self, from: Data(json.stdout.utf8)).isEmpty)
        #expect(json.stderr.contains("Plan saved to"))
        #expect(try PlanDocument.read(path: plan).plan.isEmpty)
        #expect(try String(contentsOfFile: page, encoding: .utf8).contains("Nothing to do: the portal already matches the directory."))

        let before = try fixture.portalContents()
        let runs = try fixture.int("SELECT count(*) FROM sync_runs")
        let check = try fixture.cli(["apply", plan, "--dry-run"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("Nothing to do"))
        #expect(try fixture.int("SELECT count(*) FROM sync_runs") == runs)
        let applied = try fixture.cli(["apply", plan])
        #expect(applied.status == 0)
        #expect(try fixture.portalContents() == before)
        #expect(try fixture.int("SELECT count(*) FROM sync_runs WHERE mode = 'apply' AND plan_hash IS NOT NULL") == 1)

        let misuse = try fixture.cli(["sync", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--plan-out", plan])
        #expect(misuse.status == 1)
        #expect(misuse.stderr.contains("drop --apply"))
    }

    @Test("the HTML report is well-formed and shows a hostile display name as text, on sync and on apply --dry-run")
    func hostileReport() throws {
        let fixture = try EngineFixture("plan-html")
        try fixture.sync()
        // Values starting with `<` must be base64 in LDIF.
        func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
        try fixture.slapd.modify("""
            dn: uid=s1,ou=people,dc=example,dc=com
            changetype: modify
            replace: givenName
            givenName:: \(base64("<script>alert(1)</script>"))
            -
            replace: sn
            sn: "&'
            -
            replace: title
            title:: \(base64("<img src=x onerror=alert(2)>"))

            """)
        let folder = URL(fileURLWithPath: fixture.storePath).deletingLastPathComponent()
        let page = folder.appendingPathComponent("plan.html").path
        let plan = try fixture.savePlan("plan.json", ["--report", page])
        let html = try String(contentsOfFile: page, encoding: .utf8)
        let check = try HTMLCheck.check(html)
        #expect(check.problems == [])
        #expect(check.doctype)
        #expect(check.scripts == 1)
        #expect(check.text.contains("<script>alert(1)</script>"))
        #expect(check.text.contains("\"&'"))
        #expect(check.text.contains("<img src=x onerror=alert(2)>"))
        #expect(!html.contains("<script>alert") && !html.contains("<img"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))

        // The same page from apply --dry-run, once the store moved under the plan: the refusal is on it.
        try fixture.database().write { try $0.execute(sql: "UPDATE client_users SET title = 'Portal' WHERE email = 's1@example.com'") }
        let checked = folder.appendingPathComponent("checked.html").path
        let dryRun = try fixture.cli(["apply", plan, "--dry-run", "--report", checked])
        #expect(dryRun.status == 5)
        let checkedHTML = try String(contentsOfFile: checked, encoding: .utf8)
        #expect(checkedHTML.contains("an apply would be REFUSED"))
        #expect(checkedHTML.contains("client user s1@example.com"))
        #expect(try HTMLCheck.check(checkedHTML).problems == [])
    }
}
