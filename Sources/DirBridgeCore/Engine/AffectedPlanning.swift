import Logging

/// What a delta read changed in the cached directory, found without loading the cached
/// users: the changed and gone user entries with the versions they replace, and every group
/// before and after.
struct CacheDelta {
    /// New or changed user entries, by cache key.
    private(set) var changedUsers: [String: EntryAttributes] = [:]
    /// Keys of cached users that are gone (deleted, moved out of the base, out of the filter).
    private(set) var goneUsers = Set<String>()
    /// The cached versions of the user keys looked at (a new entry has none).
    private(set) var usersBefore: [String: EntryAttributes] = [:]
    private var looked = Set<String>()
    /// Every cached group before the changes, and after them.
    let groupsBefore: [String: EntryAttributes]
    private(set) var groups: [String: EntryAttributes]
    /// Keys of groups added, changed or gone.
    private(set) var changedGroups = Set<String>()

    init(groupsBefore: [String: EntryAttributes]) {
        self.groupsBefore = groupsBefore
        groups = groupsBefore
    }

    /// A user entry as it stands after the changes so far; nil when gone or never cached.
    private func currentUser(_ key: String) -> EntryAttributes? {
        goneUsers.contains(key) ? nil : changedUsers[key] ?? usersBefore[key]
    }

    /// Applies an RFC 4533 refresh of the users' search.
    mutating func patchUsers(with changes: ContentRefresh, store: any DirectoryCacheStoring, mapping: Mapping, update: inout DirectoryCacheUpdate) throws {
        var gone = changes.deleted
        if changes.usedPresentPhase {
            // Every cached entry the server named neither present nor changed is gone.
            let named = changes.present.union(changes.changed.map(\.uuid))
            for key in try store.cachedKeys(client: mapping.client.name, kind: .user) where !named.contains(key) { gone.insert(key) }
        }
        try patch(kind: .user, changed: changes.changed.map { ($0.uuid, $0.entry) }, gone: gone, store: store, mapping: mapping, update: &update)
    }

    /// Applies an RFC 4533 refresh of the groups' search.
    mutating func patchGroups(with changes: ContentRefresh, store: any DirectoryCacheStoring, mapping: Mapping, update: inout DirectoryCacheUpdate) throws {
        var gone = changes.deleted
        if changes.usedPresentPhase {
            let named = changes.present.union(changes.changed.map(\.uuid))
            for key in groups.keys where !named.contains(key) { gone.insert(key) }
        }
        try patch(kind: .group, changed: changes.changed.map { ($0.uuid, $0.entry) }, gone: gone, store: store, mapping: mapping, update: &update)
    }

    /// Records the `gone` keys that are cached, then the `changed` entries that differ from
    /// their cached version (the cache rows to write go into `update`).
    mutating func patch(kind: EntryKind, changed: [(String, EntryAttributes)], gone: Set<String>, store: any DirectoryCacheStoring, mapping: Mapping,
                        update: inout DirectoryCacheUpdate) throws {
        if kind == .group {
            for key in gone where groups.removeValue(forKey: key) != nil {
                changedGroups.insert(key)
                update.deletions.append((.group, key))
            }
            for (key, entry) in changed where groups[key] != entry {
                try IncrementalReader.checkNotRenamed(groups[key], entry)
                groups[key] = entry
                changedGroups.insert(key)
                update.encodedUpserts.append(CacheRow(kind: .group, key: key, entry: entry, mapping: mapping, email: nil))
            }
            return
        }
        let unseen = Set(changed.map(\.0)).union(gone).subtracting(looked)
        if !unseen.isEmpty {
            usersBefore.merge(try store.cachedEntries(client: mapping.client.name, kind: .user, keys: unseen)) { first, _ in first }
            looked.formUnion(unseen)
        }
        for key in gone where currentUser(key) != nil {
            changedUsers.removeValue(forKey: key)
            goneUsers.insert(key)
            update.deletions.append((.user, key))
        }
        for (key, entry) in changed where currentUser(key) != entry {
            try IncrementalReader.checkNotRenamed(currentUser(key), entry)
            goneUsers.remove(key)
            changedUsers[key] = entry
            update.encodedUpserts.append(CacheRow(kind: .user, key: key, entry: entry, mapping: mapping, email: nil))
        }
    }

    /// Keys of changed users that were not cached before.
    var newUsers: Set<String> { Set(changedUsers.keys.filter { usersBefore[$0] == nil }) }

    /// How many user entries the cache holds once `update` is written (its deletions, then its
    /// upserts), given how many it held before: every key patched was looked up first, so
    /// `usersBefore` tells which were cached.
    func cachedUsers(before: Int, after update: DirectoryCacheUpdate) -> Int {
        let deleted = Set(update.deletions.filter { $0.kind == .user }.map(\.key))
        let upserted = Set(update.encodedUpserts.filter { $0.kind == .user }.map(\.key))
        let removed = deleted.filter { usersBefore[$0] != nil }.count
        let added = upserted.filter { usersBefore[$0] == nil || deleted.contains($0) }.count
        return before - removed + added
    }

    /// The whole cached user view, patched.
    func apply(to users: inout [String: EntryAttributes]) {
        for key in goneUsers { users.removeValue(forKey: key) }
        for (key, entry) in changedUsers { users[key] = entry }
    }
}

/// What a plan of the affected users needs beyond its snapshot.
struct AffectedRead {
    /// The affected users, mapped, with their rules evaluated against every group.
    var snapshot: DirectorySnapshot
    /// The whole view's figures (see ``AffectedScope``).
    var total: Int
    var userEntries: Int
    /// The stored users the plan may touch: by external id (the affected entries', before and
    /// after the change, and the portal-edited users'), by email, and by id (portal-edited).
    var externalIDs: Set<String>
    var emails: Set<String>
    var userIDs: Set<Int64>
    /// The client's change counter, read before the portal-edit log.
    var counter: Int64
    /// DNs of the entries planned (gone ones as they were cached), for logs and tests.
    var plannedDNs: [String]
}

/// Plans an incremental run for the users its changes can affect, instead of every user.
///
/// Affected are: the entries that changed or left; the members, old and new, of the groups
/// that changed (only those added or removed when a group's other attributes are the same;
/// through groups in groups when nesting is on); the users edited in the portal since the
/// last incremental apply (`store_touches`); the entries the last plan skipped; and the
/// `protected` users. Every other directory user was in step with the store after the last
/// applied run and neither side changed it since, so its plan is known to be empty.
///
/// Every user is planned instead when that cannot be known: the mapping file changed, the
/// last apply did not see every store write, a user group was edited in the portal,
/// memberships come from `memberOf`, `memberUid` or the server (`nested: server`), a group
/// changed and primary groups are read, more than a fifth of the users are affected, or an
/// affected user's email is held by an unaffected entry or another stored user (the full plan
/// decides such ties).
enum AffectedPlanning {
    enum Preparation {
        case affected(AffectedRead)
        /// Plan every user, and why.
        case everyone(String)
    }

    /// Above this share of the users (and 1,000 users), planning everyone costs about the same.
    static let maxShare = 0.2

    static func prepare(
        _ mapping: Mapping, store: any DirectoryCacheStoring, state: SyncState, delta: CacheDelta, entriesRead: Int, references: Int, logger: Logger
    ) throws -> Preparation {
        guard !mapping.sourceHash.isEmpty, state.mappingHash == mapping.sourceHash else {
            return .everyone("the mapping file changed since the last applied run")
        }
        guard let view = state.plannedView else { return .everyone("no plan of the whole directory recorded yet") }
        guard state.storeCounter != nil else { return .everyone("the portal store was written while the last run planned") }
        if let groups = mapping.groups {
            if groups.nestedResolution == .server { return .everyone("groups.nested: server resolves memberships on the server") }
            let members = Set(groups.members.map { $0.lowercased() })
            if members.contains("memberuid") || members.contains("memberof") {
                return .everyone("memberships come from memberUid or memberOf")
            }
            if mapping.readsPrimaryGroups && !delta.changedGroups.isEmpty { return .everyone("a group changed and primary groups are read") }
        }
        let name = mapping.client.name
        guard let client = try store.client(named: name) else { return .everyone("the client is not in the store yet") }
        // The counter first: an edit made after it is either in the log read next or makes the
        // apply record no counter (the next run then plans everyone).
        let counter = try store.changeCounter(clientID: client.id)
        let touches = try store.touches(clientID: client.id)
        if touches.userGroups { return .everyone("a user group was edited in the portal") }

        var affected = Set(delta.changedUsers.keys).union(delta.goneUsers)
        func keys(_ column: CacheLookup, _ values: Set<String>) throws -> Set<String> {
            Set(try store.cachedUserKeys(client: name, column: column, values: values).map(\.key))
        }
        var memberDNs = Set<String>()
        var groupsByDN: [String: [EntryAttributes]]?
        for key in delta.changedGroups {
            memberDNs.formUnion(affectedMembers(ofGroup: key, delta: delta, mapping: mapping, groupsByDN: &groupsByDN))
        }
        affected.formUnion(try keys(.dn, memberDNs))
        affected.formUnion(try keys(.externalID, touches.externalIDs))
        let skippedKeys = try keys(.dn, Set(view.skipped.compactMap { DistinguishedName.canonical($0.dn) }))
        affected.formUnion(skippedKeys)
        let protected = Set(mapping.deprovision.protected.map { $0.lowercased() })
        affected.formUnion(try keys(.email, protected))

        let cachedCount = try state.cachedUsers ?? store.cachedUserCount(client: name)
        guard affected.count <= max(1_000, Int(Double(cachedCount) * maxShare)) else {
            return .everyone("\(affected.count) of \(cachedCount) users are affected")
        }

        // The affected entries as they stand after the changes.
        var entries: [String: EntryAttributes] = [:]
        let stored = affected.subtracting(delta.changedUsers.keys).subtracting(delta.goneUsers).subtracting(delta.usersBefore.keys)
        entries = try store.cachedEntries(client: name, kind: .user, keys: stored)
        for key in affected where !delta.goneUsers.contains(key) {
            if let entry = delta.changedUsers[key] ?? delta.usersBefore[key] { entries[key] = entry }
        }
        let members = Set(entries.values.compactMap { DistinguishedName.canonical($0.dn) })
        var builder = SnapshotBuilder(mapping: mapping, index: GroupIndex(mapping: mapping, groups: delta.groups.values, members: members))
        var emails = Set<String>()
        var externalIDs = touches.externalIDs
        for key in affected {
            for version in [entries[key], delta.usersBefore[key]].compactMap({ $0 }) {
                let id = Mapping.externalID(version, attribute: mapping.users.id)
                if !id.isEmpty { externalIDs.insert(id) }
            }
        }
        for entry in entries.values {
            if let email = builder.add(user: entry) { emails.insert(email) }
        }
        let snapshot = builder.finish(entriesRead: entriesRead, references: references, logger: logger)

        // The full plan skips every entry that shares an email: a tie with an unaffected one is its to decide.
        if let tie = try store.cachedUserKeys(client: name, column: .email, values: emails).first(where: { !affected.contains($0.key) }) {
            return .everyone("\(tie.value) is also the email of an entry no change affects")
        }
        // Affected entries that the last plan counted: cached before, and not skipped by it.
        let newKeys = delta.newUsers
        let countedBefore = affected.subtracting(newKeys).subtracting(skippedKeys).count
        return .affected(AffectedRead(
            snapshot: snapshot, total: view.total - countedBefore + snapshot.users.count,
            userEntries: cachedCount + newKeys.count - delta.goneUsers.count,
            externalIDs: externalIDs, emails: emails.union(protected), userIDs: touches.userIDs, counter: counter,
            plannedDNs: (entries.values.map(\.dn) + delta.goneUsers.compactMap { delta.usersBefore[$0]?.dn }).sorted()))
    }

    /// Why the affected users cannot be planned alone once their stored users are loaded: an
    /// email held by another stored user (adoption, a comeback or a clash, which the full plan decides).
    static func conflict(snapshot: DirectorySnapshot, users: [StoredUser]) -> String? {
        var byEmail: [String: StoredUser] = [:]
        for user in users { byEmail[user.email.lowercased()] = user }
        for user in snapshot.users {
            if let holder = byEmail[user.mapped.email.lowercased()],
               holder.source != .directory || holder.externalID != user.mapped.externalID {
                return "\(user.mapped.email) is held by another portal user"
            }
        }
        return nil
    }

    /// The DNs whose memberships a change of group `key` can alter: the members added or
    /// removed when nothing else about the group changed, else every member before and after;
    /// with nesting, the members of groups among them, all the way down.
    static func affectedMembers(ofGroup key: String, delta: CacheDelta, mapping: Mapping) -> Set<String> {
        var groupsByDN: [String: [EntryAttributes]]?
        return affectedMembers(ofGroup: key, delta: delta, mapping: mapping, groupsByDN: &groupsByDN)
    }

    /// ``affectedMembers(ofGroup:delta:mapping:)`` with the groups by canonical DN built once
    /// for all the changed groups of a run (`groupsByDN`, nil until a nested lookup needs it).
    static func affectedMembers(
        ofGroup key: String, delta: CacheDelta, mapping: Mapping, groupsByDN: inout [String: [EntryAttributes]]?
    ) -> Set<String> {
        let memberAttributes = Set((mapping.groups?.members ?? []).map { $0.lowercased() })
        func members(_ entry: EntryAttributes?) -> Set<String> {
            guard let entry else { return [] }
            var result = Set<String>()
            for attribute in memberAttributes {
                for value in entry.strings(attribute) { if let dn = DistinguishedName.canonical(value) { result.insert(dn) } }
            }
            return result
        }
        let before = delta.groupsBefore[key]
        let after = delta.groups[key]
        var start: Set<String>
        if let before, let after, sameApartFromMembers(before, after, memberAttributes: memberAttributes) {
            start = members(before).symmetricDifference(members(after))
        } else {
            start = members(before).union(members(after))
        }
        guard mapping.groups?.nested == true else { return start }
        // Groups among them: their members (before and after) are affected too.
        if groupsByDN == nil {
            var index: [String: [EntryAttributes]] = [:]
            for entry in Array(delta.groupsBefore.values) + Array(delta.groups.values) {
                if let dn = DistinguishedName.canonical(entry.dn) { index[dn, default: []].append(entry) }
            }
            groupsByDN = index
        }
        let groupsByDN = groupsByDN ?? [:]
        var queue = Array(start)
        var seen = start
        while let dn = queue.popLast() {
            for group in groupsByDN[dn] ?? [] {
                for member in members(group) where seen.insert(member).inserted { queue.append(member) }
            }
        }
        return seen
    }

    /// Whether two versions of a group differ only in their member lists (and timestamps).
    private static func sameApartFromMembers(_ before: EntryAttributes, _ after: EntryAttributes, memberAttributes: Set<String>) -> Bool {
        guard DistinguishedName.canonical(before.dn) == DistinguishedName.canonical(after.dn) else { return false }
        let ignored = memberAttributes.union(["modifytimestamp", "entrycsn", "usnchanged", "whenchanged"])
        var names = Set<String>()
        for entry in [before, after] { entry.forEachAttribute { name, _ in names.insert(name) } }
        return names.subtracting(ignored).allSatisfy { before[$0] == after[$0] }
    }
}
