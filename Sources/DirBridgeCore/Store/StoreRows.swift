import GRDB

// The model's records as GRDB reads them: by column name, never by position. The text
// fields' columns come from the catalogue (`PortalField`), the others from `Columns`.

extension ClientRecord: FetchableRecord, TableRecord {
    public static let databaseTableName = "clients"

    public enum Columns: String, ColumnExpression {
        case id, name, parentID = "parent_id", membershipEndDate = "membership_end_date", active, createdAt = "created_at"
    }

    public init(row: Row) {
        self.init(id: row[Columns.id], name: row[Columns.name], parentID: row[Columns.parentID],
                  membershipEndDate: row[Columns.membershipEndDate], active: row[Columns.active], createdAt: row[Columns.createdAt])
    }
}

extension StoredUserGroup: FetchableRecord, TableRecord {
    public static let databaseTableName = "user_groups"

    public enum Columns: String, ColumnExpression {
        case id, clientID = "client_id", name, isDefault = "is_default", source, externalID = "external_id", createdAt = "created_at"
    }

    public init(row: Row) {
        self.init(id: row[Columns.id], clientID: row[Columns.clientID], name: row[Columns.name], isDefault: row[Columns.isDefault],
                  source: RecordSource(rawValue: row[Columns.source]) ?? .portal, externalID: row[Columns.externalID],
                  createdAt: row[Columns.createdAt])
    }
}

extension StoredUser: FetchableRecord, TableRecord {
    public static let databaseTableName = "client_users"

    /// The columns that are not a ``UserAttribute``.
    public enum Columns: String, ColumnExpression {
        case id, clientID = "client_id", userGroupID = "user_group_id", createdAt = "created_at", updatedAt = "updated_at"
    }

    public init(row: Row) {
        var fields = PortalFieldValues()
        for field in PortalField.allCases { fields[field] = row[field.rawValue] }
        let user = PortalUser(
            email: fields[.email] ?? "", fields: fields, role: row[UserAttribute.role.column],
            globalAdmin: row[UserAttribute.globalAdmin.column], groupManager: row[UserAttribute.groupManager.column],
            hasLogin: row[UserAttribute.hasLogin.column], enabled: row[UserAttribute.enabled.column],
            source: RecordSource(rawValue: row[UserAttribute.source.column]) ?? .portal,
            externalID: row[UserAttribute.externalID.column], externalDN: row[UserAttribute.externalDN.column])
        self.init(id: row[Columns.id], clientID: row[Columns.clientID], userGroupID: row[Columns.userGroupID], user: user,
                  createdAt: row[Columns.createdAt], updatedAt: row[Columns.updatedAt])
    }
}

extension StoredUser {
    /// The columns ``init(orderedRow:)`` reads, in its order.
    static let orderedColumns = ["id", "client_id", "user_group_id", "created_at", "updated_at"]
        + PortalField.allCases.map(\.rawValue)
        + [UserAttribute.role, .globalAdmin, .groupManager, .hasLogin, .enabled, .source, .externalID, .externalDN].map(\.column)
    /// `SELECT` this `FROM client_users` for ``init(orderedRow:)``.
    static let orderedSelection = orderedColumns.joined(separator: ", ")

    /// A user from a row of ``orderedSelection``, read by position: looking its twenty columns
    /// up by name took half of loading a 100k-user client.
    init(orderedRow row: Row) {
        assert(row.count == Self.orderedColumns.count, "a row of StoredUser.orderedSelection")
        var fields = PortalFieldValues()
        for (offset, field) in PortalField.allCases.enumerated() { fields[field] = row[5 + offset] }
        let next = 5 + PortalField.allCases.count
        let source: String = row[next + 5]
        let user = PortalUser(
            email: fields[.email] ?? "", fields: fields, role: row[next], globalAdmin: row[next + 1], groupManager: row[next + 2],
            hasLogin: row[next + 3], enabled: row[next + 4], source: RecordSource(rawValue: source) ?? .portal,
            externalID: row[next + 6], externalDN: row[next + 7])
        self.init(id: row[0], clientID: row[1], userGroupID: row[2], user: user, createdAt: row[3], updatedAt: row[4])
    }
}
