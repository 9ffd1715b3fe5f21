import Foundation

/// Renders a saved plan as one self-contained HTML page an admin can open offline or attach
/// to a change ticket (`--report plan.html`).
///
/// The summary comes first (counts per action, new users and moves per user group, and
/// whether an apply would be refused), then one table per kind of change: user groups to
/// create, new users, changed fields (old → new), user group / role / flag changes,
/// re-enabled, disabled, linked portal users, protected users kept and skipped entries, each
/// row with its reason. A few lines of inline JavaScript filter the rows by action and
/// search them by name, email or DN; without JavaScript every row shows.
///
/// Every value from the directory or the store is escaped (``escape(_:)``): a display name
/// `<script>alert(1)</script>` renders as that text. No external asset is referenced.
public enum PlanHTML {
    /// The outcome of checking the plan against the store (`apply --dry-run`).
    public struct Check: Sendable {
        /// Why an apply would be refused; empty when it would go ahead.
        public var objections: [String]
        public var checkedAt: Date

        public init(objections: [String], checkedAt: Date) {
            self.objections = objections
            self.checkedAt = checkedAt
        }
    }

    /// The page for `document`; `planFile` is where it was saved (for the apply command shown),
    /// `check` the result of checking it against the store now.
    public static func render(_ document: PlanDocument, planFile: String? = nil, check: Check? = nil) -> String {
        let plan = document.plan
        var page = Page()
        page.raw("""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape("dirbridge plan for \(plan.client): \(plan.summary.line)"))</title>
            <style>\(style)</style>
            </head>
            <body>
            <header>
            <p class="kicker">dirbridge · sync plan</p>
            <h1>\(escape(plan.client))</h1>

            """)
        page.meta(document, planFile: planFile)
        page.raw("</header>\n<main>\n")
        page.banners(document, planFile: planFile, check: check)
        page.privileges(plan)
        page.summary(plan)
        if !plan.isEmpty || !plan.skipped.isEmpty || !plan.protectedKept.isEmpty {
            page.filters(plan)
            page.tables(plan)
        }
        page.raw("</main>\n<footer>Made by dirbridge \(escape(document.dirbridgeVersion)) at \(escape(document.createdAt)). "
                 + "Plan sha256 <code>\(escape(document.sha256 ?? document.computedHash()))</code>.</footer>\n")
        if !plan.isEmpty || !plan.skipped.isEmpty || !plan.protectedKept.isEmpty { page.raw("<script>\(script)</script>\n") }
        page.raw("</body>\n</html>\n")
        return page.out
    }

    /// `text` safe in HTML text and in quoted attribute values: `& < > " '` become entities,
    /// and control characters HTML does not allow become U+FFFD.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value): out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The actions rows can be filtered by, in page order, with their labels.
    static let filterActions: [(action: String, label: String)] = [
        ("group", "User groups"), ("create", "Create"), ("link", "Link"), ("update", "Update"), ("enable", "Re-enable"), ("disable", "Disable"),
    ]

    /// Fields shown as attribute changes (the rest are group, role and flags; `external_id` and `source` are bookkeeping).
    static let attributeFields = PortalField.allCases.map(UserAttribute.field) + [.externalDN, .hasLogin]
    static let accessFields: [UserAttribute] = [.userGroup, .role, .globalAdmin, .groupManager]

    /// The page as it is written, top to bottom.
    private struct Page {
        var out = ""

        mutating func raw(_ html: String) { out += html }

        mutating func meta(_ document: PlanDocument, planFile: String?) {
            var rows: [(String, String)] = [
                ("Mapping", "<code>\(escape(document.mapping.file))</code> <span class=\"muted\">sha256 \(escape(String(document.mapping.sha256.prefix(12))))…</span>"),
                ("Directory", "<code>\(escape(document.directory))</code>"),
                ("Store", "<code>\(escape(document.store.path))</code>" + (document.store.clientExisted ? "" : " <span class=\"muted\">(the client is created on apply)</span>")),
                ("Made", "\(escape(document.createdAt))" + (document.dryRunID.map { " <span class=\"muted\">(dry run \($0))</span>" } ?? "")),
            ]
            if let planFile { rows.append(("Plan file", "<code>\(escape(planFile))</code> <span class=\"muted\">sha256 \(escape(document.shortHash))…</span>")) }
            raw("<dl class=\"meta\">\n")
            for (label, value) in rows { raw("<div><dt>\(label)</dt><dd>\(value)</dd></div>\n") }
            raw("</dl>\n")
        }

        mutating func banners(_ document: PlanDocument, planFile: String?, check: Check?) {
            let plan = document.plan
            if let check {
                if check.objections.isEmpty {
                    raw("<div class=\"banner ok\"><strong>Checked against the store at \(escape(StoreTime.text(check.checkedAt))): an apply would go ahead.</strong></div>\n")
                } else {
                    raw("<div class=\"banner refused\"><strong>Checked against the store at \(escape(StoreTime.text(check.checkedAt))): an apply would be REFUSED.</strong>\n<ul>")
                    for objection in check.objections { raw("<li>\(escape(objection))</li>") }
                    raw("</ul></div>\n")
                }
            }
            if !plan.guardViolations.isEmpty {
                raw("<div class=\"banner refused\"><strong>Guards: an apply of this plan would be REFUSED\(document.force ? " (the plan was made with --force, which overrides them)" : "").</strong>\n<ul>")
                for violation in plan.guardViolations { raw("<li><code>\(escape(violation.guardName))</code> \(escape(violation.message))</li>") }
                raw("</ul></div>\n")
            }
            if plan.isEmpty {
                raw("<div class=\"banner ok\"><strong>Nothing to do: the portal already matches the directory.</strong></div>\n")
            } else if check == nil, let planFile {
                raw("<div class=\"banner info\">Review the changes below; <code>\(escape("dirbridge apply \(planFile)"))</code> applies exactly them, "
                    + "and is refused if the store, the mapping or the plan file changed in the meantime.</div>\n")
            } else if check == nil {
                raw("<div class=\"banner info\">A dry run: nothing was written. To apply exactly these changes after review, save the plan "
                    + "with <code>dirbridge sync MAPPING --plan-out plan.json</code> and apply it with <code>dirbridge apply plan.json</code>.</div>\n")
            }
        }

        /// The privileges the apply grants, above everything else and never filtered away.
        mutating func privileges(_ plan: Plan) {
            guard !plan.grants.isEmpty else { return }
            raw("<section id=\"privileges\">\n<h2>Privileges granted <span class=\"muted\">\(plan.grants.count)</span></h2>\n<table>\n"
                + "<thead><tr><th>User</th><th>Privilege</th><th>Why</th></tr></thead>\n<tbody>\n")
            for grant in plan.grants {
                let how = grant.action == .create ? " <span class=\"muted\">(new user)</span>" : grant.action == .enable ? " <span class=\"muted\">(re-enabled)</span>" : ""
                raw("<tr><td><strong>\(escape(grant.email))</strong></td><td>\(escape(grant.privilegeText))\(how)</td><td>\(escape(grant.reason ?? ""))</td></tr>\n")
            }
            raw("</tbody>\n</table>\n</section>\n")
        }

        mutating func summary(_ plan: Plan) {
            let summary = plan.summary
            let cards: [(String, Int, String)] = [
                ("create", summary.create, "to create"), ("link", summary.link, "to link"), ("update", summary.update, "to update"),
                ("enable", summary.enable, "to re-enable"), ("disable", summary.disable, "to disable"), ("unchanged", summary.unchanged, "unchanged"),
                ("group", summary.groupsCreated, "user groups to create"), ("invite", summary.invitations, "invitations"), ("skipped", summary.skipped, "skipped"),
            ]
            raw("<section id=\"summary\">\n<h2>Summary</h2>\n<p class=\"line\">\(escape(summary.line)) <span class=\"muted\">(\(summary.entriesRead) directory entries read)</span></p>\n<div class=\"cards\">\n")
            for (kind, count, label) in cards where count > 0 || ["create", "update", "disable", "unchanged"].contains(kind) {
                raw("<div class=\"card \(kind)\(count == 0 ? " zero" : "")\"><span class=\"count\">\(count)</span><span class=\"label\">\(label)</span></div>\n")
            }
            raw("</div>\n")
            let groups = groupCounts(plan)
            if !groups.isEmpty {
                raw("<table class=\"groups\">\n<caption>Per user group</caption>\n<thead><tr><th>User group</th><th class=\"num\">New users</th><th class=\"num\">Managers</th><th class=\"num\">Moved in</th><th class=\"num\">Moved out</th></tr></thead>\n<tbody>\n")
                for group in groups {
                    raw("<tr><td>\(escape(group.name))\(group.created ? " <span class=\"badge group\">new group</span>" : "")</td>"
                        + [group.new, group.managers, group.movedIn, group.movedOut].map { "<td class=\"num\">\($0 == 0 ? "<span class=\"muted\">0</span>" : String($0))</td>" }.joined()
                        + "</tr>\n")
                }
                raw("</tbody>\n</table>\n")
            }
            raw("</section>\n")
        }

        mutating func filters(_ plan: Plan) {
            var counts: [String: Int] = ["group": plan.groupCreations.count]
            for change in plan.userChanges { counts[change.action.rawValue, default: 0] += 1 }
            raw("<nav class=\"filters\" aria-label=\"Filter the changes\">\n<span class=\"filter-label\">Show</span>\n")
            for (action, label) in filterActions where counts[action, default: 0] > 0 {
                raw("<label class=\"chip \(action)\"><input type=\"checkbox\" value=\"\(action)\" checked> \(label) <span class=\"muted\">\(counts[action]!)</span></label>\n")
            }
            raw("<input type=\"search\" id=\"search\" placeholder=\"Search name, email or DN\" aria-label=\"Search name, email or DN\">\n<span id=\"shown\" class=\"muted\"></span>\n</nav>\n")
        }

        mutating func tables(_ plan: Plan) {
            let changes = plan.userChanges
            section("User groups to create", rows: plan.groupCreations, headers: ["User group", "Why"]) { group in
                row(action: "group", search: group.name, cells: ["<strong>\(escape(group.name))</strong>", reasons([group.reason])])
            }
            section("New users", rows: changes.filter { $0.action == .create }, headers: ["User", "Title", "User group", "Role", "Flags", "Why"]) { change in
                var flags: [String] = []
                if change.fields[.globalAdmin]?.new?.flag == true { flags.append("<span class=\"badge admin\">Global Admin</span>") }
                if change.fields[.groupManager]?.new?.flag == true { flags.append("<span class=\"badge manager\">Group Manager</span>") }
                if change.invite { flags.append("<span class=\"badge invite\">invite</span>") }
                return row(action: "create", search: searchText(change), cells: [
                    user(change), escape(change.fields[.field(.title)]?.new?.text ?? ""), escape(change.fields[.userGroup]?.new?.text ?? defaultUserGroupName),
                    escape(change.fields[.role]?.new?.text ?? defaultRoleName), flags.joined(separator: " "),
                    reasons(change.reasons.dropFirst().filter { !$0.hasPrefix("login:") }),
                ])
            }
            let updates = changes.filter { $0.action != .create }
            section("Changed fields", rows: updates.filter { !fields($0, attributeFields).isEmpty }, headers: ["User", "Field: old → new", "Why"]) { change in
                row(action: change.action.rawValue, search: searchText(change), cells: [user(change), fieldList(fields(change, attributeFields)), reasons(change.reasons)])
            }
            section("User group, role and flag changes", rows: updates.filter { !fields($0, accessFields).isEmpty }, headers: ["User", "Change: old → new", "Why"]) { change in
                row(action: change.action.rawValue, search: searchText(change), cells: [user(change), fieldList(fields(change, accessFields)), reasons(change.reasons)])
            }
            section("Re-enabled users", rows: changes.filter { $0.action == .enable }, headers: ["User", "Why"]) { change in
                row(action: "enable", search: searchText(change), cells: [user(change), reasons(change.reasons)])
            }
            section("Disabled users", rows: changes.filter { $0.action == .disable }, headers: ["User", "Why"]) { change in
                row(action: "disable", search: searchText(change), cells: [user(change), reasons(change.reasons)])
            }
            section("Portal users to link", rows: changes.filter { $0.action == .link }, headers: ["User", "Why"]) { change in
                row(action: "link", search: searchText(change), cells: [user(change), reasons(change.reasons)])
            }
            section("Protected users kept as they are", rows: plan.protectedKept, headers: ["User", "Withheld"]) { note in
                row(action: nil, search: note.email, cells: ["<strong>\(escape(note.email))</strong>", reasons(note.withheld)])
            }
            section("Skipped entries", rows: plan.skipped, headers: ["Entry", "Why"]) { entry in
                row(action: nil, search: entry.dn, cells: ["<code>\(breakable(entry.dn))</code>", reasons([entry.reason])])
            }
        }

        // MARK: pieces

        private mutating func section<Row>(_ title: String, rows: [Row], headers: [String], _ render: (Row) -> String) {
            guard !rows.isEmpty else { return }
            raw("<section class=\"changes\">\n<h2>\(escape(title)) <span class=\"muted\">\(rows.count)</span></h2>\n<table>\n<thead><tr>")
            for header in headers { raw("<th>\(escape(header))</th>") }
            raw("</tr></thead>\n<tbody>\n")
            for item in rows { raw(render(item)) }
            raw("</tbody>\n</table>\n</section>\n")
        }
    }

    // MARK: cells

    private static func row(action: String?, search: String, cells: [String]) -> String {
        let actionAttribute = action.map { " data-action=\"\($0)\"" } ?? ""
        return "<tr\(actionAttribute) data-search=\"\(escape(search.lowercased()))\">" + cells.map { "<td>\($0)</td>" }.joined() + "</tr>\n"
    }

    private static func user(_ change: PlannedUserChange) -> String {
        let name = change.displayName
        return "<strong>\(escape(change.email))</strong>" + (name.isEmpty ? "" : "<br>\(escape(name))")
            + (change.dn.map { "<br><code class=\"dn\">\(breakable($0))</code>" } ?? "")
    }

    private static func searchText(_ change: PlannedUserChange) -> String {
        [change.email, change.displayName, change.dn ?? ""].joined(separator: " ")
    }

    private static func fields(_ change: PlannedUserChange, _ attributes: [UserAttribute]) -> [(UserAttribute, FieldChange)] {
        attributes.compactMap { attribute in change.fields[attribute].map { (attribute, $0) } }
    }

    private static func fieldList(_ fields: [(UserAttribute, FieldChange)]) -> String {
        "<ul class=\"fields\">" + fields.map { attribute, change in
            "<li><span class=\"field\">\(escape(attribute.name.replacingOccurrences(of: "_", with: " ")))</span> "
                + "<del>\(value(change.old))</del> → <ins>\(value(change.new))</ins></li>"
        }.joined() + "</ul>"
    }

    private static func value(_ value: FieldValue?) -> String {
        switch value {
        case nil: "<span class=\"none\">(none)</span>"
        case .flag(let flag)?: flag ? "yes" : "no"
        case .text(let text)? where text.isEmpty: "<span class=\"none\">(empty)</span>"
        case .text(let text)?: escape(text)
        }
    }

    private static func reasons<Lines: Sequence<String>>(_ lines: Lines) -> String {
        "<ul class=\"why\">" + lines.map { "<li>\(breakable($0))</li>" }.joined() + "</ul>"
    }

    /// Escaped text that may wrap after each comma: DNs are long words.
    private static func breakable(_ text: String) -> String {
        escape(text).replacingOccurrences(of: ",", with: ",<wbr>")
    }

    /// What a plan does to one user group.
    struct GroupCounts: Equatable {
        var name: String
        var created: Bool
        var new = 0
        var managers = 0
        var movedIn = 0
        var movedOut = 0
    }

    /// New users, managers and moves per user group, by name.
    static func groupCounts(_ plan: Plan) -> [GroupCounts] {
        var counts: [String: GroupCounts] = [:]
        let created = Set(plan.groupCreations.map { $0.name.lowercased() })
        func bump(_ name: String, _ update: (inout GroupCounts) -> Void) {
            var entry = counts[name.lowercased()] ?? GroupCounts(name: name, created: created.contains(name.lowercased()))
            update(&entry)
            counts[name.lowercased()] = entry
        }
        for group in plan.onboarding { bump(group.userGroup) { $0.new += group.new; $0.managers += group.managers } }
        for change in plan.userChanges where change.action != .create {
            guard let move = change.fields[.userGroup] else { continue }
            if let new = move.new?.text { bump(new) { $0.movedIn += 1 } }
            if let old = move.old?.text { bump(old) { $0.movedOut += 1 } }
        }
        return counts.values.sorted { $0.name.lowercased() < $1.name.lowercased() }
    }

    static let style = """
        :root{--fg:#1d2330;--muted:#6b7385;--line:#dde1ea;--bg:#f6f7fa;--create:#1f8a4c;--link:#0f7c8c;--update:#2f5fd0;--enable:#7a4cc2;--disable:#c2362b;--group:#8a6d1f}
        *{box-sizing:border-box}
        body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
        header,main,footer{max-width:1240px;margin:0 auto;padding:0 24px}
        header{padding-top:24px}
        .kicker{margin:0;color:var(--muted);text-transform:uppercase;letter-spacing:.06em;font-size:12px}
        h1{margin:4px 0 12px;font-size:26px}
        h2{font-size:17px;margin:0 0 10px}
        code{font:12.5px/1.4 ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace}
        .muted{color:var(--muted);font-weight:normal}
        .meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:4px 32px;margin:0 0 16px}
        .meta div{display:flex;gap:8px;min-width:0}.meta dt{flex:0 0 72px;color:var(--muted)}.meta dd{margin:0;overflow-wrap:anywhere}
        .banner{border-radius:8px;padding:10px 14px;margin:0 0 12px;border:1px solid}
        .banner ul{margin:6px 0 0;padding-left:20px}
        .banner.ok{background:#e9f7ef;border-color:#b5e0c6}.banner.refused{background:#fdecea;border-color:#f1b8b2;color:#7d1d15}.banner.info{background:#eef3fd;border-color:#c5d5f5}
        section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px;margin:0 0 16px}
        .line{margin:0 0 12px;font-size:15px}
        .cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:14px}
        .card{min-width:112px;padding:10px 14px;border-radius:8px;background:var(--bg);border-left:4px solid var(--muted)}
        .card .count{display:block;font-size:24px;font-weight:600}.card .label{color:var(--muted);font-size:12px}
        .card.zero{opacity:.55}
        .card.create{border-color:var(--create)}.card.link{border-color:var(--link)}.card.update{border-color:var(--update)}.card.enable{border-color:var(--enable)}.card.disable{border-color:var(--disable)}.card.group{border-color:var(--group)}
        table{width:100%;border-collapse:collapse}
        caption{text-align:left;font-weight:600;padding:0 0 6px}
        th{text-align:left;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);border-bottom:2px solid var(--line);padding:6px 8px}
        td{border-bottom:1px solid var(--line);padding:7px 8px;vertical-align:top;overflow-wrap:break-word}
        section.changes td:first-child{width:30%}
        tbody tr:nth-child(even){background:#fafbfc}
        .num{text-align:right;width:120px}
        table.groups{max-width:720px}
        .dn{color:var(--muted);font-size:11.5px}
        ul.why,ul.fields{margin:0;padding:0;list-style:none}
        ul.why li{color:#3b4254;font-size:13px}ul.why li+li{margin-top:2px}
        ul.fields{min-width:260px}ul.fields li+li{margin-top:3px}
        .field{display:inline-block;min-width:96px;color:var(--muted)}
        del{background:#fde3e1;color:#8e1f16;text-decoration:line-through;padding:0 3px;border-radius:3px}
        ins{background:#dcf5e4;color:#135e31;text-decoration:none;padding:0 3px;border-radius:3px;font-weight:600}
        .none{font-style:italic;opacity:.75}
        .badge{display:inline-block;font-size:11.5px;padding:1px 7px;border-radius:10px;background:#eef0f4;margin:1px 0;white-space:nowrap}
        .badge.admin{background:#fff1d6;color:#7a4b00}.badge.manager{background:#e6efff;color:#1d4aa8}.badge.invite{background:#e9f7ef;color:#1f6b3e}.badge.group{background:#f6efd9;color:var(--group)}
        .filters{position:sticky;top:0;z-index:1;display:flex;flex-wrap:wrap;align-items:center;gap:8px;background:var(--bg);padding:10px 0;margin-bottom:6px}
        .filter-label{color:var(--muted)}
        .chip{display:inline-flex;align-items:center;gap:5px;border:1px solid var(--line);background:#fff;border-radius:16px;padding:3px 10px 3px 8px;cursor:pointer;user-select:none}
        .chip::before{content:"";width:9px;height:9px;border-radius:50%;background:var(--muted)}
        .chip.create::before{background:var(--create)}.chip.link::before{background:var(--link)}.chip.update::before{background:var(--update)}.chip.enable::before{background:var(--enable)}.chip.disable::before{background:var(--disable)}.chip.group::before{background:var(--group)}
        .chip input{margin:0}
        #search{flex:1 1 240px;max-width:360px;padding:6px 10px;border:1px solid var(--line);border-radius:6px;font:inherit}
        tr[data-action="create"] td:first-child{box-shadow:inset 3px 0 var(--create)}tr[data-action="link"] td:first-child{box-shadow:inset 3px 0 var(--link)}
        tr[data-action="update"] td:first-child{box-shadow:inset 3px 0 var(--update)}tr[data-action="enable"] td:first-child{box-shadow:inset 3px 0 var(--enable)}
        tr[data-action="disable"] td:first-child{box-shadow:inset 3px 0 var(--disable)}tr[data-action="group"] td:first-child{box-shadow:inset 3px 0 var(--group)}
        footer{color:var(--muted);font-size:12px;padding-bottom:32px;overflow-wrap:anywhere}
        @media print{.filters{display:none}section{break-inside:avoid-page}}
        """

    /// Filters rows by the checked actions and the search text; hides sections left empty.
    static let script = """
        (function () {
          var search = document.getElementById('search');
          var boxes = Array.prototype.slice.call(document.querySelectorAll('.filters input[type=checkbox]'));
          var rows = Array.prototype.slice.call(document.querySelectorAll('tr[data-search]'));
          var shown = document.getElementById('shown');
          function update() {
            var text = search.value.trim().toLowerCase(), on = {}, count = 0;
            boxes.forEach(function (box) { on[box.value] = box.checked; });
            rows.forEach(function (row) {
              var action = row.getAttribute('data-action');
              row.hidden = (action !== null && !on[action]) || row.getAttribute('data-search').indexOf(text) < 0;
              if (!row.hidden) { count += 1; }
            });
            document.querySelectorAll('section.changes').forEach(function (section) {
              section.hidden = section.querySelector('tbody tr:not([hidden])') === null;
            });
            shown.textContent = count === rows.length ? rows.length + ' rows' : count + ' of ' + rows.length + ' rows';
          }
          search.addEventListener('input', update);
          boxes.forEach(function (box) { box.addEventListener('change', update); });
          update();
        })();
        """
}

extension PlanHTML {
    /// Renders `document` and writes the page to `path` as a private file (see ``PrivateFile``).
    public static func write(_ document: PlanDocument, to path: String, planFile: String? = nil, check: Check? = nil) throws(PlanError) {
        do {
            try PrivateFile.write(Data(render(document, planFile: planFile, check: check).utf8), to: path)
        } catch {
            throw PlanError(kind: .usage, message: "cannot write the report to \(path): \(error.localizedDescription)")
        }
    }
}
