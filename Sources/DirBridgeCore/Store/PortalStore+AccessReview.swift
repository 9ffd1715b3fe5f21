import Foundation
import GRDB

extension PortalStore {
    /// Each client user's history with the row as it stands now, for the access view as of a
    /// date and the privilege review (``AccessHistory``). Users whose row is gone but whose
    /// history remains are included (their `current` is nil).
    public func userTimelines(clientName: String? = nil) throws(StoreError) -> [UserTimeline] {
        let clientID = try clientName.map { name throws(StoreError) in try requireClient(named: name).id }
        return try storeOperation("reading the users' history") {
            try pool.read { db in
                let clients = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, name FROM clients").map { row -> (Int64, String) in
                    (row["id"], row["name"])
                })
                var timelines: [Int64: UserTimeline] = [:]
                var order: [Int64] = []
                var clientOf: [Int64: Int64] = [:]
                // Group renames per client, oldest first: users' history names groups as they were then.
                var renames: [Int64: [UserTimeline.GroupRename]] = [:]
                for row in try Row.fetchAll(db, sql: """
                    SELECT client_id, changes, at FROM history WHERE entity = 'user_group' AND action = 'group_renamed'
                      AND (?1 IS NULL OR client_id = ?1) ORDER BY id
                    """, arguments: [clientID]) {
                    let pair = HistoryListingRow.parseChanges(row["changes"])["name"] ?? []
                    if pair.count == 2, case .text(let old) = pair[0], case .text(let new) = pair[1] {
                        renames[row["client_id"], default: []].append(UserTimeline.GroupRename(at: row["at"], old: old, new: new))
                    }
                }
                let users = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT u.*, g.name AS user_group_name FROM client_users u JOIN user_groups g ON g.id = u.user_group_id
                        WHERE ?1 IS NULL OR u.client_id = ?1 ORDER BY u.id
                        """,
                    arguments: [clientID])
                while let row = try users.next() {
                    let stored = StoredUser(row: row)
                    var current: [String: HistoryValue] = ["user_group": .text(row["user_group_name"])]
                    for attribute in UserListingRow.columns {
                        switch stored.user[attribute] {
                        case .text(let text)?: current[attribute.name] = .text(text)
                        case .flag(let flag)?: current[attribute.name] = .flag(flag)
                        case nil: break
                        }
                    }
                    timelines[stored.id] = UserTimeline(userID: stored.id, client: clients[stored.clientID] ?? "", events: [], current: current,
                                                        createdAt: stored.createdAt)
                    order.append(stored.id)
                    clientOf[stored.id] = stored.clientID
                }
                let history = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT client_id, entity_id, action, changes, editor, run_id, at, reason FROM history
                        WHERE entity = 'user' AND (?1 IS NULL OR client_id = ?1) ORDER BY id
                        """,
                    arguments: [clientID])
                while let row = try history.next() {
                    let id: Int64 = row["entity_id"]
                    if timelines[id] == nil {
                        let client: Int64 = row["client_id"]
                        timelines[id] = UserTimeline(userID: id, client: clients[client] ?? "", events: [], current: nil, createdAt: nil)
                        order.append(id)
                        clientOf[id] = client
                    }
                    timelines[id]?.events.append(UserTimeline.Event(
                        at: row["at"], action: row["action"], changes: HistoryListingRow.parseChanges(row["changes"]),
                        editor: row["editor"], runID: row["run_id"], reason: row["reason"]))
                }
                return order.compactMap { id in
                    guard var timeline = timelines[id] else { return nil }
                    timeline.groupRenames = clientOf[id].flatMap { renames[$0] } ?? []
                    return timeline
                }
            }
        }
    }
}
