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
@dynamicMemberLookup
public struct NewClientUser: Sendable, Equatable {
    public var user: PortalUser
    /// The user group by name (case-insensitive); nil is the Default User Group.
    public var userGroupName: String?
    /// Issue an invitation (an `invitations` row) with the creation.
    public var invite: Bool
    /// The history row's reason: the plan's reasons, one per line.
    public var reason: String? {
        get { reasonLines?.joined(separator: "\n") }
        set { reasonLines = newValue.map { [$0] } }
    }
    /// The reason's lines, joined only when the history row is written: a first sync's plan
    /// already holds them, and joined copies of 100k users' reasons cost 20 MB.
    private var reasonLines: [String]?

    public init(_ user: PortalUser, userGroupName: String? = nil, invite: Bool = false, reason: String? = nil) {
        (self.user, self.userGroupName, self.invite, self.reasonLines) = (user, userGroupName, invite, reason.map { [$0] })
    }

    /// A new user whose reason is `reasons`, one per line.
    init(_ user: PortalUser, userGroupName: String?, invite: Bool, reasons: [String]) {
        (self.user, self.userGroupName, self.invite, self.reasonLines) = (user, userGroupName, invite, reasons)
    }

    /// Equal attributes, invitation and reason text.
    public static func == (lhs: NewClientUser, rhs: NewClientUser) -> Bool {
        (lhs.user, lhs.userGroupName, lhs.invite) == (rhs.user, rhs.userGroupName, rhs.invite) && lhs.reason == rhs.reason
    }

    /// A new user from its attributes one by one.
    public init(
        email: String, fields: PortalFieldValues = PortalFieldValues(), role: String = defaultRoleName, userGroupName: String? = nil,
        globalAdmin: Bool = false, groupManager: Bool = false, hasLogin: Bool = false, enabled: Bool = true,
        source: RecordSource = .directory, externalID: String? = nil, externalDN: String? = nil, invite: Bool = false, reason: String? = nil
    ) {
        self.init(PortalUser(email: email, fields: fields, role: role, globalAdmin: globalAdmin, groupManager: groupManager, hasLogin: hasLogin,
                             enabled: enabled, source: source, externalID: externalID, externalDN: externalDN),
                  userGroupName: userGroupName, invite: invite, reason: reason)
    }

    public subscript<Value>(dynamicMember attribute: WritableKeyPath<PortalUser, Value>) -> Value {
        get { user[keyPath: attribute] }
        set { user[keyPath: attribute] = newValue }
    }

    /// The value of one attribute (`user_group` by name, nil for the default group).
    public subscript(attribute: UserAttribute) -> FieldValue? {
        get { attribute == .userGroup ? userGroupName.map(FieldValue.text) : user[attribute] }
        set { if attribute == .userGroup { userGroupName = newValue?.text } else { user[attribute] = newValue } }
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
        // Positions, not copies, of the creations: each copy of a planned change retains its every field.
        let changes = plan.userChanges
        let creations = changes.indices.filter { changes[$0].action == .create }.concurrentMap { position -> NewClientUser in
            if let creation = changes[position].fields.creation {
                // The planned user itself: its values are the mapped entry's, not copies.
                return NewClientUser(creation.user, userGroupName: creation.userGroup, invite: changes[position].invite,
                                     reasons: changes[position].reasons)
            }
            let change = changes[position]
            var user = NewClientUser(PortalUser(email: change.email, externalID: change.externalID, externalDN: change.dn), userGroupName: nil,
                                     invite: change.invite, reasons: change.reasons)
            for element in change.fields {
                user[element.attribute] = element.change.new
            }
            return user
        }
        let updates = changes.indices.compactMap { position -> ClientUserUpdate? in
            guard changes[position].action != .create, let id = changes[position].userID else { return nil }
            let change = changes[position]
            return ClientUserUpdate(userID: id, action: change.historyAction, fields: change.fields, reason: change.reasons.joined(separator: "\n"))
        }
        self.init(
            clientID: clientID, editor: editor,
            groupCreations: plan.groupCreations.map { NewUserGroup(name: $0.name, source: .directory, reason: $0.reason) },
            userCreations: creations, userUpdates: updates)
    }
}

/// What both stores' writers make of a change set, apart from the SQL: the history fields of a
/// created user, and the checked column assignments and history fields of an update.
enum ChangeSetRules {
    /// A user group's name folded as the stores' unique indexes fold it: ASCII letters only
    /// (SQLite's NOCASE, PostgreSQL's `dirbridge_fold`), so name lookups in the writers agree.
    static func nocaseKey(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map { scalar in
            (65...90).contains(scalar.value) ? Unicode.Scalar(scalar.value + 32)! : scalar
        }))
    }

    /// A column's new value in an update.
    enum NewValue {
        case null
        case value(FieldValue)
        case userGroup(Int64)
    }

    /// The `created` history row's fields: every set attribute (`user_group` by name), and
    /// `invited` when the user was invited.
    static func createdFields(_ user: NewClientUser, groupName: String) -> [ChangesJSON.Entry] {
        var fields: [ChangesJSON.Entry] = []
        fields.reserveCapacity(UserAttribute.allCases.count + 1)
        for attribute in UserAttribute.allCases {
            let value = attribute == .userGroup ? .text(groupName) : user[attribute]
            if let value { fields.append((attribute.name, .null, ChangesJSON.Value(value))) }
        }
        if user.invite { fields.append(("invited", .null, .flag(true))) }
        return fields
    }

    /// The update's columns (from the catalogue) with their new values, and its history fields;
    /// throws on a change the store refuses (no field, a required one set to null, a flag given
    /// text, an unknown user group or source).
    static func update(
        _ update: ClientUserUpdate, groupID: (String) throws -> Int64, groupName: (Int64) -> String?
    ) throws -> (columns: [(column: String, value: NewValue)], history: [ChangesJSON.Entry]) {
        guard !update.fields.isEmpty else { throw StoreError(.invalidChange, "an update with no changed field") }
        var columns: [(column: String, value: NewValue)] = []
        var history: [ChangesJSON.Entry] = []
        for (attribute, change) in update.fields.map({ ($0.attribute, $0.change) }) {
            let old = change.old.map(ChangesJSON.Value.init) ?? .null
            guard let new = change.new else {
                if attribute.isRequired { throw StoreError(.invalidChange, "\(attribute) cannot be null") }
                columns.append((attribute.column, .null))
                history.append((attribute.name, old, .null))
                continue
            }
            guard (new.flag != nil) == attribute.isFlag, change.old.map({ ($0.flag != nil) == attribute.isFlag }) ?? true else {
                throw StoreError(.invalidChange, "\(attribute) takes \(attribute.isFlag ? "1 or 0" : "text"), not \(new)")
            }
            var stored = new
            switch attribute {
            case .userGroup:
                let id = try groupID(new.description)
                columns.append((attribute.column, .userGroup(id)))
                stored = .text(groupName(id) ?? new.description)
            case .source where RecordSource(rawValue: new.description) == nil:
                throw StoreError(.invalidChange, "source is directory or portal, not \(new)")
            default:
                columns.append((attribute.column, .value(new)))
            }
            history.append((attribute.name, old, ChangesJSON.Value(stored)))
        }
        return (columns, history)
    }
}
