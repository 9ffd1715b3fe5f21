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
            var line = PortalField.allCases.map { row[$0] ?? "" } + [
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
