/// What a sync would do to one client: the reviewed diff between the directory and the store.
///
/// Pure data, `Codable` with stable keys: the text, JSON and (later) HTML views and the
/// saved plan are all renderings of this one value.
public struct Plan: Sendable, Codable, Equatable {
    public var client: String
    public var mapping: String
    public var directory: String
    /// User groups the rules name that the client does not have yet.
    public var groupCreations: [PlannedGroup]
    /// One entry per client user that changes, sorted by action then email.
    public var userChanges: [PlannedUserChange]
    /// Entries reported and left out (no email, no id, duplicate email, email taken).
    public var skipped: [SkippedEntry]
    /// Changes a `protected` user was spared.
    public var protectedKept: [ProtectedNote]
    /// Guards this plan breaks; an apply is refused while any remain (unless forced).
    public var guardViolations: [GuardViolation]
    public var summary: PlanSummary
    /// New users per user group, for onboarding ("Sales: 120 new, 3 managers").
    public var onboarding: [GroupOnboarding]
    /// The privileges the apply would grant (Global Admin, Group Manager, privileged roles);
    /// nil when none, so that a plan saved before grants were listed encodes as it did.
    public var privilegeGrants: [PrivilegeGrant]? = nil

    /// The privileges granted, none as empty.
    public var grants: [PrivilegeGrant] { privilegeGrants ?? [] }

    /// True when applying would change nothing.
    public var isEmpty: Bool { groupCreations.isEmpty && userChanges.isEmpty }
}

/// The kinds of change a plan groups its lines by.
public enum PlannedAction: String, Sendable, Codable, CaseIterable, Comparable {
    case create, link, update, enable, disable

    public static func < (lhs: PlannedAction, rhs: PlannedAction) -> Bool {
        lhs.rank < rhs.rank
    }

    /// The order plans list actions in.
    var rank: Int {
        switch self {
        case .create: 0
        case .link: 1
        case .update: 2
        case .enable: 3
        case .disable: 4
        }
    }
}

/// A user group to create, and the rule that names it.
public struct PlannedGroup: Sendable, Codable, Equatable {
    public var name: String
    public var reason: String
}

/// One client user's change: its fields old → new, the history action, and why.
public struct PlannedUserChange: Sendable, Codable, Equatable {
    public var action: PlannedAction
    /// The history row's action (`created`, `updated`, `group_changed`, …).
    public var historyAction: HistoryAction
    public var email: String
    /// The store's id of the user; nil for a user to create.
    public var userID: Int64?
    public var externalID: String?
    public var dn: String?
    /// Attribute → old and new value (`user_group` by name); a creation has every set attribute with no old value.
    public var fields: AttributeChanges
    /// Why, one line per decision: the rule and group path, or the directory's state.
    public var reasons: [String]
    /// A new user who gets a login and an invitation.
    public var invite: Bool
    /// The user's first and last name as the portal will hold them, for reading the plan
    /// (updates and disables too, whose fields may not include the name); absent in plans saved before it.
    public var name: String? = nil
}

extension PlannedUserChange {
    /// First and last name as the plan has them (new values), or empty.
    public var displayName: String {
        if let name { return name }
        return [fields[.field(.firstName)]?.new?.text, fields[.field(.lastName)]?.new?.text].compactMap { $0 }.joined(separator: " ")
    }
}

/// A privilege one apply would grant: Global Admin, Group Manager, or a privileged role.
public struct PrivilegeGrant: Sendable, Codable, Equatable {
    public enum Privilege: Sendable, Equatable, Hashable {
        case globalAdmin, groupManager
        case role(String)

        /// Equal, a role's name compared case-insensitively.
        func sameAs(_ other: Privilege) -> Bool {
            switch (self, other) {
            case (.role(let a), .role(let b)): a.lowercased() == b.lowercased()
            default: self == other
            }
        }

        /// `global_admin`, `group_manager` or `role`: the key rules and history use.
        var ruleKey: String {
            switch self {
            case .globalAdmin: "global_admin"
            case .groupManager: "group_manager"
            case .role: "role"
            }
        }
    }

    public var email: String
    public var privilege: Privilege
    /// The plan's action for the user: `create`, `update`, `enable`, `link`.
    public var action: PlannedAction
    /// The decision that grants it, when the plan has one.
    public var reason: String?

    /// `Global Admin`, `Group Manager`, `role Admin`.
    public var privilegeText: String {
        switch privilege {
        case .globalAdmin: "Global Admin"
        case .groupManager: "Group Manager"
        case .role(let role): "role \(role)"
        }
    }

    enum CodingKeys: String, CodingKey {
        case email, privilege, role, action, reason
    }

    public init(email: String, privilege: Privilege, action: PlannedAction, reason: String?) {
        (self.email, self.privilege, self.action, self.reason) = (email, privilege, action, reason)
    }

    /// `{"email", "privilege": "global_admin" | "group_manager" | "role", "role": "Admin" (roles only), "action", "reason"}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        email = try container.decode(String.self, forKey: .email)
        action = try container.decode(PlannedAction.self, forKey: .action)
        reason = try container.decodeIfPresent(String.self, forKey: .reason)
        switch try container.decode(String.self, forKey: .privilege) {
        case "global_admin": privilege = .globalAdmin
        case "group_manager": privilege = .groupManager
        case "role": privilege = .role(try container.decode(String.self, forKey: .role))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .privilege, in: container, debugDescription: "unknown privilege \(other)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(email, forKey: .email)
        try container.encode(privilege.ruleKey, forKey: .privilege)
        if case .role(let role) = privilege { try container.encode(role, forKey: .role) }
        try container.encode(action, forKey: .action)
        try container.encodeIfPresent(reason, forKey: .reason)
    }
}

/// A change a protected user was spared.
public struct ProtectedNote: Sendable, Codable, Equatable {
    public var email: String
    public var withheld: [String]
}

/// A safety guard the plan breaks, with its figures.
public struct GuardViolation: Sendable, Codable, Equatable, CustomStringConvertible {
    /// `empty_read`, `max_disable`, `max_demote`, `max_promote` or `last_global_admin`.
    public var guardName: String
    public var message: String

    public var description: String { "\(guardName): \(message)" }

    enum CodingKeys: String, CodingKey {
        case guardName = "guard"
        case message
    }
}

/// Counts per action; the summary line and `sync_runs.summary`.
public struct PlanSummary: Sendable, Codable, Equatable {
    public var create = 0
    public var link = 0
    public var update = 0
    public var enable = 0
    public var disable = 0
    public var unchanged = 0
    public var groupsCreated = 0
    public var invitations = 0
    public var skipped = 0
    /// Directory entries read (users).
    public var entriesRead = 0
    /// Directory users considered (read and mapped).
    public var total = 0
    /// Of the disables, the store's users no longer in the directory: the summary line counts
    /// them in its "of N" so that its parts add up.
    public var gone = 0
    /// Search continuation references the read skipped, never followed (AD returns them at a domain root).
    public var referencesSkipped = 0

    enum CodingKeys: String, CodingKey {
        case create, link, update, enable, disable, unchanged, skipped, total, invitations, gone
        case groupsCreated = "groups_created"
        case entriesRead = "entries_read"
        case referencesSkipped = "references_skipped"
    }

    public init() {}

    /// Every count must be there, except `references_skipped`, which plans saved by an
    /// earlier dirbridge do not carry.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        create = try container.decode(Int.self, forKey: .create)
        link = try container.decode(Int.self, forKey: .link)
        update = try container.decode(Int.self, forKey: .update)
        enable = try container.decode(Int.self, forKey: .enable)
        disable = try container.decode(Int.self, forKey: .disable)
        unchanged = try container.decode(Int.self, forKey: .unchanged)
        groupsCreated = try container.decode(Int.self, forKey: .groupsCreated)
        invitations = try container.decode(Int.self, forKey: .invitations)
        skipped = try container.decode(Int.self, forKey: .skipped)
        entriesRead = try container.decode(Int.self, forKey: .entriesRead)
        total = try container.decode(Int.self, forKey: .total)
        referencesSkipped = try container.decodeIfPresent(Int.self, forKey: .referencesSkipped) ?? 0
        gone = try container.decodeIfPresent(Int.self, forKey: .gone) ?? 0
    }

    /// Every count, but `gone` only when there are any: a plan saved by an earlier dirbridge
    /// encodes (and hashes) as it did.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        for (key, value) in [(CodingKeys.create, create), (.link, link), (.update, update), (.enable, enable), (.disable, disable),
                             (.unchanged, unchanged), (.groupsCreated, groupsCreated), (.invitations, invitations), (.skipped, skipped),
                             (.entriesRead, entriesRead), (.total, total), (.referencesSkipped, referencesSkipped)] {
            try container.encode(value, forKey: key)
        }
        if gone > 0 { try container.encode(gone, forKey: .gone) }
    }

    /// The counts as the `sync_runs.summary` JSON object.
    public var counts: [String: Int] {
        var counts = ["create": create, "link": link, "update": update, "enable": enable, "disable": disable, "unchanged": unchanged,
                      "groups_created": groupsCreated, "invitations": invitations, "skipped": skipped, "entries_read": entriesRead]
        if referencesSkipped > 0 { counts["references_skipped"] = referencesSkipped }
        if gone > 0 { counts["gone"] = gone }
        return counts
    }

    /// `12 to create, 3 to update, 1 to disable, 0 unchanged of 412`.
    public var line: String {
        var parts = ["\(create) to create"]
        if link > 0 { parts.append("\(link) to link") }
        parts.append("\(update) to update")
        if enable > 0 { parts.append("\(enable) to re-enable") }
        parts.append("\(disable) to disable")
        return parts.joined(separator: ", ") + ", \(unchanged) unchanged of \(total + gone)"
            + (groupsCreated > 0 ? "; \(groupsCreated) user group\(groupsCreated == 1 ? "" : "s") to create" : "")
            + (skipped > 0 ? "; \(skipped) skipped" : "")
            + (referencesSkipped > 0 ? "; \(referencesSkipped) continuation reference\(referencesSkipped == 1 ? "" : "s") not followed" : "")
    }
}

/// New users landing in one user group.
public struct GroupOnboarding: Sendable, Codable, Equatable {
    public var userGroup: String
    public var new: Int
    public var managers: Int

    enum CodingKeys: String, CodingKey {
        case userGroup = "user_group"
        case new, managers
    }
}
