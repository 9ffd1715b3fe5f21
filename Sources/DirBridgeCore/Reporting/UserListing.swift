/// One client user as `dirbridge users` shows it: the portal's columns, the user group by
/// name, and the client.
public struct UserListingRow: Sendable, Equatable, Encodable {
    public var client: String
    public var email: String
    public var firstName: String?
    public var lastName: String?
    public var title: String?
    public var cellPhone: String?
    public var officePhone: String?
    public var `extension`: String?
    public var location: String?
    public var role: String
    public var userGroup: String
    public var hasLogin: Bool
    public var globalAdmin: Bool
    public var groupManager: Bool
    public var enabled: Bool

    public init(
        client: String, email: String, firstName: String? = nil, lastName: String? = nil, title: String? = nil,
        cellPhone: String? = nil, officePhone: String? = nil, extension: String? = nil, location: String? = nil,
        role: String = "Guest", userGroup: String = StoreSchema.defaultUserGroupName, hasLogin: Bool = false,
        globalAdmin: Bool = false, groupManager: Bool = false, enabled: Bool = true
    ) {
        self.client = client
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.title = title
        self.cellPhone = cellPhone
        self.officePhone = officePhone
        self.extension = `extension`
        self.location = location
        self.role = role
        self.userGroup = userGroup
        self.hasLogin = hasLogin
        self.globalAdmin = globalAdmin
        self.groupManager = groupManager
        self.enabled = enabled
    }

    enum CodingKeys: String, CodingKey {
        case client, email, title, `extension`, location, role, enabled
        case firstName = "first_name", lastName = "last_name", cellPhone = "cell_phone"
        case officePhone = "office_phone", userGroup = "user_group", hasLogin = "has_login"
        case globalAdmin = "global_admin", groupManager = "group_manager"
    }

    /// Every key is present; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(client, forKey: .client)
        try container.encode(email, forKey: .email)
        try container.encode(firstName, forKey: .firstName)
        try container.encode(lastName, forKey: .lastName)
        try container.encode(title, forKey: .title)
        try container.encode(cellPhone, forKey: .cellPhone)
        try container.encode(officePhone, forKey: .officePhone)
        try container.encode(`extension`, forKey: .extension)
        try container.encode(location, forKey: .location)
        try container.encode(role, forKey: .role)
        try container.encode(userGroup, forKey: .userGroup)
        try container.encode(hasLogin, forKey: .hasLogin)
        try container.encode(globalAdmin, forKey: .globalAdmin)
        try container.encode(groupManager, forKey: .groupManager)
        try container.encode(enabled, forKey: .enabled)
    }
}

/// A column `dirbridge users --sort` accepts, named as in `client_users` (`user_group` is
/// the user group's name).
public enum UserSortColumn: String, CaseIterable, Sendable {
    case client
    case email
    case firstName = "first_name"
    case lastName = "last_name"
    case title
    case cellPhone = "cell_phone"
    case officePhone = "office_phone"
    case `extension`
    case location
    case role
    case userGroup = "user_group"
    case hasLogin = "has_login"
    case globalAdmin = "global_admin"
    case groupManager = "group_manager"
    case enabled

    /// The accepted names, for error messages.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The text a row sorts by in this column (flags: unset before set).
    func sortText(_ row: UserListingRow) -> String? {
        switch self {
        case .client: row.client
        case .email: row.email
        case .firstName: row.firstName
        case .lastName: row.lastName
        case .title: row.title
        case .cellPhone: row.cellPhone
        case .officePhone: row.officePhone
        case .extension: row.extension
        case .location: row.location
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
        var headers = [
            "Email", "First name", "Last name", "Title", "Cell phone", "Office phone", "Ext.", "Location", "Role",
            "User group", "Login", "GA", "GM", "Enabled",
        ]
        if showClient { headers.insert("Client", at: 0) }
        let cells = rows.map { row in
            var line = [
                row.email, row.firstName ?? "", row.lastName ?? "", row.title ?? "", row.cellPhone ?? "",
                row.officePhone ?? "", row.extension ?? "", row.location ?? "", row.role, row.userGroup,
                tick(row.hasLogin), tick(row.globalAdmin), tick(row.groupManager), tick(row.enabled),
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
