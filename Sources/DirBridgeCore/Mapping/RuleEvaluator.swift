/// A group the user belongs to, directly or through nested groups, as the rules see it.
public struct GroupMembership: Sendable, Equatable {
    /// The group's DN, normalised (RFC 4514).
    public var groupDN: String {
        didSet { isCanonical = false }
    }
    /// The group's cn, as read.
    public var cn: String
    /// The group entry, for `user_group` templates reading other attributes; nil when not read.
    public var attributes: EntryAttributes?
    /// DNs from the group the user is directly in to this one; `[groupDN]` (or empty) for a direct membership.
    public var path: [String]

    public init(groupDN: String, cn: String, attributes: EntryAttributes? = nil, path: [String] = []) {
        self.groupDN = groupDN
        self.cn = cn
        self.attributes = attributes
        self.path = path
    }

    /// A membership whose `groupDN` is already canonical (``DistinguishedName/normalized``), as
    /// the directory reader builds them: rules compare it with their DN without normalising it.
    init(canonicalDN: String, cn: String, attributes: EntryAttributes? = nil, path: [String]) {
        self.init(groupDN: canonicalDN, cn: cn, attributes: attributes, path: path)
        isCanonical = true
    }

    /// Set by ``init(canonicalDN:cn:attributes:path:)``; not part of equality.
    private(set) var isCanonical = false

    public static func == (lhs: GroupMembership, rhs: GroupMembership) -> Bool {
        (lhs.groupDN, lhs.cn, lhs.path) == (rhs.groupDN, rhs.cn, rhs.path) && lhs.attributes == rhs.attributes
    }

    /// Hops from the user: 1 for a direct membership.
    var depth: Int { max(1, path.count) }
}

/// What the rules give one user, and why.
public struct RuleOutcome: Sendable, Equatable {
    /// The user group: from the first matching rule naming one, else ``defaultUserGroupName``.
    public var userGroup: String
    /// The role: from the first matching rule naming one, else `Guest`.
    public var role: String
    /// Global Admin: a matching rule sets it and the user group is the default one.
    public var globalAdmin: Bool
    /// Group Manager: a matching rule sets it for the user group the user ends up in.
    public var groupManager: Bool
    /// The rules that decided each of the above, in rule order; empty when defaults apply.
    public var decisions: [Decision]

    /// Whether the user ends up in the Default User Group.
    public var isDefaultGroup: Bool { userGroup.lowercased() == defaultUserGroupName.lowercased() }
}

/// One rule deciding one attribute of a user, with the reason it matched.
///
/// Example: `rule 2 (line 31): user_group = Sales, via cn=sales-leads,ou=groups,… via cn=emea,ou=groups,…`.
public struct Decision: Sendable, Hashable, CustomStringConvertible {
    /// 1-based index of the rule in `rules:`.
    public var rule: Int
    /// Line of the rule in the mapping file.
    public var line: Int
    /// Which attribute it decided.
    public var attribute: DecidedAttribute
    /// The value it gave: a group or role name, `true` or `false`.
    public var value: String
    /// Why the rule matched the user.
    public var reason: DecisionReason
    /// Set when the rule matched but its effect could not apply (e.g. Global Admin in a custom group).
    public var note: String?

    public var description: String {
        "rule \(rule) (line \(line)): \(attribute.rawValue) = \(value), \(reason)" + (note.map { " — \($0)" } ?? "")
    }
}

/// The user attributes a rule decides.
public enum DecidedAttribute: String, Sendable, Equatable, CaseIterable {
    case userGroup = "user_group", role, globalAdmin = "global_admin", groupManager = "group_manager"
}

/// Why a rule matched a user: membership of a group (through a path of nested groups) or a filter.
public enum DecisionReason: Sendable, Hashable, CustomStringConvertible {
    /// Member of `dn`; `path` from the direct group to `dn`.
    case group(dn: String, path: [String])
    /// The user entry matched this filter.
    case filter(String)

    /// `via cn=sales-leads,… via cn=emea,…` (nearest group last) or `filter (departmentNumber=42)`.
    public var description: String {
        switch self {
        case .group(let dn, let path):
            let between = path.filter { $0 != dn }.reversed()
            return (["via \(dn)"] + between.map { "via \($0)" }).joined(separator: " ")
        case .filter(let text):
            return "filter \(text)"
        }
    }
}

/// Applies a mapping's rules to one user: pure, no I/O, safe to call from any task.
///
/// Rules are tried in order. The first matching rule that names a user group decides the group
/// (else the Default User Group); the first naming a role decides the role (else `Guest`).
/// Global Admin holds when any matching rule sets it and the group is the default one; Group
/// Manager when a matching rule sets it for the very group the user ends up in. When a `groups:`
/// pattern matches several of the user's groups, the nearest (fewest nesting hops) wins, then the
/// DN in alphabetical order. A `user_group` template that renders empty is ignored for that user.
public struct RuleEvaluator: Sendable {
    public let rules: [MappingRule]

    private let hasFilters: Bool

    public init(rules: [MappingRule]) {
        self.rules = rules
        hasFilters = rules.contains { if case .filter = $0.selector { true } else { false } }
    }

    public func evaluate(user: EntryAttributes, memberships: [GroupMembership]) -> RuleOutcome {
        var userGroup: (name: String, decision: Decision)?
        var role: (name: String, decision: Decision)?
        var adminDecisions: [Decision] = []
        var managerDecisions: [(group: String, decision: Decision)] = []

        for rule in rules {
            guard let (reason, group) = match(rule, user: user, memberships: memberships) else { continue }
            func decision(_ attribute: DecidedAttribute, _ value: String) -> Decision {
                Decision(rule: rule.index, line: rule.line, attribute: attribute, value: value, reason: reason)
            }
            let groupName = rule.userGroup.flatMap { render($0, group: group) }
            if userGroup == nil, let groupName {
                userGroup = (groupName, decision(.userGroup, groupName))
            }
            if role == nil, let name = rule.role {
                role = (name, decision(.role, name))
            }
            if rule.globalAdmin {
                adminDecisions.append(decision(.globalAdmin, "true"))
            }
            if rule.groupManager, let groupName {
                managerDecisions.append((groupName, decision(.groupManager, "true")))
            }
        }

        let finalGroup = userGroup?.name ?? defaultUserGroupName
        let isDefault = finalGroup.lowercased() == defaultUserGroupName.lowercased()
        var decisions = [userGroup?.decision, role?.decision].compactMap { $0 }
        var globalAdmin = false
        if let first = adminDecisions.first {
            if isDefault {
                globalAdmin = true
                decisions.append(first)
            } else {
                var refused = first
                refused.value = "false"
                refused.note = "the user group is \(finalGroup); Global Admin needs the \(defaultUserGroupName)"
                decisions.append(refused)
            }
        }
        var groupManager = false
        if let manager = managerDecisions.first(where: { $0.group.lowercased() == finalGroup.lowercased() }) {
            groupManager = true
            decisions.append(manager.decision)
        } else if let first = managerDecisions.first {
            var refused = first.decision
            refused.value = "false"
            refused.note = "the rule names \(first.group) but the user group is \(finalGroup)"
            decisions.append(refused)
        }
        decisions.sort { ($0.rule, order($0.attribute)) < ($1.rule, order($1.attribute)) }
        return RuleOutcome(
            userGroup: finalGroup, role: role?.name ?? defaultRoleName, globalAdmin: globalAdmin,
            groupManager: groupManager, decisions: decisions)
    }

    /// Whether the entry matches each `filter:` rule, in rule order (empty when no rule has a
    /// filter). With the user's memberships, all that ``evaluate(user:memberships:)`` reads of it.
    public func filterMatches(_ user: EntryAttributes) -> [Bool] {
        guard hasFilters else { return [] }
        return rules.compactMap { rule in
            if case .filter(let filter, _) = rule.selector { return filter.matches(user) }
            return nil
        }
    }

    /// The order decisions are listed in (a switch: this runs for every user).
    private func order(_ attribute: DecidedAttribute) -> Int {
        switch attribute {
        case .userGroup: 0
        case .role: 1
        case .globalAdmin: 2
        case .groupManager: 3
        }
    }

    /// The reason `rule` matches and, for group selectors, the matched group.
    private func match(
        _ rule: MappingRule, user: EntryAttributes, memberships: [GroupMembership]
    ) -> (DecisionReason, GroupMembership?)? {
        switch rule.selector {
        case .filter(let filter, let text):
            return filter.matches(user) ? (.filter(text), nil) : nil
        case .group(let dn):
            return nearest(in: memberships) { $0.groupDN == dn || (!$0.isCanonical && DistinguishedName.canonical($0.groupDN) == dn) }
                .map { (.group(dn: $0.groupDN, path: $0.path), $0) }
        case .groups(let pattern):
            return nearest(in: memberships) { pattern.matches(groupDN: $0.groupDN, cn: $0.cn) }
                .map { (.group(dn: $0.groupDN, path: $0.path), $0) }
        }
    }

    /// The matching membership nearest the user (then by DN), the first of equals; no
    /// array of candidates is built (a copy of every matching membership, per rule and user).
    private func nearest(in memberships: [GroupMembership], where matches: (GroupMembership) -> Bool) -> GroupMembership? {
        var best: Int?
        for index in memberships.indices where matches(memberships[index]) {
            if let current = best {
                let (candidate, held) = (memberships[index], memberships[current])
                if (candidate.depth, candidate.groupDN) < (held.depth, held.groupDN) { best = index }
            } else {
                best = index
            }
        }
        return best.map { memberships[$0] }
    }

    /// The user group name a rule's template gives for the matched group; nil when it renders blank.
    private func render(_ template: FieldTemplate, group: GroupMembership?) -> String? {
        let name: String
        if template.isConstant {
            name = template.render(EntryAttributes(dn: ""))
        } else {
            var entry = group?.attributes ?? EntryAttributes(dn: group?.groupDN ?? "")
            if entry["cn"]?.isEmpty ?? true, let cn = group?.cn {
                entry.set("cn", to: [Array(cn.utf8)])
            }
            name = template.render(entry)
        }
        let trimmed = TemplateFilter.trimmed(name)
        return trimmed.isEmpty ? nil : trimmed
    }
}
