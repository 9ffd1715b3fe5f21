import Dispatch
import Logging

/// A directory user after mapping and rule evaluation: what the portal should hold for it.
public struct DirectoryUser: Sendable {
    /// Portal fields, external id, DN and directory-disabled state.
    public var mapped: MappedFields
    /// User group, role and flags, with the rules that decided them.
    public var outcome: RuleOutcome
}

/// An entry that does not become a client user, reported by DN and skipped, never one of two silently chosen (no usable email, no id, a duplicate email).
public struct SkippedEntry: Sendable, Codable, Equatable {
    public var dn: String
    public var reason: String
    /// The entry's immutable id when it has one: a skipped entry is still present, so its portal user is not disabled.
    public var externalID: String?
}

/// Everything one full read of the directory gave, mapped: the desired state of the portal.
///
/// Built by streaming pages: raw entries are dropped as soon as they are mapped.
public struct DirectorySnapshot: Sendable {
    public var users: [DirectoryUser]
    public var skipped: [SkippedEntry]
    /// External ids present in the directory beside the users' own: those of the skipped
    /// entries that have one (a skipped entry is still present, so its portal user is not
    /// disabled). A user's id is present by being in `users`: the planner asks both.
    /// (Every user's id was gathered here as it was mapped: a set of 1M ids, grown one at a
    /// time on the mapping thread, for a question asked only about stored users left unmatched.)
    public var presentIDs: Set<String>
    /// Entries read from the directory this run: every user entry for a full read, only the
    /// changed users and groups for an incremental one.
    public var entriesRead: Int
    /// User entries in the directory view (before skipping): what the empty-read guard checks.
    public var userEntries: Int
    /// Group entries read.
    public var groupsRead: Int
    /// Search continuation references skipped.
    public var references: Int
}

/// Reads users and groups for a mapping and resolves memberships (member DN, uniqueMember,
/// memberUid, memberOf; nested groups cycle-safe with a depth cap).
public enum DirectorySnapshotReader {
    /// Nesting followed when the mapping sets no `groups.max_depth`.
    public static let defaultMaxDepth = 32

    /// Reads the whole directory view of `mapping` over `connection`.
    ///
    /// Groups are read first (they are few), then users stream page by page; each user is
    /// mapped and its rules evaluated as it arrives. Any directory failure throws before a
    /// snapshot exists, so nothing downstream ever sees a partial read. A `collector` keeps
    /// the raw entries (for the incremental sync's cache); `shouldStop` is asked between
    /// pages and ends the read with ``SyncStopped``.
    public static func read(
        _ mapping: Mapping, connection: DirectoryConnection, logger: Logger,
        progress: ((Int) -> Void)? = nil
    ) throws -> DirectorySnapshot {
        try read(mapping, connection: connection, logger: logger, progress: progress, collector: nil)
    }

    static func read(
        _ mapping: Mapping, connection: DirectoryConnection, logger: Logger,
        progress: ((Int) -> Void)?, collector: DirectoryCacheCollector?, shouldStop: () -> Bool = { false }
    ) throws -> DirectorySnapshot {
        let extra = collector?.extraAttributes ?? []
        let (index, references) = try GroupIndex.read(mapping, connection: connection, extraAttributes: extra) { group in
            collector?.keep(group: group)
        }
        // Pages are mapped on a second thread while this one parses the next page's entries.
        // The collector travels with the builder: only the mapping thread touches either until finish().
        let mapper = PageMapper((builder: SnapshotBuilder(mapping: mapping, index: index), collector: collector)) { state, page in
            for entry in page {
                let email = state.builder.add(user: entry)
                state.collector?.keep(user: entry, email: email)
            }
        }
        var read = 0
        let statistics: SearchStatistics
        do {
            statistics = try connection.search(mapping.usersSearch(extra: extra)) { page in
                if shouldStop() { throw SyncStopped() }
                mapper.submit(page)
                read += page.count
                progress?(read)
            }
        } catch {
            _ = mapper.finish()
            throw error
        }
        return mapper.finish().builder.finish(entriesRead: read, references: references + statistics.references, logger: logger)
    }
}

/// The users' emails, lowercased, gathered as the users are added: every user whose email
/// another shares (any case) is skipped and reported, none chosen.
struct DuplicateEmails {
    // Each email's last position, and the positions of the emails met more than once: an
    // array per email (and a lowercased copy of each) made 2M allocations at 1M users, and
    // freeing them took about half a second at the end of the read.
    private var seen: [String: Int] = [:]
    private var duplicated: [String: [Int]] = [:]

    init(capacity: Int = 0) { seen.reserveCapacity(capacity) }

    /// Notes the user at `position` and its lowercased email.
    mutating func add(_ email: String, at position: Int) {
        guard let index = seen.index(forKey: email) else {
            seen[email] = position
            return
        }
        // Named as first spelled: an NFC and an NFD spelling are one email, whose reason shows the first.
        let (first, previous) = seen[index]
        seen.values[index] = position
        duplicated[first, default: [previous]].append(position)
    }

    /// `users` (the ones added, at their positions) without those sharing an email, and those as skipped entries.
    func remove(from users: [DirectoryUser]) -> ([DirectoryUser], [SkippedEntry]) {
        guard !duplicated.isEmpty else { return (users, []) }
        var drop = Set<Int>()
        var skipped: [SkippedEntry] = []
        for (email, positions) in duplicated.sorted(by: { $0.key < $1.key }) {
            let dns = positions.map { users[$0].mapped.dn }
            for position in positions {
                drop.insert(position)
                let others = dns.filter { $0 != users[position].mapped.dn }.joined(separator: "; ")
                skipped.append(SkippedEntry(dn: users[position].mapped.dn, reason: "duplicate email \(email) (also \(others)); skipped, none chosen", externalID: users[position].mapped.externalID))
            }
        }
        return (users.enumerated().filter { !drop.contains($0.offset) }.map(\.element), skipped)
    }
}

/// Maps pages of entries on its own serial queue, in the order they are submitted, while the
/// submitting thread reads on: on two cores, parsing a page's BER and mapping the previous
/// page then overlap (a 100k-user read spent about half its time in each).
///
/// At most two pages wait, so memory stays bounded when mapping is slower than reading.
/// `state` is touched only on the queue until ``finish()`` returns it: everything `body`
/// changes belongs in `state`, and one thread submits and finishes.
final class PageMapper<State>: @unchecked Sendable {
    private let queue = DispatchQueue(label: "dirbridge.mapping")
    private let slots = DispatchSemaphore(value: 2)
    private var state: State
    private let body: (inout State, [EntryAttributes]) -> Void

    init(_ state: State, body: @escaping (inout State, [EntryAttributes]) -> Void) {
        self.state = state
        self.body = body
    }

    /// Queues `page`; waits while two pages are already waiting.
    func submit(_ page: [EntryAttributes]) {
        slots.wait()
        queue.async {
            self.body(&self.state, page)
            self.slots.signal()
        }
    }

    /// Waits until every submitted page is mapped, then returns the state.
    func finish() -> State {
        queue.sync {}
        return state
    }
}

/// Builds a snapshot from user entries, wherever they come from: a full read streaming
/// pages, or the directory cache patched by an incremental read.
struct SnapshotBuilder {
    let mapping: Mapping
    private var index: GroupIndex
    private let evaluator: RuleEvaluator
    private var users: [DirectoryUser] = []
    private var skipped: [SkippedEntry] = []
    private var names = StringPool()
    private var decisions = SharingPool<[Decision]>()
    private var outcomes: [OutcomeKey: RuleOutcome] = [:]
    private var emails = DuplicateEmails()

    init(mapping: Mapping, index: GroupIndex) {
        self.mapping = mapping
        self.index = index
        evaluator = RuleEvaluator(rules: mapping.rules)
    }

    /// Maps one user entry and evaluates its rules (or records why it is skipped); returns
    /// its mapped email, lowercased, or nil when it is skipped.
    @discardableResult
    mutating func add(user entry: EntryAttributes) -> String? {
        switch mapping.mapUser(entry) {
        case .success(let mapped):
            users.append(DirectoryUser(mapped: mapped, outcome: outcome(of: entry)))
            // Noted here, on the mapping thread of a full read: at its end the reading thread only drops duplicates.
            let email = mapped.email.lowercasedSharingStorage
            emails.add(email, at: users.count - 1)
            return email
        case .failure(let reason):
            let id = Mapping.externalID(entry, attribute: mapping.users.id)
            skipped.append(SkippedEntry(dn: entry.dn, reason: reason.description, externalID: id.isEmpty ? nil : id))
            return nil
        }
    }

    /// The rules' outcome for a user. The rules see only the user's memberships and which of
    /// their filters the entry matches, so users alike in both (most users of one department)
    /// get one outcome, evaluated once: its group name and decisions are then shared, not
    /// rendered again for each user.
    private mutating func outcome(of entry: EntryAttributes) -> RuleOutcome {
        let (memberships, groups) = index.membershipsAndKey(of: entry)
        let key = groups.map { OutcomeKey(groups: $0, filterMatches: evaluator.filterMatches(entry)) }
        if let key, let known = outcomes[key] { return known }
        var outcome = evaluator.evaluate(user: entry, memberships: memberships)
        outcome.userGroup = names.shared(outcome.userGroup)
        outcome.decisions = decisions.shared(outcome.decisions)
        if let key { outcomes[key] = outcome }
        return outcome
    }

    private struct OutcomeKey: Hashable {
        var groups: [Int]
        var filterMatches: [Bool]
    }

    /// The snapshot, with entries sharing an email skipped.
    func finish(entriesRead: Int, references: Int, logger: Logger) -> DirectorySnapshot {
        let (kept, duplicates) = emails.remove(from: users)
        let allSkipped = skipped + duplicates
        logger.debug("directory view built", metadata: ["users": "\(users.count + skipped.count)", "groups": "\(index.count)", "skipped": "\(allSkipped.count)"])
        return DirectorySnapshot(users: kept, skipped: allSkipped, presentIDs: Set(allSkipped.compactMap(\.externalID)), entriesRead: entriesRead,
                                 userEntries: users.count + skipped.count, groupsRead: index.count, references: references)
    }
}

/// Group positions by member (a canonical DN, or a lowercased uid). Most members belong to
/// one group directly: its position is held in the dictionary itself, and only a member of
/// several gets an array (at 1M members, an array each was about 48 MB, and freeing them a
/// good part of a second).
struct GroupsByMember {
    /// ≥ 0: the member's one group; < 0: `-1 - i`, its groups are `several[i]`.
    private var slots: [String: Int] = [:]
    private var several: [[Int]] = []

    mutating func add(_ member: String, group: Int) {
        // One hash for a member seen first (most members are in one group); a member seen
        // again gets its slot back below.
        guard let slot = slots.updateValue(group, forKey: member) else { return }
        if slot >= 0 {
            several.append([slot, group])
            slots[member] = -several.count
        } else {
            several[-1 - slot].append(group)
            slots[member] = slot
        }
    }

    /// The member's groups, in the order they were added.
    func groups(of member: String) -> Groups {
        guard let slot = slots[member] else { return Groups(single: nil, rest: nil) }
        return slot >= 0 ? Groups(single: slot, rest: nil) : Groups(single: nil, rest: several[-1 - slot].makeIterator())
    }

    struct Groups: Sequence, IteratorProtocol {
        fileprivate var single: Int?
        fileprivate var rest: IndexingIterator<[Int]>?

        mutating func next() -> Int? {
            if let value = single {
                single = nil
                return value
            }
            return rest?.next()
        }
    }
}

/// The groups read, indexed for membership lookups and nested-group walks.
struct GroupIndex {
    struct Node {
        var dn: String
        var cn: String
        var entry: EntryAttributes
        var parents: [Int] = []
    }

    private let memberAttributes: [String]
    private let dnMemberAttributes: [String]
    private let readsMemberUID: Bool
    private let readsMemberOf: Bool
    private let nested: Bool
    private let maxDepth: Int
    private let readsPrimaryGroups: Bool
    private(set) var nodes: [Node] = []
    private var byDN: [String: Int] = [:]
    private var byMemberDN = GroupsByMember()
    private var byMemberUID = GroupsByMember()
    private var closures: [Int: [GroupMembership]] = [:]
    private var membershipsByDirectGroups: [[Int]: [GroupMembership]] = [:]
    /// Groups by the RID their primary members carry in `primaryGroupID` (PrimaryGroups.swift).
    private(set) var byPrimaryGroupID: [UInt32: Int] = [:]
    /// With `nested: server`, the server's in-chain answer (InChainMembership.swift); nil otherwise.
    var inChain: InChainMembership?

    init(mapping: Mapping) {
        let members = mapping.groups?.members.map { $0.lowercased() } ?? []
        memberAttributes = members
        dnMemberAttributes = members.filter { $0 != "memberuid" && $0 != "memberof" }
        readsMemberUID = members.contains("memberuid")
        readsMemberOf = members.contains("memberof")
        nested = mapping.groups?.nested ?? false
        maxDepth = mapping.groups?.maxDepth ?? DirectorySnapshotReader.defaultMaxDepth
        readsPrimaryGroups = mapping.readsPrimaryGroups
    }

    var count: Int { nodes.count }

    /// Reads the mapping's groups (when it has a `groups:` section) and links nested ones.
    /// Returns the index and the number of continuation references skipped.
    static func read(
        _ mapping: Mapping, connection: DirectoryConnection, extraAttributes: [String] = [],
        keep: (EntryAttributes) -> Void = { _ in }
    ) throws -> (GroupIndex, Int) {
        var index = GroupIndex(mapping: mapping)
        guard mapping.groups != nil else { return (index, 0) }
        let server = try ServerGroupFeatures(mapping, connection: connection)
        let statistics = try connection.search(mapping.groupsSearch(attributes: server.groupAttributes, extra: extraAttributes)!) { page in
            for entry in page {
                keep(entry)
                index.add(entry)
            }
        }
        index.link()
        if server.inChain {
            index.inChain = try InChainMembership.read(groups: index.nodes, rules: mapping.rules, users: mapping.usersSearch(), connection: connection)
        }
        return (index, statistics.references)
    }

    /// An index of groups already read (the directory cache).
    ///
    /// With `members`, the canonical DNs of the only users whose memberships will be asked
    /// for, member DNs are indexed for those users and for the groups themselves (nesting)
    /// only: an incremental run planning 100 users of 100,000 spent most of its read indexing
    /// the other members.
    init(mapping: Mapping, groups: some Collection<EntryAttributes>, members: Set<String>? = nil) {
        self.init(mapping: mapping)
        if var wanted = members {
            for entry in groups { if let dn = DistinguishedName.canonical(entry.dn) { wanted.insert(dn) } }
            memberFilter = wanted
            memberFilterHashes = Set(wanted.map { DistinguishedName.fingerprint($0) })
        }
        for entry in groups { add(entry) }
        link()
    }

    /// The member DNs worth indexing; nil indexes every one.
    private var memberFilter: Set<String>?
    /// ``DistinguishedName/fingerprint(_:)`` of each DN in `memberFilter`: a member value
    /// already in canonical form that has none of them is not wanted, found without making a
    /// String of it (an incremental run's index of 1,000 groups looked at each of 100,000 members).
    private var memberFilterHashes: Set<UInt64> = []

    mutating func add(_ entry: EntryAttributes) {
        guard let dn = try? DistinguishedName(entry.dn) else { return }
        let position = nodes.count
        let cn = entry.first("cn") ?? dn.rdnValue ?? entry.dn
        // The name a rule's template reads as `{cn}`, set once here rather than on each render
        // (setting it copies the entry, a large group's members included).
        var named = entry
        if entry["cn"]?.isEmpty ?? true { named.set("cn", to: [Array(cn.utf8)]) }
        nodes.append(Node(dn: dn.normalized, cn: cn, entry: named))
        byDN[dn.normalized] = position
        for attribute in dnMemberAttributes {
            // In place: a slice per value cost a retain and a release of the entry's buffer each.
            entry[attribute]?.forEachValue { bytes in
                if memberFilter != nil, let hash = DistinguishedName.canonicalFingerprint(bytes), !memberFilterHashes.contains(hash) { return }
                if let member = DistinguishedName.canonical(String(decoding: bytes, as: UTF8.self)), memberFilter?.contains(member) ?? true {
                    byMemberDN.add(member, group: position)
                }
            }
        }
        if readsMemberUID {
            for uid in entry.strings("memberuid") { byMemberUID.add(uid.lowercased(), group: position) }
        }
        if readsPrimaryGroups, let rid = PrimaryGroups.relativeID(ofGroup: entry) { byPrimaryGroupID[rid] = position }
    }

    /// Links groups that are members of groups, once all groups are read.
    mutating func link() {
        guard nested else { return }
        for (position, node) in nodes.enumerated() {
            for parent in byMemberDN.groups(of: node.dn) where parent != position {
                nodes[position].parents.append(parent)
            }
        }
    }

    /// The groups `entry` belongs to, directly and (when nested) through groups in groups.
    mutating func memberships(of entry: EntryAttributes) -> [GroupMembership] {
        membershipsAndKey(of: entry).memberships
    }

    /// The user's memberships, and the positions of its direct groups when they alone decide
    /// the memberships (no group outside groups.base, no server confirmation): users with the
    /// same key have the same memberships.
    mutating func membershipsAndKey(of entry: EntryAttributes) -> (memberships: [GroupMembership], key: [Int]?) {
        guard !nodes.isEmpty || readsMemberOf else { return ([], []) }
        var direct = Set<Int>()
        var outside: [GroupMembership] = []
        if !dnMemberAttributes.isEmpty, let dn = DistinguishedName.canonical(entry.dn) {
            direct.formUnion(byMemberDN.groups(of: dn))
        }
        if readsMemberUID {
            for uid in entry.strings("uid") { direct.formUnion(byMemberUID.groups(of: uid.lowercased())) }
        }
        if readsPrimaryGroups, let rid = PrimaryGroups.primaryGroupID(of: entry), let group = byPrimaryGroupID[rid] {
            direct.insert(group)
        }
        if readsMemberOf {
            for value in entry.strings("memberof") {
                guard let group = try? DistinguishedName(value) else { continue }
                if let position = byDN[group.normalized] {
                    direct.insert(position)
                } else {
                    // A group outside groups.base/filter: rules can still name it by DN.
                    outside.append(GroupMembership(canonicalDN: group.normalized, cn: group.rdnValue ?? value, path: [group.normalized]))
                }
            }
        }
        let key = direct.sorted()
        let resolved: [GroupMembership]
        if let cached = membershipsByDirectGroups[key] {
            resolved = cached
        } else {
            var best: [String: GroupMembership] = [:]
            for group in key {
                for membership in closure(of: group) {
                    if let known = best[membership.groupDN], known.path.count <= membership.path.count { continue }
                    best[membership.groupDN] = membership
                }
            }
            resolved = best.values.sorted { $0.groupDN < $1.groupDN }
            membershipsByDirectGroups[key] = resolved
        }
        guard outside.isEmpty, inChain == nil else {
            let all = outside.isEmpty ? resolved : resolved + outside
            return (inChain == nil ? all : confirmedByServer(all, of: entry), nil)
        }
        return (resolved, key)
    }

    /// A group and every group above it, each with the shortest path from it; cycle-safe, depth-capped.
    private mutating func closure(of start: Int) -> [GroupMembership] {
        if let cached = closures[start] { return cached }
        var result: [GroupMembership] = []
        var visited: Set<Int> = [start]
        var queue: [(Int, [String])] = [(start, [nodes[start].dn])]
        var head = 0
        while head < queue.count {
            let (position, path) = queue[head]
            head += 1
            let node = nodes[position]
            result.append(GroupMembership(canonicalDN: node.dn, cn: node.cn, attributes: node.entry, path: path))
            guard nested, path.count < maxDepth else { continue }
            for parent in node.parents where !visited.contains(parent) {
                visited.insert(parent)
                queue.append((parent, path + [nodes[parent].dn]))
            }
        }
        closures[start] = result
        return result
    }
}
