import GRDB

/// A test fixture with a portal store file, read with SQL as the portal and admins' reports do.
protocol PortalStoreReading {
    var storePath: String { get }
}

extension PortalStoreReading {
    func database() throws -> DatabaseQueue { try DatabaseQueue(path: storePath) }

    func rows(_ sql: String, _ arguments: StatementArguments = []) throws -> [Row] {
        try database().read { try Row.fetchAll($0, sql: sql, arguments: arguments) }
    }

    func value<T: DatabaseValueConvertible>(_ sql: String, _ arguments: StatementArguments = []) throws -> T? {
        try database().read { try T.fetchOne($0, sql: sql, arguments: arguments) }
    }

    func int(_ sql: String, _ arguments: StatementArguments = []) throws -> Int {
        try database().read { try Int.fetchOne($0, sql: sql, arguments: arguments) ?? -1 }
    }

    /// The store's view of one user: group name, role, flags, enabled, DN, id.
    func user(_ email: String) throws -> Row? {
        try database().read {
            try Row.fetchOne($0, sql: """
                SELECT u.*, g.name AS group_name FROM client_users u JOIN user_groups g ON g.id = u.user_group_id
                WHERE u.email = ? COLLATE NOCASE
                """, arguments: [email])
        }
    }
}
