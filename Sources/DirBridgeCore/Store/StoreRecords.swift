import Foundation

/// Where a client user or user group comes from: the directory (managed by dirbridge) or
/// the portal (created by a person, never touched unless adopted).
public enum RecordSource: String, Sendable, Codable, Equatable {
    case directory
    case portal
}

/// A client (an account) of the portal, as stored in `clients`.
public struct ClientRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var name: String
    public var parentID: Int64?
    /// `YYYY-MM-DD`, or nil when the membership does not end.
    public var membershipEndDate: String?
    public var active: Bool
    /// UTC ISO-8601.
    public var createdAt: String

    public init(id: Int64, name: String, parentID: Int64?, membershipEndDate: String?, active: Bool, createdAt: String) {
        self.id = id
        self.name = name
        self.parentID = parentID
        self.membershipEndDate = membershipEndDate
        self.active = active
        self.createdAt = createdAt
    }
}

/// What a mapping says about its client: created on first use if missing.
public struct ClientSpec: Sendable, Equatable, Codable {
    public var name: String
    /// The parent account's name; created (without a parent) if missing.
    public var parentName: String?
    /// `YYYY-MM-DD`.
    public var membershipEndDate: String?

    public init(name: String, parentName: String? = nil, membershipEndDate: String? = nil) {
        self.name = name
        self.parentName = parentName
        self.membershipEndDate = membershipEndDate
    }
}

/// A row of `user_groups`, every column.
public struct StoredUserGroup: Sendable, Equatable, Codable {
    public var id: Int64
    public var clientID: Int64
    public var name: String
    public var isDefault: Bool
    public var source: RecordSource
    public var externalID: String?
    public var createdAt: String

    public init(id: Int64, clientID: Int64, name: String, isDefault: Bool, source: RecordSource, externalID: String?, createdAt: String) {
        self.id = id
        self.clientID = clientID
        self.name = name
        self.isDefault = isDefault
        self.source = source
        self.externalID = externalID
        self.createdAt = createdAt
    }
}

/// A row of `client_users`, every column. Times are the stored UTC ISO-8601 text.
public struct StoredUser: Sendable, Equatable, Codable {
    public var id: Int64
    public var clientID: Int64
    public var email: String
    public var firstName: String?
    public var lastName: String?
    public var title: String?
    public var cellPhone: String?
    public var officePhone: String?
    public var `extension`: String?
    public var location: String?
    public var role: String
    public var userGroupID: Int64
    public var globalAdmin: Bool
    public var groupManager: Bool
    public var hasLogin: Bool
    public var enabled: Bool
    public var source: RecordSource
    public var externalID: String?
    public var externalDN: String?
    public var createdAt: String
    public var updatedAt: String

    public init(
        id: Int64, clientID: Int64, email: String, firstName: String?, lastName: String?, title: String?,
        cellPhone: String?, officePhone: String?, extension: String?, location: String?, role: String,
        userGroupID: Int64, globalAdmin: Bool, groupManager: Bool, hasLogin: Bool, enabled: Bool,
        source: RecordSource, externalID: String?, externalDN: String?, createdAt: String, updatedAt: String
    ) {
        self.id = id
        self.clientID = clientID
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.title = title
        self.cellPhone = cellPhone
        self.officePhone = officePhone
        self.extension = `extension`
        self.location = location
        self.role = role
        self.userGroupID = userGroupID
        self.globalAdmin = globalAdmin
        self.groupManager = groupManager
        self.hasLogin = hasLogin
        self.enabled = enabled
        self.source = source
        self.externalID = externalID
        self.externalDN = externalDN
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Everything the planner needs about one client, read in one transaction.
public struct ClientState: Sendable, Equatable {
    public var client: ClientRecord
    public var userGroups: [StoredUserGroup]
    public var users: [StoredUser]
    /// The highest `history.id` of the client when read (nil without history): a plan made
    /// from this state is stale once it has changed.
    public var lastHistoryID: Int64?

    public init(client: ClientRecord, userGroups: [StoredUserGroup], users: [StoredUser], lastHistoryID: Int64?) {
        self.client = client
        self.userGroups = userGroups
        self.users = users
        self.lastHistoryID = lastHistoryID
    }

    /// The client's Default User Group.
    public var defaultUserGroup: StoredUserGroup? { userGroups.first { $0.isDefault } }
}

/// How a sync run was invoked.
public enum RunMode: String, Sendable, Codable, Equatable {
    case dryRun = "dry-run"
    case apply
}

/// How a sync run ended.
public enum RunStatus: String, Sendable, Codable, Equatable {
    case succeeded
    case failed
    case refused
}

/// A row of `sync_runs`, as the engine writes it (the id is assigned by the store).
public struct SyncRunRecord: Sendable, Equatable, Codable {
    /// Nil when the run failed before its client could be resolved.
    public var clientID: Int64?
    /// The mapping file's path.
    public var mapping: String
    /// The directory URL read (never credentials).
    public var directory: String
    public var mode: RunMode
    public var status: RunStatus
    public var startedAt: Date
    /// Nil: the store sets the time the run is written.
    public var finishedAt: Date?
    /// Counts per action; stored as a JSON object with sorted keys. Left empty for
    /// ``PortalStore/apply(_:run:)``, the store counts the history rows it wrote.
    public var summary: [String: Int]
    public var error: String?
    public var entriesRead: Int?
    /// The hash of the reviewed plan an apply executed.
    public var planHash: String?
    /// Whether the read was incremental rather than a full reconcile.
    public var incremental: Bool

    public init(
        clientID: Int64?, mapping: String, directory: String, mode: RunMode, status: RunStatus,
        startedAt: Date, finishedAt: Date? = nil, summary: [String: Int] = [:], error: String? = nil,
        entriesRead: Int? = nil, planHash: String? = nil, incremental: Bool = false
    ) {
        self.clientID = clientID
        self.mapping = mapping
        self.directory = directory
        self.mode = mode
        self.status = status
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.summary = summary
        self.error = error
        self.entriesRead = entriesRead
        self.planHash = planHash
        self.incremental = incremental
    }
}

/// Time stamps as the store writes them: UTC ISO-8601 to the second, `2026-11-23T18:30:00Z`.
public enum StoreTime {
    /// The stored text for `date`.
    public static func text(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// The date for stored text, or nil when it is not UTC ISO-8601.
    public static func date(_ text: String) -> Date? {
        try? Date(text, strategy: .iso8601)
    }
}
