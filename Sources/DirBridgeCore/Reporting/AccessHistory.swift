import Foundation

/// One client user's history, oldest first, with the row as it stands now: what the access
/// view as of a date and the privilege review are reconstructed from. Pure: no I/O.
public struct UserTimeline: Sendable, Equatable {
    /// One history row of the user.
    public struct Event: Sendable, Equatable {
        public var at: String
        public var action: String
        /// Column → `[old, new]`, as `history.changes` holds them (`user_group` by name).
        public var changes: [String: [HistoryValue]]
        public var editor: String
        public var runID: Int64?
        public var reason: String?

        public init(at: String, action: String, changes: [String: [HistoryValue]], editor: String = "dirbridge", runID: Int64? = nil, reason: String? = nil) {
            (self.at, self.action, self.changes, self.editor, self.runID, self.reason) = (at, action, changes, editor, runID, reason)
        }
    }

    /// A user group renamed (a `group_renamed` history row of the user's client): users'
    /// history names groups as they were called at the time.
    public struct GroupRename: Sendable, Equatable {
        public var at: String
        public var old: String
        public var new: String

        public init(at: String, old: String, new: String) { (self.at, self.old, self.new) = (at, old, new) }
    }

    public var userID: Int64
    public var client: String
    public var events: [Event]
    /// The client's user group renames, oldest first.
    public var groupRenames: [GroupRename] = []
    /// The columns of the row now (`user_group` by name); nil when the row is gone.
    public var current: [String: HistoryValue]?
    /// `client_users.created_at`, when the row is there.
    public var createdAt: String?

    public init(userID: Int64, client: String, events: [Event], current: [String: HistoryValue]?, createdAt: String?) {
        (self.userID, self.client, self.events, self.current, self.createdAt) = (userID, client, events, current, createdAt)
    }
}

/// The users view at a past moment, and the grants and removals of privileges, both read off
/// the history rows.
///
/// A column's value at T is the new value of its last change at or before T; with no change
/// by then (a row that predates dirbridge's history), the old value of its next change, or
/// the row as it is now. Where the rows disagree with each other (a change's old value is
/// not the previous change's new value, or the row now is not the last change's new value),
/// an edit was made without a history row, and the value at T is reported as unknown, never guessed.
public enum AccessHistory {
    /// The columns `dirbridge users` shows, as history and `client_users` name them.
    public static let columns: [String] = PortalField.allCases.map(\.rawValue) + ["role", "user_group", "has_login", "global_admin", "group_manager", "enabled"]

    /// A user as of T: the values known, the columns history cannot tell, and why.
    public struct Reconstruction: Sendable, Equatable {
        public var values: [String: HistoryValue]
        public var unknown: [String]
        public var notes: [String]
    }

    /// The user as of `moment` (stored time text), or nil when the user did not exist then.
    public static func reconstruct(_ timeline: UserTimeline, at moment: String) -> Reconstruction? {
        let created = timeline.events.first { $0.action == HistoryAction.created.rawValue }
        if let created {
            if created.at > moment { return nil }
        } else if let createdAt = timeline.createdAt {
            if createdAt > moment { return nil }
        } else if timeline.events.first.map({ $0.at > moment }) ?? true {
            return nil
        }
        var values: [String: HistoryValue] = [:]
        var unknown: [String] = []
        var notes: [String] = []
        if created == nil {
            notes.append("no 'created' history row: the user predates dirbridge's history or was made by the portal; values come from later changes or the row now")
        }
        /// A user group's name carried from one moment to a later one through the renames between.
        func renamed(_ value: HistoryValue?, from start: String, to end: String) -> HistoryValue? {
            guard case .text(var name)? = value else { return value }
            for rename in timeline.groupRenames where rename.at > start && rename.at <= end && rename.old.lowercased() == name.lowercased() {
                name = rename.new
            }
            return .text(name)
        }
        let now = "9999"
        for column in columns {
            let changes = timeline.events.filter { $0.changes[column] != nil }
            let before = changes.last { $0.at <= moment }
            let after = changes.first { $0.at > moment }
            var value: HistoryValue?
            if let before {
                value = before.changes[column]?.last
                if column == "user_group" { value = renamed(value, from: before.at, to: moment) }
            } else if created != nil {
                value = nil    // created without this column set: empty
            } else if let after {
                value = after.changes[column]?.first
            } else {
                value = timeline.current?[column]
            }
            // The value at T must be what the next change found, or what the row holds now.
            let next: HistoryValue?? = after.map { $0.changes[column]?.first } ?? (timeline.current.map { $0[column] })
            let carried = column == "user_group" ? renamed(value, from: moment, to: after?.at ?? now) : value
            if let next, !same(next, carried), before != nil || created != nil {
                unknown.append(column)
                continue
            }
            if let value, value != .null { values[column] = value }
        }
        if timeline.current == nil {
            notes.append("the row is no longer in client_users (deleted outside dirbridge's history); when it went is unknown")
        }
        if !unknown.isEmpty {
            notes.append("\(unknown.joined(separator: ", ")) changed without a history row around that time (an edit outside dirbridge's history)")
        }
        return Reconstruction(values: values, unknown: unknown, notes: notes)
    }

    /// Null and an empty text are the same "no value".
    private static func same(_ lhs: HistoryValue?, _ rhs: HistoryValue?) -> Bool {
        func normal(_ value: HistoryValue?) -> HistoryValue? {
            switch value {
            case .none, .some(.null): nil
            case .some(.text(let text)) where text.isEmpty: nil
            case .some(.number(let number)) where number == 0 || number == 1: .flag(number == 1)
            default: value
            }
        }
        return normal(lhs) == normal(rhs)
    }

    /// The users-view row of a reconstruction (unknown columns empty).
    public static func row(_ reconstruction: Reconstruction, client: String) -> UserListingRow {
        let values = reconstruction.values
        func text(_ column: String) -> String? { if case .text(let text)? = values[column] { text } else { nil } }
        func flag(_ column: String) -> Bool {
            switch values[column] {
            case .flag(let flag)?: flag
            case .number(let number)?: number != 0
            default: false
            }
        }
        var fields = PortalFieldValues()
        for field in PortalField.allCases { if let value = text(field.rawValue) { fields[field] = value } }
        return UserListingRow(client: client, email: text("email") ?? "", fields: fields, role: text("role") ?? defaultRoleName,
                              userGroup: text("user_group") ?? defaultUserGroupName, hasLogin: flag("has_login"),
                              globalAdmin: flag("global_admin"), groupManager: flag("group_manager"), enabled: values["enabled"].map { _ in flag("enabled") } ?? true)
    }

    /// Every grant and removal of Global Admin, Group Manager and the `privilegedRoles` in the
    /// timelines, oldest first: flag and role changes, creations that come with them, and
    /// disables and re-enables of users who hold one.
    public static func privilegeEvents(_ timelines: [UserTimeline], privilegedRoles: [String], since: String? = nil) -> [PrivilegeEvent] {
        let privileged = Set(privilegedRoles.map { $0.lowercased() })
        var events: [(order: Int, event: PrivilegeEvent)] = []
        for timeline in timelines {
            // A user older than the history: what it held before its first recorded change is
            // each column's first old value, or the row now for columns never changed.
            var state: [String: HistoryValue] = [:]
            if !timeline.events.contains(where: { $0.action == HistoryAction.created.rawValue }) {
                state = timeline.current ?? [:]
                for event in timeline.events.reversed() {
                    for (column, pair) in event.changes { if let old = pair.first { state[column] = old } }
                }
            }
            var email = timeline.current?["email"].flatMap { if case .text(let text) = $0 { text } else { nil } }
            /// Privileges held, keyed case-insensitively (a role written `admin` then `Admin` is one role).
            func held(_ values: [String: HistoryValue]) -> [String: String] {
                if case .flag(false)? = values["enabled"] { return [:] }
                var result: [String: String] = [:]
                if case .flag(true)? = values["global_admin"] { result["global admin"] = "Global Admin" }
                if case .flag(true)? = values["group_manager"] { result["group manager"] = "Group Manager" }
                if case .text(let role)? = values["role"], privileged.contains(role.lowercased()) { result["role " + role.lowercased()] = "role \(role)" }
                return result
            }
            for (index, event) in timeline.events.enumerated() {
                let before = held(state)
                for (column, pair) in event.changes {
                    if let new = pair.last { state[column] = new }
                    if column == "email", case .text(let text)? = pair.last { email = text }
                }
                let after = held(state)
                guard since.map({ event.at >= $0 }) ?? true else { continue }
                let how: (granted: String, removed: String) = event.action == HistoryAction.enabled.rawValue
                    ? ("granted (re-enabled)", "removed") : event.action == HistoryAction.disabled.rawValue ? ("granted", "removed (disabled)") : ("granted", "removed")
                for key in after.keys.sorted() where before[key] == nil {
                    events.append((index, PrivilegeEvent(at: event.at, client: timeline.client, email: email ?? "#\(timeline.userID)", privilege: after[key]!,
                                                         change: how.granted, editor: event.editor, runID: event.runID, reason: event.reason)))
                }
                for key in before.keys.sorted() where after[key] == nil {
                    events.append((index, PrivilegeEvent(at: event.at, client: timeline.client, email: email ?? "#\(timeline.userID)", privilege: before[key]!,
                                                         change: how.removed, editor: event.editor, runID: event.runID, reason: event.reason)))
                }
            }
        }
        return events.sorted { ($0.event.at, $0.event.runID ?? 0, $0.event.email, $0.order) < ($1.event.at, $1.event.runID ?? 0, $1.event.email, $1.order) }.map(\.event)
    }

    /// `history --privileges` as text.
    public static func text(_ events: [PrivilegeEvent]) -> String {
        TextTable(headers: ["Date", "Client", "User", "Privilege", "Change", "Editor", "Run", "Reason"], rows: events.map { event in
            [event.at, event.client, event.email, event.privilege, event.change, event.editor, event.runID.map { "#\($0)" } ?? "",
             (event.reason ?? "").split(separator: "\n").first(where: { line in
                 ["global_admin", "group_manager", "role", "disabled", "enabled"].contains { line.contains($0) }
             }).map(String.init) ?? (event.reason ?? "").split(separator: "\n").first.map(String.init) ?? ""]
        }).render()
    }
}

/// One grant or removal of a privilege, as `history --privileges` lists it.
public struct PrivilegeEvent: Sendable, Equatable, Encodable {
    public var at: String
    public var client: String
    public var email: String
    /// `Global Admin`, `Group Manager` or `role NAME`.
    public var privilege: String
    /// `granted`, `removed`, `granted (re-enabled)`, `removed (disabled)`.
    public var change: String
    public var editor: String
    public var runID: Int64?
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case at, client, email, privilege, change, editor, reason
        case runID = "run_id"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(at, forKey: .at)
        try container.encode(client, forKey: .client)
        try container.encode(email, forKey: .email)
        try container.encode(privilege, forKey: .privilege)
        try container.encode(change, forKey: .change)
        try container.encode(editor, forKey: .editor)
        try container.encode(runID, forKey: .runID)
        try container.encode(reason, forKey: .reason)
    }
}

/// `dirbridge users --as-of`: the users view at a moment, and the users history cannot tell about.
public struct AccessView: Sendable, Equatable {
    /// A user whose row at the moment history cannot fully tell.
    public struct Uncertain: Sendable, Equatable, Encodable {
        public var client: String
        public var email: String
        /// Columns whose value then is unknown (shown empty).
        public var unknown: [String]
        public var notes: [String]
    }

    public var moment: String
    public var rows: [UserListingRow]
    public var uncertain: [Uncertain]

    /// The view at `moment` (stored time text) from the users' timelines.
    public static func asOf(_ moment: String, timelines: [UserTimeline]) -> AccessView {
        var rows: [UserListingRow] = []
        var uncertain: [Uncertain] = []
        for timeline in timelines {
            guard let reconstruction = AccessHistory.reconstruct(timeline, at: moment) else { continue }
            let row = AccessHistory.row(reconstruction, client: timeline.client)
            rows.append(row)
            if !reconstruction.notes.isEmpty {
                uncertain.append(Uncertain(client: timeline.client, email: row.email.isEmpty ? "#\(timeline.userID)" : row.email,
                                           unknown: reconstruction.unknown, notes: reconstruction.notes))
            }
        }
        return AccessView(moment: moment, rows: rows, uncertain: uncertain)
    }

    /// The table as `users` prints it, then what history cannot tell.
    public static func text(_ view: AccessView, rows: [UserListingRow], showClient: Bool) -> String {
        var out = "Client users as of \(view.moment), from the history:\n"
        out += rows.isEmpty ? "No client users.\n" : UserListing.text(rows, showClient: showClient)
        if !view.uncertain.isEmpty {
            out += "\nHistory cannot tell everything about \(view.uncertain.count) user\(view.uncertain.count == 1 ? "" : "s") (unknown values are shown empty):\n"
            for user in view.uncertain {
                out += "  \(user.email)" + (showClient ? " (\(user.client))" : "") + ": " + user.notes.joined(separator: "; ") + "\n"
            }
        }
        return out
    }

    /// `{"as_of": …, "users": [the rows as users --json prints them], "uncertain": [{client, email, unknown, notes}]}`.
    public static func json(_ view: AccessView, rows: [UserListingRow]) throws -> String {
        struct Document: Encodable {
            var asOf: String
            var users: [UserListingRow]
            var uncertain: [Uncertain]
            enum CodingKeys: String, CodingKey { case asOf = "as_of", users, uncertain }
        }
        return try JSONOutput.encode(value: Document(asOf: view.moment, users: rows, uncertain: view.uncertain))
    }
}
