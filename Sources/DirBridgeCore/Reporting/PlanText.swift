/// Renders a plan as a reviewed diff: grouped by action, `+` new user,
/// `~ field: old → new`, `-` disabled, each change with its reason, then the summary line.
///
/// On a screen a plan of hundreds of creations must stay readable: without `verbose`, each
/// section lists its first ``shownPerSection`` entries and says how many more there are.
/// The guards and protected users always show in full; `--verbose`, `--json` and the HTML
/// report carry everything.
public enum PlanText {
    /// Entries listed per section without `verbose`.
    public static let shownPerSection = 10

    public static func render(_ plan: Plan, verbose: Bool = false) -> String {
        let limit = verbose ? Int.max : shownPerSection
        func more(_ total: Int) -> [String] {
            total > limit ? ["  … and \(total - limit) more: see --report, --json or --verbose"] : []
        }
        var out: [String] = ["Plan for \(plan.client) (mapping \(plan.mapping), directory \(plan.directory))"]
        if plan.isEmpty {
            out.append("")
            out.append("Nothing to do: the portal already matches the directory.")
        }
        // Privileges first, always in full: what an attacker who can write one group would gain.
        if !plan.grants.isEmpty {
            out.append("")
            out.append("Privileges granted (\(plan.grants.count)):")
            for grant in plan.grants {
                out.append("  ↑ \(grant.email): \(grant.privilegeText)" + (grant.action == .create ? " (new user)" : grant.action == .enable ? " (re-enabled)" : ""))
                if let reason = grant.reason { out.append("      why: \(reason)") }
            }
        }
        if !plan.groupCreations.isEmpty {
            out.append("")
            out.append("User groups to create (\(plan.groupCreations.count)):")
            for group in plan.groupCreations.prefix(limit) {
                out.append("  + \(group.name)")
                out.append("      why: \(group.reason)")
            }
            out += more(plan.groupCreations.count)
        }
        let titles: [PlannedAction: String] = [
            .create: "Users to create", .link: "Portal users to link", .update: "Users to update",
            .enable: "Users to re-enable", .disable: "Users to disable",
        ]
        // Every action counted in one pass that reads only the action in place, then only the
        // shown changes visited: a filter over the changes copies each one it looks at, and
        // copying 100k planned creations five times to count them took a tenth of a second.
        var counts: [PlannedAction: Int] = [:]
        plan.userChanges.withUnsafeBufferPointer { changes in
            for index in changes.indices { counts[changes[index].action, default: 0] += 1 }
        }
        for action in PlannedAction.allCases {
            let count = counts[action] ?? 0
            guard count > 0 else { continue }
            out.append("")
            out.append("\(titles[action]!) (\(count)):")
            var shown = 0
            for index in plan.userChanges.indices where plan.userChanges[index].action == action {
                guard shown < limit else { break }
                out += lines(for: plan.userChanges[index], verbose: verbose)
                shown += 1
            }
            out += more(count)
        }
        if !plan.protectedKept.isEmpty {
            out.append("")
            out.append("Protected users kept as they are (\(plan.protectedKept.count)):")
            for note in plan.protectedKept {
                out.append("  = \(note.email): withheld \(note.withheld.joined(separator: "; "))")
            }
        }
        if !plan.skipped.isEmpty {
            out.append("")
            out.append("Skipped entries (\(plan.skipped.count)):")
            for entry in plan.skipped.prefix(limit) {
                out.append("  ! \(entry.dn): \(entry.reason)")
            }
            out += more(plan.skipped.count)
        }
        if !plan.guardViolations.isEmpty {
            out.append("")
            out.append("Guards: an apply of this plan would be REFUSED:")
            for violation in plan.guardViolations {
                out.append("  ✗ \(violation.guardName): \(violation.message)")
            }
        }
        out.append("")
        out.append(plan.summary.line)
        if !plan.onboarding.isEmpty {
            out.append("New users per user group: " + plan.onboarding.map { group in
                "\(group.userGroup): \(group.new) new" + (group.managers > 0 ? ", \(group.managers) manager\(group.managers == 1 ? "" : "s")" : "")
            }.joined(separator: "; "))
        }
        return out.joined(separator: "\n") + "\n"
    }

    private static func named(_ change: PlannedUserChange) -> String {
        let name = change.displayName
        return name.isEmpty ? "" : "  \(name)"
    }

    private static func lines(for change: PlannedUserChange, verbose: Bool) -> [String] {
        switch change.action {
        case .create:
            let name = change.displayName
            var flags: [String] = []
            if change.fields[.globalAdmin]?.new?.flag == true { flags.append("Global Admin") }
            if change.fields[.groupManager]?.new?.flag == true { flags.append("Group Manager") }
            if change.invite { flags.append("invite") }
            let group = change.fields[.userGroup]?.new?.text ?? defaultUserGroupName
            let role = change.fields[.role]?.new?.text ?? defaultRoleName
            var result = ["  + \(change.email)" + (name.isEmpty ? "" : "  \(name)") + "  — \(group), \(role)" + (flags.isEmpty ? "" : ", " + flags.joined(separator: ", "))]
            let reasons = verbose ? change.reasons : Array(change.reasons.dropFirst().filter { !$0.hasPrefix("login:") })
            result += reasons.map { "      why: \($0)" }
            return result
        case .disable where change.fields.count == 1:
            return ["  - \(change.email)" + named(change)] + change.reasons.map { "      why: \($0)" }
        default:
            let marker = change.action == .disable ? "-" : "~"
            var result = ["  \(marker) \(change.email)" + named(change)]
            for (attribute, value) in change.fields.map({ ($0.attribute, $0.change) }) where verbose || ![.externalID, .source].contains(attribute) {
                result.append("      \(attribute): \(value.old?.display ?? "(none)") → \(value.new?.display ?? "(none)")")
            }
            result += change.reasons.map { "      why: \($0)" }
            return result
        }
    }
}
