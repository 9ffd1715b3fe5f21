/// One client user as `dirbridge users` shows it: the portal's columns, the user group by
/// name, and the client.
public struct UserListingRow: Sendable, Equatable, Encodable {
    public var client: String
    /// The text fields, email included.
    public var fields: PortalFieldValues
    public var role: String
    public var userGroup: String
    public var hasLogin: Bool
    public var globalAdmin: Bool
    public var groupManager: Bool
    public var enabled: Bool

    public init(
        client: String, email: String, fields: PortalFieldValues = PortalFieldValues(), role: String = defaultRoleName,
        userGroup: String = defaultUserGroupName, hasLogin: Bool = false, globalAdmin: Bool = false, groupManager: Bool = false,
        enabled: Bool = true
    ) {
        self.client = client
        self.fields = fields
        self.role = role
        self.userGroup = userGroup
        self.hasLogin = hasLogin
        self.globalAdmin = globalAdmin
        self.groupManager = groupManager
        self.enabled = enabled
        self.fields[.email] = email
    }

    public var email: String { fields[.email] ?? "" }

    public subscript(field: PortalField) -> String? { fields[field] }

    /// Every column is a key, named as in `client_users`; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ColumnKey.self)
        try container.encode(client, forKey: ColumnKey("client"))
        for field in PortalField.allCases { try container.encode(fields[field], forKey: ColumnKey(field.rawValue)) }
        try container.encode(role, forKey: ColumnKey(UserAttribute.role.name))
        try container.encode(userGroup, forKey: ColumnKey(UserAttribute.userGroup.name))
        try container.encode(hasLogin, forKey: ColumnKey(UserAttribute.hasLogin.name))
        try container.encode(globalAdmin, forKey: ColumnKey(UserAttribute.globalAdmin.name))
        try container.encode(groupManager, forKey: ColumnKey(UserAttribute.groupManager.name))
        try container.encode(enabled, forKey: ColumnKey(UserAttribute.enabled.name))
    }

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
        case .field(let field): row.fields[field]
        case .role: row.role
        case .userGroup: row.userGroup
        case .hasLogin: row.hasLogin ? "1" : "0"
        case .globalAdmin: row.globalAdmin ? "1" : "0"
        case .groupManager: row.groupManager ? "1" : "0"
        case .enabled: row.enabled ? "1" : "0"
        }
    }
}

/// The `dirbridge users` view: sorting and rendering of client users.
public enum UserListing {
    /// Rows sorted by `column` (Unicode-aware, case- and accent-insensitive, empty values
    /// last), `descending` reversing that order; ties always by email, ascending.
    public static func sorted(_ rows: [UserListingRow], by column: UserSortColumn, descending: Bool = false)
        -> [UserListingRow]
    {
        let keyed = rows.map { row in
            (row: row, key: column.sortText(row).map(UnicodeOrder.key), email: UnicodeOrder.key(row.email))
        }
        return keyed.sorted { lhs, rhs in
            let order = UnicodeOrder.compare(lhs.key, rhs.key)
            if order != 0 { return descending ? order > 0 : order < 0 }
            let byEmail = UnicodeOrder.compare(lhs.email, rhs.email)
            if byEmail != 0 { return byEmail < 0 }
            return lhs.row.email < rhs.row.email
        }.map(\.row)
    }

    /// Aligned text with a header line; the Client column only when `showClient`.
    public static func text(_ rows: [UserListingRow], showClient: Bool) -> String {
        var headers = PortalField.allCases.map(\.heading) + ["Role", "User group", "Login", "GA", "GM", "Enabled"]
        if showClient { headers.insert("Client", at: 0) }
        let cells = rows.map { row in
            var line = PortalField.allCases.map { row.fields[$0] ?? "" } + [
                row.role, row.userGroup, tick(row.hasLogin), tick(row.globalAdmin), tick(row.groupManager), tick(row.enabled),
            ]
            if showClient { line.insert(row.client, at: 0) }
            return line
        }
        return TextTable(headers: headers, rows: cells).render()
    }

    /// The `--json` output: an array of objects with every column as a key.
    public static func json(_ rows: [UserListingRow]) throws -> String {
        try JSONOutput.encode(rows)
    }
}
