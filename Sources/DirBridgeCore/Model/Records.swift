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

/// A row of `client_users`: the user's portal attributes, its user group's id, and its
/// row's ids and times (the stored UTC ISO-8601 text). `stored.role`, `stored.email` … read
/// the ``PortalUser`` it holds.
@dynamicMemberLookup
public struct StoredUser: Sendable, Equatable {
    public var id: Int64
    public var clientID: Int64
    public var userGroupID: Int64
    public var user: PortalUser
    public var createdAt: String
    public var updatedAt: String

    public init(id: Int64, clientID: Int64, userGroupID: Int64, user: PortalUser, createdAt: String = "", updatedAt: String = "") {
        (self.id, self.clientID, self.userGroupID, self.user) = (id, clientID, userGroupID, user)
        (self.createdAt, self.updatedAt) = (createdAt, updatedAt)
    }

    /// A stored user from its columns one by one.
    public init(
        id: Int64, clientID: Int64, email: String, fields: PortalFieldValues = PortalFieldValues(), role: String = defaultRoleName,
        userGroupID: Int64, globalAdmin: Bool = false, groupManager: Bool = false, hasLogin: Bool = false, enabled: Bool = true,
        source: RecordSource = .directory, externalID: String? = nil, externalDN: String? = nil, createdAt: String = "", updatedAt: String = ""
    ) {
        self.init(id: id, clientID: clientID, userGroupID: userGroupID,
                  user: PortalUser(email: email, fields: fields, role: role, globalAdmin: globalAdmin, groupManager: groupManager,
                                   hasLogin: hasLogin, enabled: enabled, source: source, externalID: externalID, externalDN: externalDN),
                  createdAt: createdAt, updatedAt: updatedAt)
    }

    public subscript<Value>(dynamicMember attribute: WritableKeyPath<PortalUser, Value>) -> Value {
        get { user[keyPath: attribute] }
        set { user[keyPath: attribute] = newValue }
    }

    /// One text field's stored value.
    public subscript(field: PortalField) -> String? {
        get { user.fields[field] }
        set { user.fields[field] = newValue }
    }
}

/// Everything the planner needs about one client, read in one transaction.
public struct ClientState: Sendable, Equatable {
    public var client: ClientRecord
    public var userGroups: [StoredUserGroup]
    public var users: [StoredUser]

    public init(client: ClientRecord, userGroups: [StoredUserGroup], users: [StoredUser]) {
        self.client = client
        self.userGroups = userGroups
        self.users = users
    }

    /// The client's Default User Group.
    public var defaultUserGroup: StoredUserGroup? { userGroups.first { $0.isDefault } }
}

/// Whole-client figures the guards count against, so that a plan made for some users
/// judges the whole client (``GuardCheck``).
public struct ClientPopulation: Sendable, Equatable {
    /// Enabled users that came from the directory: what `max_disable`'s share and the empty read count.
    public var enabledDirectoryUsers: Int
    /// Users that came from the directory, enabled or not: none means a first sync (`max_promote` is exempt).
    public var directoryUsers: Int
    /// Enabled Global Admins, of any source: the last one is never removed.
    public var enabledGlobalAdmins: Int

    public init(enabledDirectoryUsers: Int, directoryUsers: Int, enabledGlobalAdmins: Int) {
        self.enabledDirectoryUsers = enabledDirectoryUsers
        self.directoryUsers = directoryUsers
        self.enabledGlobalAdmins = enabledGlobalAdmins
    }

    /// The figures of a fully loaded client.
    public init(users: [StoredUser]) {
        var population = ClientPopulation(enabledDirectoryUsers: 0, directoryUsers: 0, enabledGlobalAdmins: 0)
        // Read in place: a copy of each user would retain its every field.
        users.withUnsafeBufferPointer { users in
            for index in users.indices {
                if users[index].source == .directory {
                    population.directoryUsers += 1
                    if users[index].enabled { population.enabledDirectoryUsers += 1 }
                }
                if users[index].globalAdmin && users[index].enabled { population.enabledGlobalAdmins += 1 }
            }
        }
        self = population
    }
}

/// Part of a client's state (the users a plan can touch) and the whole client's figures.
struct PartialClientState {
    var state: ClientState
    var population: ClientPopulation
}

/// Portal-side edits since the last incremental apply (`store_touches`).
struct StoreTouches {
    var userIDs = Set<Int64>()
    var externalIDs = Set<String>()
    var userGroups = false
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
