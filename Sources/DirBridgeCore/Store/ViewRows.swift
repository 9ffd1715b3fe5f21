import Foundation
import GRDB

// The rows the store's views return (`users`, `history`, `runs`, `clients`); Reporting renders them.

/// A value in a history change: text, a flag, a number or null, as stored in
/// `history.changes`.
public enum HistoryValue: Sendable, Equatable, Codable {
    case null
    case text(String)
    case flag(Bool)
    case number(Double)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .flag(flag)
        } else if let text = try? container.decode(String.self) {
            self = .text(text)
        } else {
            self = .number(try container.decode(Double.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .text(let text): try container.encode(text)
        case .flag(let flag): try container.encode(flag)
        case .number(let number): try container.encode(number)
        }
    }

    /// How the value reads in the text view: `—` for null, `yes`/`no` for flags.
    public var display: String {
        switch self {
        case .null: "—"
        case .text(let text): text.isEmpty ? "\"\"" : text
        case .flag(let flag): flag ? "yes" : "no"
        case .number(let number):
            number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        }
    }
}

/// One history entry as `dirbridge history` shows it.
public struct HistoryListingRow: Sendable, Equatable, Encodable {
    public var id: Int64
    public var client: String
    public var entity: String
    public var entityID: Int64
    /// The email of the user, the name of the user group or of the client.
    public var subject: String?
    public var action: String
    /// Field → `[old, new]`.
    public var changes: [String: [HistoryValue]]
    public var editor: String
    public var runID: Int64?
    public var at: String
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case id, client, entity, subject, action, changes, editor, at, reason
        case entityID = "entity_id", runID = "run_id"
    }

    /// Every key is present; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(client, forKey: .client)
        try container.encode(entity, forKey: .entity)
        try container.encode(entityID, forKey: .entityID)
        try container.encode(subject, forKey: .subject)
        try container.encode(action, forKey: .action)
        try container.encode(changes, forKey: .changes)
        try container.encode(editor, forKey: .editor)
        try container.encode(runID, forKey: .runID)
        try container.encode(at, forKey: .at)
        try container.encode(reason, forKey: .reason)
    }

    /// Parses stored `history.changes` text; text that is not a JSON object of pairs reads
    /// as one `changes` field holding it.
    public static func parseChanges(_ text: String) -> [String: [HistoryValue]] {
        if let parsed = try? JSONDecoder().decode([String: [HistoryValue]].self, from: Data(text.utf8)) {
            return parsed
        }
        return ["changes": [.null, .text(text)]]
    }
}

/// One sync run as `dirbridge runs` shows it.
public struct RunListingRow: Sendable, Equatable, Encodable {
    public var id: Int64
    public var client: String?
    public var mapping: String
    public var directory: String
    public var mode: String
    public var status: String
    public var startedAt: String
    public var finishedAt: String?
    /// Seconds between start and finish; nil while unknown.
    public var durationSeconds: Int?
    /// Counts per action.
    public var summary: [String: Int]
    public var error: String?
    public var entriesRead: Int?

    enum CodingKeys: String, CodingKey {
        case id, client, mapping, directory, mode, status, summary, error
        case startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds"
        case entriesRead = "entries_read"
    }

    /// Every key is present; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(client, forKey: .client)
        try container.encode(mapping, forKey: .mapping)
        try container.encode(directory, forKey: .directory)
        try container.encode(mode, forKey: .mode)
        try container.encode(status, forKey: .status)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(summary, forKey: .summary)
        try container.encode(error, forKey: .error)
        try container.encode(entriesRead, forKey: .entriesRead)
    }
}

/// One client as `dirbridge clients` shows it: the portal dashboard's numbers.
public struct ClientListingRow: Sendable, Equatable, Encodable {
    public var name: String
    public var parent: String?
    public var membershipEndDate: String?
    public var users: Int
    /// Distinct non-empty locations of the client's users (trimmed, ASCII case folded).
    public var locations: Int
    public var active: Bool
    public var createdAt: String
    /// The client's last sync run: its start, status and the worker (`host:pid`) that ran it.
    public var lastRunAt: String? = nil
    public var lastRunStatus: String? = nil
    public var lastRunWorker: String? = nil
    /// The worker (`host:pid`) holding the client's lease now, if its lease has not expired.
    public var leaseWorker: String? = nil

    enum CodingKeys: String, CodingKey {
        case name, parent, users, locations, active
        case membershipEndDate = "membership_end_date", createdAt = "created_at"
        case lastRunAt = "last_run_at", lastRunStatus = "last_run_status", lastRunWorker = "last_run_worker", leaseWorker = "lease_worker"
    }

    /// Every key is present; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(parent, forKey: .parent)
        try container.encode(membershipEndDate, forKey: .membershipEndDate)
        try container.encode(users, forKey: .users)
        try container.encode(locations, forKey: .locations)
        try container.encode(active, forKey: .active)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(lastRunAt, forKey: .lastRunAt)
        try container.encode(lastRunStatus, forKey: .lastRunStatus)
        try container.encode(lastRunWorker, forKey: .lastRunWorker)
        try container.encode(leaseWorker, forKey: .leaseWorker)
    }
}

/// One client user as `dirbridge users` shows it: the portal's columns, the user group by
/// name, and the client. `row.email`, `row.globalAdmin` … read the ``PortalUser`` it holds.
@dynamicMemberLookup
public struct UserListingRow: Sendable, Equatable, Encodable {
    public var client: String
    public var userGroup: String
    public var user: PortalUser

    public init(client: String, userGroup: String, user: PortalUser) {
        (self.client, self.userGroup, self.user) = (client, userGroup, user)
    }

    /// A row from its columns one by one.
    public init(
        client: String, email: String, fields: PortalFieldValues = PortalFieldValues(), role: String = defaultRoleName,
        userGroup: String = defaultUserGroupName, hasLogin: Bool = false, globalAdmin: Bool = false, groupManager: Bool = false,
        enabled: Bool = true
    ) {
        self.init(client: client, userGroup: userGroup, user: PortalUser(
            email: email, fields: fields, role: role, globalAdmin: globalAdmin, groupManager: groupManager, hasLogin: hasLogin, enabled: enabled))
    }

    public subscript<Value>(dynamicMember attribute: KeyPath<PortalUser, Value>) -> Value { user[keyPath: attribute] }

    public subscript(field: PortalField) -> String? { user.fields[field] }

    /// Every column is a key, named as in `client_users`; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ColumnKey.self)
        try container.encode(client, forKey: ColumnKey("client"))
        try container.encode(userGroup, forKey: ColumnKey(UserAttribute.userGroup.name))
        for attribute in Self.columns {
            switch user[attribute] {
            case .text(let text)?: try container.encode(text, forKey: ColumnKey(attribute.name))
            case .flag(let flag)?: try container.encode(flag, forKey: ColumnKey(attribute.name))
            case nil: try container.encodeNil(forKey: ColumnKey(attribute.name))
            }
        }
    }

    /// The user's attributes the view shows beside the client and the user group.
    static let columns = PortalField.allCases.map(UserAttribute.field) + [.role, .hasLogin, .globalAdmin, .groupManager, .enabled]

    private struct ColumnKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// A column `dirbridge users --sort` accepts, named as in `client_users` (`user_group` is
/// the user group's name).
public enum UserSortColumn: Sendable, Hashable {
    case client
    case field(PortalField)
    case role, userGroup, hasLogin, globalAdmin, groupManager, enabled

    public static let email = UserSortColumn.field(.email)

    public static let allCases: [UserSortColumn] = [.client] + PortalField.allCases.map(UserSortColumn.field)
        + [.role, .userGroup, .hasLogin, .globalAdmin, .groupManager, .enabled]

    public init?(rawValue: String) {
        guard let column = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = column
    }

    public var rawValue: String {
        switch self {
        case .client: "client"
        case .field(let field): field.rawValue
        case .role: UserAttribute.role.name
        case .userGroup: UserAttribute.userGroup.name
        case .hasLogin: UserAttribute.hasLogin.name
        case .globalAdmin: UserAttribute.globalAdmin.name
        case .groupManager: UserAttribute.groupManager.name
        case .enabled: UserAttribute.enabled.name
        }
    }

    /// The accepted names, for error messages.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The text a row sorts by in this column (flags: unset before set).
    func sortText(_ row: UserListingRow) -> String? {
        switch self {
        case .client: row.client
        case .field(let field): row[field]
        case .role: row.role
        case .userGroup: row.userGroup
        case .hasLogin: row.hasLogin ? "1" : "0"
        case .globalAdmin: row.globalAdmin ? "1" : "0"
        case .groupManager: row.groupManager ? "1" : "0"
        case .enabled: row.enabled ? "1" : "0"
        }
    }
}

// Rows read by the names the views' SQL gives their columns (the JSON keys), never by position.

extension HistoryListingRow: FetchableRecord {
    public init(row: Row) {
        id = row[CodingKeys.id.rawValue]
        client = row[CodingKeys.client.rawValue]
        entity = row[CodingKeys.entity.rawValue]
        entityID = row[CodingKeys.entityID.rawValue]
        subject = row[CodingKeys.subject.rawValue]
        action = row[CodingKeys.action.rawValue]
        changes = Self.parseChanges(row[CodingKeys.changes.rawValue])
        editor = row[CodingKeys.editor.rawValue]
        runID = row[CodingKeys.runID.rawValue]
        at = row[CodingKeys.at.rawValue]
        reason = row[CodingKeys.reason.rawValue]
    }
}

extension RunListingRow: FetchableRecord {
    public init(row: Row) {
        self.init(id: row[CodingKeys.id.rawValue], client: row[CodingKeys.client.rawValue], mapping: row[CodingKeys.mapping.rawValue],
                  directory: row[CodingKeys.directory.rawValue], mode: row[CodingKeys.mode.rawValue], status: row[CodingKeys.status.rawValue],
                  startedAt: row[CodingKeys.startedAt.rawValue], finishedAt: row[CodingKeys.finishedAt.rawValue],
                  summaryJSON: row[CodingKeys.summary.rawValue], error: row[CodingKeys.error.rawValue],
                  entriesRead: row[CodingKeys.entriesRead.rawValue])
    }
}

extension RunListingRow {
    /// A run from its columns, `summary` as stored (a JSON object of counts).
    init(id: Int64, client: String?, mapping: String, directory: String, mode: String, status: String, startedAt: String,
         finishedAt: String?, summaryJSON: String, error: String?, entriesRead: Int?) {
        (self.id, self.client, self.mapping, self.directory, self.mode, self.status) = (id, client, mapping, directory, mode, status)
        (self.startedAt, self.finishedAt, self.error, self.entriesRead) = (startedAt, finishedAt, error, entriesRead)
        summary = (try? JSONDecoder().decode([String: Int].self, from: Data(summaryJSON.utf8))) ?? [:]
        if let start = StoreTime.date(startedAt), let finish = finishedAt.flatMap(StoreTime.date) {
            durationSeconds = max(0, Int(finish.timeIntervalSince(start).rounded()))
        }
    }
}

extension ClientListingRow: FetchableRecord {
    public init(row: Row) {
        name = row[CodingKeys.name.rawValue]
        parent = row[CodingKeys.parent.rawValue]
        membershipEndDate = row[CodingKeys.membershipEndDate.rawValue]
        users = row[CodingKeys.users.rawValue]
        locations = row[CodingKeys.locations.rawValue]
        active = row[CodingKeys.active.rawValue]
        createdAt = row[CodingKeys.createdAt.rawValue]
        lastRunAt = row[CodingKeys.lastRunAt.rawValue]
        lastRunStatus = row[CodingKeys.lastRunStatus.rawValue]
        lastRunWorker = row[CodingKeys.lastRunWorker.rawValue]
        leaseWorker = row[CodingKeys.leaseWorker.rawValue]
    }
}
