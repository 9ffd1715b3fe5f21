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

/// A row of `client_users`: the catalogue's text fields, the placement, the flags and the
/// link to the directory. Times are the stored UTC ISO-8601 text.
public struct StoredUser: Sendable, Equatable {
    public var id: Int64
    public var clientID: Int64
    /// The text fields, email included.
    public var fields: PortalFieldValues
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
        id: Int64, clientID: Int64, email: String, fields: PortalFieldValues = PortalFieldValues(), role: String = defaultRoleName,
        userGroupID: Int64, globalAdmin: Bool = false, groupManager: Bool = false, hasLogin: Bool = false, enabled: Bool = true,
        source: RecordSource = .directory, externalID: String? = nil, externalDN: String? = nil, createdAt: String = "", updatedAt: String = ""
    ) {
        self.id = id
        self.clientID = clientID
        self.fields = fields
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
        self.fields[.email] = email
    }

    /// The login name.
    public var email: String {
        get { fields[.email] ?? "" }
        set { fields[.email] = newValue }
    }

    /// One text field's stored value.
    public subscript(field: PortalField) -> String? {
        get { fields[field] }
        set { fields[field] = newValue }
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

/// The actions a `history` row records; a sync writes one per changed entity.
public enum HistoryAction: String, Sendable, Codable, Equatable, CaseIterable {
    case created
    case updated
    case disabled
    case enabled
    case groupChanged = "group_changed"
    case flagsChanged = "flags_changed"
    case roleChanged = "role_changed"
    case linked
    case invited
    case groupCreated = "group_created"
    case groupRenamed = "group_renamed"
}
