import Foundation
import GRDB

/// What a plan depends on in the store, hashed: the client row, the current row of every
/// client user the plan changes, the user groups it creates or moves users between, and
/// the emails and external ids its creations (and email changes) would take.
///
/// A saved plan carries the fingerprint of the state it was computed against; `dirbridge
/// apply` computes it again from the store as it is and refuses when any entity differs.
/// A portal-side edit to an untouched user, or a new unrelated user group, does not move it;
/// any edit to a touched user does (even to a field the mapping does not map: the reviewed
/// old values would no longer be true), and so does a new portal user taking an email that
/// a planned creation needs.
///
/// Pure: computed from a ``ClientState`` in memory, so the plan and its fingerprint come
/// from exactly the same read.
public struct StoreFingerprint: Sendable, Equatable, Codable {
    /// SHA-256 over the sorted `entities` lines.
    public var sha256: String
    /// Entity key (`client`, `user:12`, `user_group:sales`, `email:a@b.example`,
    /// `external_id:…`) → the first 16 hex digits of the SHA-256 of its rows, or `absent`.
    public var entities: [String: String]

    /// The fingerprint of `state` (nil: the client does not exist yet) for `plan`.
    public init(plan: Plan, state: ClientState?) {
        let users = state?.users ?? []
        let usersByID = Dictionary(users.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let usersByEmail = Dictionary(grouping: users) { $0.email.lowercased() }
        let usersByExternalID = Dictionary(grouping: users.filter { $0.externalID != nil }) { $0.externalID! }
        let groupsByName = Dictionary(grouping: state?.userGroups ?? []) { $0.name.lowercased() }

        var entities: [String: String] = [:]
        func record(_ key: String, _ rows: [String]) {
            entities[key] = rows.isEmpty ? Self.absent : String(Digests.sha256Hex(rows.joined(separator: "\n")).prefix(16))
        }
        record("client", state.map { [Self.row($0.client)] } ?? [])
        var groupNames: Set<String> = [defaultUserGroupName.lowercased()]
        for group in plan.groupCreations { groupNames.insert(group.name.lowercased()) }
        for change in plan.userChanges {
            if let id = change.userID { record("user:\(id)", usersByID[id].map { [Self.row($0)] } ?? []) }
            for name in [change.fields[.userGroup]?.old, change.fields[.userGroup]?.new].compactMap({ $0?.text }) {
                groupNames.insert(name.lowercased())
            }
            if let email = change.action == .create ? change.email : change.fields[.field(.email)]?.new?.text {
                record("email:\(email.lowercased())", (usersByEmail[email.lowercased()] ?? []).map(Self.row))
            }
            if let externalID = change.fields[.externalID]?.new?.text {
                record("external_id:\(externalID)", (usersByExternalID[externalID] ?? []).map(Self.row))
            }
        }
        for name in groupNames {
            record("user_group:\(name)", (groupsByName[name] ?? []).map(Self.row))
        }
        self.entities = entities
        self.sha256 = Digests.sha256Hex(entities.keys.sorted().map { "\($0)=\(entities[$0]!)\n" }.joined())
    }

    /// The value of an entity the store has no row for.
    public static let absent = "absent"

    /// What changed between this fingerprint (the plan's) and `current` (the store's now),
    /// one sentence per entity, at most `limit` of them and a count of the rest.
    public func differences(from current: StoreFingerprint, plan: Plan, limit: Int = 10) -> [String] {
        let emails = Dictionary(plan.userChanges.compactMap { change in change.userID.map { ($0, change.email) } }) { first, _ in first }
        let changed = Set(entities.keys).union(current.entities.keys)
            .sorted { $0.compare($1, options: .numeric) == .orderedAscending }
            .filter { entities[$0] != current.entities[$0] }
        var lines = changed.prefix(limit).map { key -> String in
            let (kind, value) = key.firstIndex(of: ":").map { (String(key[..<$0]), String(key[key.index(after: $0)...])) } ?? (key, "")
            let now = current.entities[key] ?? Self.absent
            switch kind {
            case "client":
                return now == Self.absent ? "the client \(plan.client) is no longer in the store"
                    : (entities[key] == Self.absent ? "the client \(plan.client) was created" : "the client \(plan.client) was edited")
            case "user":
                let who = emails[Int64(value) ?? -1].map { "client user \($0) (id \(value))" } ?? "client user id \(value)"
                return now == Self.absent ? "\(who) was deleted" : "\(who) was edited"
            case "user_group":
                return now == Self.absent ? "user group \(value) was renamed or deleted"
                    : (entities[key] == Self.absent ? "user group \(value) was created" : "user group \(value) was edited")
            case "email":
                return now == Self.absent ? "the client user with email \(value) is gone" : "a client user with email \(value) was created or edited"
            default:
                return now == Self.absent ? "the client user with \(kind) \(value) is gone" : "a client user with \(kind) \(value) was created or edited"
            }
        }
        if changed.count > limit { lines.append("and \(changed.count - limit) more") }
        return lines
    }

    // MARK: rows as text

    private static func row(_ fields: [String?]) -> String {
        fields.map { $0 ?? "\u{0}" }.joined(separator: "\u{1F}")
    }

    private static func row(_ client: ClientRecord) -> String {
        row([String(client.id), client.name, client.parentID.map { String($0) }, client.membershipEndDate, flag(client.active), client.createdAt])
    }

    private static func row(_ group: StoredUserGroup) -> String {
        row([String(group.id), group.name, flag(group.isDefault), group.source.rawValue, group.externalID, group.createdAt])
    }

    private static func row(_ user: StoredUser) -> String {
        row([String(user.id)] + PortalField.allCases.map { user[$0] } + [
            user.role, String(user.userGroupID), flag(user.globalAdmin), flag(user.groupManager), flag(user.hasLogin),
            flag(user.enabled), user.source.rawValue, user.externalID, user.externalDN, user.createdAt, user.updatedAt,
        ])
    }

    private static func flag(_ value: Bool) -> String { value ? "1" : "0" }
}

extension PortalStore {
    public func lastSync(clientID: Int64) throws(StoreError) -> LastSync? {
        try storeOperation("looking up sync runs") {
            try pool.read { db in
                try Row.fetchOne(db, sql: """
                    SELECT id, started_at, worker FROM sync_runs
                    WHERE client_id = ? AND mode = 'apply' AND status IN ('succeeded', 'refused') ORDER BY id DESC LIMIT 1
                    """, arguments: [clientID]
                ).flatMap { row in StoreTime.date(row["started_at"]).map { LastSync(runID: row["id"], startedAt: $0, worker: row["worker"]) } }
            }
        }
    }

    /// The succeeded apply that executed the plan with this hash, if any: its run id and finish time.
    public func appliedRun(planHash: String) throws(StoreError) -> (id: Int64, finishedAt: String?)? {
        try storeOperation("looking up sync runs") {
            try pool.read { db in
                try Row.fetchOne(
                    db, sql: "SELECT id, finished_at FROM sync_runs WHERE plan_hash = ? AND mode = 'apply' AND status = 'succeeded' ORDER BY id LIMIT 1",
                    arguments: [planHash]
                ).map { (id: $0[0], finishedAt: $0[1]) }
            }
        }
    }
}
