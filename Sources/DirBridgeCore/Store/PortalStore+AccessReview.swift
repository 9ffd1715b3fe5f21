import Foundation
import GRDB

extension PortalStore {
    /// Each client user's history with the row as it stands now, for the access view as of a
    /// date and the privilege review (``AccessHistory``). Users whose row is gone but whose
    /// history remains are included (their `current` is nil).
    public func userTimelines(clientName: String?) throws(StoreError) -> [UserTimeline] {
        let clientID = try clientName.map { name throws(StoreError) in try requireClient(named: name).id }
        return try storeOperation("reading the users' history") {
            try pool.read { db in
                var builder = UserTimelineBuilder()
                for row in try Row.fetchAll(db, sql: "SELECT id, name FROM clients") {
                    builder.clients[row["id"]] = row["name"]
                }
                for row in try Row.fetchAll(db, sql: UserTimelineBuilder.renamesSQL, arguments: [clientID]) {
                    builder.addRename(clientID: row["client_id"], changes: row["changes"], at: row["at"])
                }
                let users = try Row.fetchCursor(db, sql: UserTimelineBuilder.usersSQL, arguments: [clientID])
                while let row = try users.next() {
                    builder.addUser(StoredUser(row: row), groupName: row["user_group_name"])
                }
                let history = try Row.fetchCursor(db, sql: UserTimelineBuilder.historySQL, arguments: [clientID])
                while let row = try history.next() {
                    builder.addEvent(clientID: row["client_id"], userID: row["entity_id"], UserTimeline.Event(
                        at: row["at"], action: row["action"], changes: HistoryListingRow.parseChanges(row["changes"]),
                        editor: row["editor"], runID: row["run_id"], reason: row["reason"]))
                }
                return builder.timelines
            }
        }
    }
}

/// Assembles users' timelines from the rows either store reads: clients, group renames, the
/// users as they are now, and their history rows in order.
struct UserTimelineBuilder {
    /// Group renames, oldest first (`?1`: the client's id, or NULL for every client).
    static let renamesSQL = """
        SELECT client_id, changes, at FROM history WHERE entity = 'user_group' AND action = 'group_renamed'
          AND (?1 IS NULL OR client_id = ?1) ORDER BY id
        """
    static let usersSQL = """
        SELECT u.*, g.name AS user_group_name FROM client_users u JOIN user_groups g ON g.id = u.user_group_id
        WHERE ?1 IS NULL OR u.client_id = ?1 ORDER BY u.id
        """
    static let historySQL = """
        SELECT client_id, entity_id, action, changes, editor, run_id, at, reason FROM history
        WHERE entity = 'user' AND (?1 IS NULL OR client_id = ?1) ORDER BY id
        """

    var clients: [Int64: String] = [:]
    private var byUser: [Int64: UserTimeline] = [:]
    private var order: [Int64] = []
    private var clientOf: [Int64: Int64] = [:]
    /// Group renames per client, oldest first: users' history names groups as they were then.
    private var renames: [Int64: [UserTimeline.GroupRename]] = [:]

    mutating func addRename(clientID: Int64, changes: String, at: String) {
        let pair = HistoryListingRow.parseChanges(changes)["name"] ?? []
        if pair.count == 2, case .text(let old) = pair[0], case .text(let new) = pair[1] {
            renames[clientID, default: []].append(UserTimeline.GroupRename(at: at, old: old, new: new))
        }
    }

    mutating func addUser(_ stored: StoredUser, groupName: String) {
        var current: [String: HistoryValue] = ["user_group": .text(groupName)]
        for attribute in UserListingRow.columns {
            switch stored.user[attribute] {
            case .text(let text)?: current[attribute.name] = .text(text)
            case .flag(let flag)?: current[attribute.name] = .flag(flag)
            case nil: break
            }
        }
        byUser[stored.id] = UserTimeline(userID: stored.id, client: clients[stored.clientID] ?? "", events: [], current: current,
                                         createdAt: stored.createdAt)
        order.append(stored.id)
        clientOf[stored.id] = stored.clientID
    }

    mutating func addEvent(clientID: Int64, userID id: Int64, _ event: UserTimeline.Event) {
        if byUser[id] == nil {
            byUser[id] = UserTimeline(userID: id, client: clients[clientID] ?? "", events: [], current: nil, createdAt: nil)
            order.append(id)
            clientOf[id] = clientID
        }
        byUser[id]?.events.append(event)
    }

    var timelines: [UserTimeline] {
        order.compactMap { id in
            guard var timeline = byUser[id] else { return nil }
            timeline.groupRenames = clientOf[id].flatMap { renames[$0] } ?? []
            return timeline
        }
    }
}
