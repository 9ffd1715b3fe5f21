import Foundation
import PostgresNIO

extension PostgresStore {
    public func userListing(clientName: String?) throws(StoreError) -> [UserListingRow] {
        let clientID = try clientName.map { name throws(StoreError) in try requireClient(named: name).id }
        return try operation("listing users") {
            try session.exclusive { db in
                try db.rows("""
                    SELECT \(Self.userColumns(of: "u")), c.name AS client_name, g.name AS user_group_name
                    FROM client_users u
                    JOIN clients c ON c.id = u.client_id
                    JOIN user_groups g ON g.id = u.user_group_id
                    WHERE $1::bigint IS NULL OR u.client_id = $1
                    ORDER BY u.email, u.id
                    """, PostgresBindings([clientID])).map { row in
                    UserListingRow(client: try row.text("client_name"), userGroup: try row.text("user_group_name"), user: try Self.user(row).user)
                }
            }
        }
    }

    public func historyListing(userEmail: String?, runID: Int64?, clientName: String?) throws(StoreError) -> [HistoryListingRow] {
        let clientID = try clientName.map { name throws(StoreError) in try requireClient(named: name).id }
        return try operation("listing history") {
            try session.exclusive { db in
                try db.rows("""
                    SELECT h.id, c.name AS client, h.entity, h.entity_id,
                           CASE h.entity
                               WHEN 'user' THEN (SELECT email FROM client_users WHERE id = h.entity_id)
                               WHEN 'user_group' THEN (SELECT name FROM user_groups WHERE id = h.entity_id)
                               WHEN 'client' THEN (SELECT name FROM clients WHERE id = h.entity_id)
                           END AS subject,
                           h.action, h.changes::text AS changes, h.editor, h.run_id, \(Self.iso("h.at", as: "at")), h.reason
                    FROM history h
                    JOIN clients c ON c.id = h.client_id
                    WHERE ($1::bigint IS NULL OR h.client_id = $1)
                      AND ($2::bigint IS NULL OR h.run_id = $2)
                      AND ($3::text IS NULL OR (h.entity = 'user' AND h.entity_id IN
                               (SELECT id FROM client_users WHERE dirbridge_fold(email) = dirbridge_fold($3))))
                    ORDER BY h.id
                    """, PostgresBindings([clientID, runID, userEmail])).map { row in
                    HistoryListingRow(
                        id: try row.int("id"), client: try row.text("client"), entity: try row.text("entity"), entityID: try row.int("entity_id"),
                        subject: try row.optionalText("subject"), action: try row.text("action"),
                        changes: HistoryListingRow.parseChanges(try row.text("changes")), editor: try row.text("editor"),
                        runID: try row.optionalInt("run_id"), at: try row.text("at"), reason: try row.optionalText("reason"))
                }
            }
        }
    }

    public func runListing() throws(StoreError) -> [RunListingRow] {
        try operation("listing sync runs") {
            try session.exclusive { db in
                try db.rows("""
                    SELECT r.id, c.name AS client, r.mapping, r.directory, r.mode, r.status, \(Self.iso("r.started_at", as: "started_at")),
                           \(Self.iso("r.finished_at", as: "finished_at")), r.summary::text AS summary, r.error, r.entries_read::bigint AS entries_read
                    FROM sync_runs r LEFT JOIN clients c ON c.id = r.client_id
                    ORDER BY r.id
                    """).map { row in
                    RunListingRow(
                        id: try row.int("id"), client: try row.optionalText("client"), mapping: try row.text("mapping"),
                        directory: try row.text("directory"), mode: try row.text("mode"), status: try row.text("status"),
                        startedAt: try row.text("started_at"), finishedAt: try row.optionalText("finished_at"),
                        summaryJSON: try row.text("summary"), error: try row.optionalText("error"),
                        entriesRead: try row.optionalInt("entries_read").map { Int($0) })
                }
            }
        }
    }

    public func clientListing() throws(StoreError) -> [ClientListingRow] {
        try operation("listing clients") {
            try session.exclusive { db in
                try db.rows("""
                    SELECT c.name, p.name AS parent, to_char(c.membership_end_date, 'YYYY-MM-DD') AS membership_end_date,
                           (SELECT count(*) FROM client_users u WHERE u.client_id = c.id) AS users,
                           (SELECT count(DISTINCT dirbridge_fold(trim(u.location))) FROM client_users u
                            WHERE u.client_id = c.id AND trim(coalesce(u.location, '')) <> '') AS locations,
                           c.active, \(Self.iso("c.created_at", as: "created_at")), \(Self.iso("r.started_at", as: "last_run_at")),
                           r.status AS last_run_status, r.worker AS last_run_worker,
                           (SELECT l.host || ':' || l.pid FROM leases l WHERE dirbridge_fold(l.client) = dirbridge_fold(c.name) AND l.expires_at > now()) AS lease_worker
                    FROM clients c LEFT JOIN clients p ON p.id = c.parent_id
                    LEFT JOIN sync_runs r ON r.id = (SELECT max(id) FROM sync_runs WHERE client_id = c.id)
                    ORDER BY c.name
                    """).map { row in
                    ClientListingRow(
                        name: try row.text("name"), parent: try row.optionalText("parent"),
                        membershipEndDate: try row.optionalText("membership_end_date"), users: Int(try row.int("users")),
                        locations: Int(try row.int("locations")), active: try row.flag("active"), createdAt: try row.text("created_at"),
                        lastRunAt: try row.optionalText("last_run_at"), lastRunStatus: try row.optionalText("last_run_status"),
                        lastRunWorker: try row.optionalText("last_run_worker"), leaseWorker: try row.optionalText("lease_worker"))
                }
            }
        }
    }

    public func userTimelines(clientName: String?) throws(StoreError) -> [UserTimeline] {
        let clientID = try clientName.map { name throws(StoreError) in try requireClient(named: name).id }
        return try operation("reading the users' history") {
            try session.transaction("REPEATABLE READ") { db in
                var builder = UserTimelineBuilder()
                for row in try db.rows("SELECT id, name FROM clients") {
                    builder.clients[try row.int("id")] = try row.text("name")
                }
                let bindings = PostgresBindings([clientID])
                for row in try db.rows("""
                    SELECT client_id, changes::text AS changes, \(Self.iso("at")) FROM history
                    WHERE entity = 'user_group' AND action = 'group_renamed' AND ($1::bigint IS NULL OR client_id = $1) ORDER BY id
                    """, bindings) {
                    builder.addRename(clientID: try row.int("client_id"), changes: try row.text("changes"), at: try row.text("at"))
                }
                for row in try db.rows("""
                    SELECT \(Self.userColumns(of: "u")), g.name AS user_group_name
                    FROM client_users u JOIN user_groups g ON g.id = u.user_group_id
                    WHERE $1::bigint IS NULL OR u.client_id = $1 ORDER BY u.id
                    """, bindings) {
                    builder.addUser(try Self.user(row), groupName: try row.text("user_group_name"))
                }
                for row in try db.rows("""
                    SELECT client_id, entity_id, action, changes::text AS changes, editor, run_id, \(Self.iso("at")), reason FROM history
                    WHERE entity = 'user' AND ($1::bigint IS NULL OR client_id = $1) ORDER BY id
                    """, bindings) {
                    builder.addEvent(clientID: try row.int("client_id"), userID: try row.int("entity_id"), UserTimeline.Event(
                        at: try row.text("at"), action: try row.text("action"), changes: HistoryListingRow.parseChanges(try row.text("changes")),
                        editor: try row.text("editor"), runID: try row.optionalInt("run_id"), reason: try row.optionalText("reason")))
                }
                return builder.timelines
            }
        }
    }
}
