/// A user group to create, from the directory.
public struct NewUserGroup: Sendable, Equatable {
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
public struct UserGroupRename: Sendable, Equatable {
    public var userGroupID: Int64
    public var newName: String
    public var reason: String?

    public init(userGroupID: Int64, newName: String, reason: String? = nil) {
        self.userGroupID = userGroupID
        self.newName = newName
        self.reason = reason
    }
}

/// A client user to create, with every portal attribute.
///
/// Its history is one `created` row whose changes hold every set attribute as `[null, value]`
/// (with `user_group` by name and, when `invite` is set, `"invited": [null, true]`); the
/// invitation itself is an `invitations` row.
public struct NewClientUser: Sendable, Equatable {
    /// The text fields, email included.
    public var fields: PortalFieldValues
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
        email: String, fields: PortalFieldValues = PortalFieldValues(), role: String = defaultRoleName, userGroupName: String? = nil,
        globalAdmin: Bool = false, groupManager: Bool = false, hasLogin: Bool = false, enabled: Bool = true,
        source: RecordSource = .directory, externalID: String? = nil, externalDN: String? = nil, invite: Bool = false, reason: String? = nil
    ) {
        self.fields = fields
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
        self.fields[.email] = email
    }

    public var email: String { fields[.email] ?? "" }

    /// The value of one attribute (`user_group` by name, nil for the default group).
    public subscript(attribute: UserAttribute) -> FieldValue? {
        get {
            switch attribute {
            case .field(let field): fields[field].map(FieldValue.text)
            case .userGroup: userGroupName.map(FieldValue.text)
            case .role: .text(role)
            case .globalAdmin: .flag(globalAdmin)
            case .groupManager: .flag(groupManager)
            case .hasLogin: .flag(hasLogin)
            case .enabled: .flag(enabled)
            case .source: .text(source.rawValue)
            case .externalID: externalID.map(FieldValue.text)
            case .externalDN: externalDN.map(FieldValue.text)
            }
        }
        set {
            switch attribute {
            case .field(let field): fields[field] = newValue?.text
            case .userGroup: userGroupName = newValue?.text
            case .role: role = newValue?.text ?? defaultRoleName
            case .globalAdmin: globalAdmin = newValue?.flag ?? false
            case .groupManager: groupManager = newValue?.flag ?? false
            case .hasLogin: hasLogin = newValue?.flag ?? false
            case .enabled: enabled = newValue?.flag ?? true
            case .source: source = newValue?.text.flatMap(RecordSource.init(rawValue:)) ?? .directory
            case .externalID: externalID = newValue?.text
            case .externalDN: externalDN = newValue?.text
            }
        }
    }
}

/// Changes to one existing client user: one `UPDATE` of the changed columns and one history row.
///
/// `user_group` takes the user group's name (case-insensitive) and sets `user_group_id`. All
/// attributes change in the same statement, so moving a Global Admin to a custom group while
/// clearing the flag is valid.
public struct ClientUserUpdate: Sendable, Equatable {
    public var userID: Int64
    /// The history action: `updated`, `disabled`, `enabled`, `group_changed`, `linked`, ...
    public var action: HistoryAction
    public var fields: AttributeChanges
    public var reason: String?

    public init(userID: Int64, action: HistoryAction, fields: AttributeChanges, reason: String? = nil) {
        self.userID = userID
        self.action = action
        self.fields = fields
        self.reason = reason
    }
}

/// A new invitation for an existing client user ("resend invite"): an `invitations` row
/// and an `invited` history row.
public struct InvitationRequest: Sendable, Equatable {
    public var userID: Int64
    public var reason: String?

    public init(userID: Int64, reason: String? = nil) {
        self.userID = userID
        self.reason = reason
    }
}

/// Everything one apply writes to one client, in the order the store writes it: user group
/// creations, renames, user creations, user updates, invitations.
public struct ChangeSet: Sendable, Equatable {
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

extension ChangeSet {
    /// What applying `plan` writes to client `clientID`, in one transaction.
    public init(plan: Plan, clientID: Int64, editor: String) {
        let creations = plan.userChanges.filter { $0.action == .create }.map { change -> NewClientUser in
            var user = NewClientUser(email: change.email, externalID: change.externalID, externalDN: change.dn, invite: change.invite,
                                     reason: change.reasons.joined(separator: "\n"))
            for element in change.fields {
                user[element.attribute] = element.change.new
            }
            return user
        }
        let updates = plan.userChanges.filter { $0.action != .create }.compactMap { change -> ClientUserUpdate? in
            guard let id = change.userID else { return nil }
            return ClientUserUpdate(userID: id, action: change.historyAction, fields: change.fields, reason: change.reasons.joined(separator: "\n"))
        }
        self.init(
            clientID: clientID, editor: editor,
            groupCreations: plan.groupCreations.map { NewUserGroup(name: $0.name, source: .directory, reason: $0.reason) },
            userCreations: creations, userUpdates: updates)
    }
}
