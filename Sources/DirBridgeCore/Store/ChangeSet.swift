/// The actions a `history` row records (SPEC section 2).
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

/// One field's change, `old → new`; nil is SQL NULL (JSON `null` in `history.changes`).
///
/// Boolean columns (`global_admin`, `group_manager`, `has_login`, `enabled`) take `"1"`/`"0"`
/// (or `"true"`/`"false"`) and are written to the history as JSON booleans.
public struct FieldChange: Sendable, Equatable, Codable {
    public var old: String?
    public var new: String?

    public init(old: String?, new: String?) {
        self.old = old
        self.new = new
    }
}

/// A user group to create, from the directory.
public struct NewUserGroup: Sendable, Equatable, Codable {
    public var name: String
    public var source: RecordSource
    public var externalID: String?
    /// Why: the rule and the directory group that produced it.
    public var reason: String?

    public init(name: String, source: RecordSource = .directory, externalID: String? = nil, reason: String? = nil) {
        self.name = name
        self.source = source
        self.externalID = externalID
        self.reason = reason
    }
}

/// A user group to rename (its id stays).
public struct UserGroupRename: Sendable, Equatable, Codable {
    public var userGroupID: Int64
    public var newName: String
    public var reason: String?

    public init(userGroupID: Int64, newName: String, reason: String? = nil) {
        self.userGroupID = userGroupID
        self.newName = newName
        self.reason = reason
    }
}

/// A client user to create, with every portal field.
///
/// Its history is one `created` row whose changes hold every set field as `[null, value]`
/// (with `user_group` by name and, when `invite` is set, `"invited": [null, true]`); the
/// invitation itself is an `invitations` row.
public struct NewClientUser: Sendable, Equatable, Codable {
    public var email: String
    public var firstName: String?
    public var lastName: String?
    public var title: String?
    public var cellPhone: String?
    public var officePhone: String?
    public var `extension`: String?
    public var location: String?
    public var role: String
    /// The user group by name (case-insensitive); nil is the Default User Group.
    public var userGroupName: String?
    public var globalAdmin: Bool
    public var groupManager: Bool
    public var hasLogin: Bool
    public var enabled: Bool
    public var source: RecordSource
    public var externalID: String?
    public var externalDN: String?
    /// Issue an invitation (an `invitations` row) with the creation.
    public var invite: Bool
    public var reason: String?

    public init(
        email: String, firstName: String? = nil, lastName: String? = nil, title: String? = nil,
        cellPhone: String? = nil, officePhone: String? = nil, extension: String? = nil, location: String? = nil,
        role: String = "Guest", userGroupName: String? = nil, globalAdmin: Bool = false, groupManager: Bool = false,
        hasLogin: Bool = false, enabled: Bool = true, source: RecordSource = .directory,
        externalID: String? = nil, externalDN: String? = nil, invite: Bool = false, reason: String? = nil
    ) {
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.title = title
        self.cellPhone = cellPhone
        self.officePhone = officePhone
        self.extension = `extension`
        self.location = location
        self.role = role
        self.userGroupName = userGroupName
        self.globalAdmin = globalAdmin
        self.groupManager = groupManager
        self.hasLogin = hasLogin
        self.enabled = enabled
        self.source = source
        self.externalID = externalID
        self.externalDN = externalDN
        self.invite = invite
        self.reason = reason
    }
}

/// Changes to one existing client user: one `UPDATE` and one history row.
///
/// Field names are `client_users` column names, except `user_group`, which takes the user
/// group's name (case-insensitive) and sets `user_group_id`. All fields change in the same
/// statement, so moving a Global Admin to a custom group while clearing the flag is valid.
public struct ClientUserUpdate: Sendable, Equatable, Codable {
    /// The fields a change may name.
    public static let updatableFields: Set<String> = [
        "email", "first_name", "last_name", "title", "cell_phone", "office_phone", "extension", "location",
        "role", "user_group", "global_admin", "group_manager", "has_login", "enabled", "source",
        "external_id", "external_dn",
    ]

    public var userID: Int64
    /// The history action: `updated`, `disabled`, `enabled`, `group_changed`, `linked`, ...
    public var action: HistoryAction
    public var fields: [String: FieldChange]
    public var reason: String?

    public init(userID: Int64, action: HistoryAction, fields: [String: FieldChange], reason: String? = nil) {
        self.userID = userID
        self.action = action
        self.fields = fields
        self.reason = reason
    }
}

/// A new invitation for an existing client user ("resend invite"): an `invitations` row
/// and an `invited` history row.
public struct InvitationRequest: Sendable, Equatable, Codable {
    public var userID: Int64
    public var reason: String?

    public init(userID: Int64, reason: String? = nil) {
        self.userID = userID
        self.reason = reason
    }
}

/// Everything one apply writes to one client, in the order the store writes it: user group
/// creations, renames, user creations, user updates, invitations.
public struct ChangeSet: Sendable, Equatable, Codable {
    public var clientID: Int64
    /// The `history.editor` of every row: `dirbridge` or the mapping's `editor:`.
    public var editor: String
    public var groupCreations: [NewUserGroup]
    public var groupRenames: [UserGroupRename]
    public var userCreations: [NewClientUser]
    public var userUpdates: [ClientUserUpdate]
    public var invitations: [InvitationRequest]

    public init(
        clientID: Int64, editor: String = "dirbridge", groupCreations: [NewUserGroup] = [],
        groupRenames: [UserGroupRename] = [], userCreations: [NewClientUser] = [],
        userUpdates: [ClientUserUpdate] = [], invitations: [InvitationRequest] = []
    ) {
        self.clientID = clientID
        self.editor = editor
        self.groupCreations = groupCreations
        self.groupRenames = groupRenames
        self.userCreations = userCreations
        self.userUpdates = userUpdates
        self.invitations = invitations
    }

    /// Whether applying would change nothing.
    public var isEmpty: Bool {
        groupCreations.isEmpty && groupRenames.isEmpty && userCreations.isEmpty && userUpdates.isEmpty
            && invitations.isEmpty
    }
}
