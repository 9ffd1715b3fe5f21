import Foundation
import GRDB

extension PortalStore {
    /// The client users of one client (or of every client when `clientName` is nil), with
    /// their user group's and client's names, in email order.
    public func userListing(clientName: String?) throws(StoreError) -> [UserListingRow] {
        let clientID = try clientName.map { name throws(StoreError) in try requireClient(named: name).id }
        return try storeOperation("listing users") {
            try pool.read { db in
                var rows: [UserListingRow] = []
                let cursor = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT u.*, c.name AS client_name, g.name AS user_group_name
                        FROM client_users u
                        JOIN clients c ON c.id = u.client_id
                        JOIN user_groups g ON g.id = u.user_group_id
                        WHERE ?1 IS NULL OR u.client_id = ?1
                        ORDER BY u.email, u.id
                        """,
                    arguments: [clientID])
                while let row = try cursor.next() {
                    rows.append(UserListingRow(client: row["client_name"], userGroup: row["user_group_name"], user: StoredUser(row: row).user))
                }
                return rows
            }
        }
    }

    /// History entries, oldest first: of the users with this email (any client, or only
    /// `clientName`'s), of one sync run, or all.
    public func historyListing(userEmail: String?, runID: Int64?, clientName: String?)
        throws(StoreError) -> [HistoryListingRow]
    {
        let clientID = try clientName.map { name throws(StoreError) in try requireClient(named: name).id }
        return try storeOperation("listing history") {
            try pool.read { db in
                var rows: [HistoryListingRow] = []
                let cursor = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT h.id, c.name AS client, h.entity, h.entity_id,
                               CASE h.entity
                                   WHEN 'user' THEN (SELECT email FROM client_users WHERE id = h.entity_id)
                                   WHEN 'user_group' THEN (SELECT name FROM user_groups WHERE id = h.entity_id)
                                   WHEN 'client' THEN (SELECT name FROM clients WHERE id = h.entity_id)
                               END AS subject,
                               h.action, h.changes, h.editor, h.run_id, h.at, h.reason
                        FROM history h
                        JOIN clients c ON c.id = h.client_id
                        WHERE (?1 IS NULL OR h.client_id = ?1)
                          AND (?2 IS NULL OR h.run_id = ?2)
                          AND (?3 IS NULL OR (h.entity = 'user' AND h.entity_id IN
                                   (SELECT id FROM client_users WHERE email = ?3 COLLATE NOCASE)))
                        ORDER BY h.id
                        """,
                    arguments: [clientID, runID, userEmail])
                while let row = try cursor.next() {
                    rows.append(HistoryListingRow(row: row))
                }
                return rows
            }
        }
    }

    /// Every sync run, oldest first.
    public func runListing() throws(StoreError) -> [RunListingRow] {
        try storeOperation("listing sync runs") {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT r.id, c.name AS client, r.mapping, r.directory, r.mode, r.status, r.started_at, r.finished_at,
                               r.summary, r.error, r.entries_read
                        FROM sync_runs r LEFT JOIN clients c ON c.id = r.client_id
                        ORDER BY r.id
                        """
                ).map(RunListingRow.init(row:))
            }
        }
    }

    /// Every client with its number of users and of distinct non-empty locations (trimmed,
    /// ASCII case folded), by name.
    public func clientListing() throws(StoreError) -> [ClientListingRow] {
        try storeOperation("listing clients") {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT c.name, p.name AS parent, c.membership_end_date,
                               (SELECT COUNT(*) FROM client_users u WHERE u.client_id = c.id) AS users,
                               (SELECT COUNT(DISTINCT LOWER(TRIM(u.location))) FROM client_users u
                                WHERE u.client_id = c.id AND TRIM(COALESCE(u.location, '')) <> '') AS locations,
                               c.active, c.created_at, r.started_at AS last_run_at, r.status AS last_run_status,
                               r.worker AS last_run_worker,
                               (SELECT l.host || ':' || l.pid FROM leases l WHERE l.client = c.name COLLATE NOCASE AND l.expires_at > ?) AS lease_worker
                        FROM clients c LEFT JOIN clients p ON p.id = c.parent_id
                        LEFT JOIN sync_runs r ON r.id = (SELECT max(id) FROM sync_runs WHERE client_id = c.id)
                        ORDER BY c.name
                        """, arguments: [StoreTime.text(Date())]
                ).map(ClientListingRow.init(row:))
            }
        }
    }
}
