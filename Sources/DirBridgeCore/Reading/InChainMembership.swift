/// Nested-group membership as the server resolves it: Active Directory's in-chain matching rule.
///
/// With `groups.nested: server`, dirbridge asks, for each group read that a rule names (`group:`)
/// or matches (`groups:`), which users are in it at any depth:
/// `(&USERS-FILTER(memberOf:1.2.840.113556.1.4.1941:=GROUP-DN))` under `users.base`, one paged
/// search per group returning DNs only (the server evaluates the chain for every user under the
/// base, ~0.3 s per group for 1,600 users on Samba, so groups no rule looks at are not asked
/// about: their memberships, shown by `explain`, come from dirbridge's walk). The server follows
/// nesting through every group of the domain, including groups outside `groups.base` /
/// `groups.filter` that dirbridge's own walk never sees. The rule ignores primary groups (as
/// `memberOf` does), so those and the groups above them come from dirbridge's walk too.
///
/// A server that does not offer the rule (no Active Directory capability in its root DSE, or an
/// answer that the rule is unsupported) gets dirbridge's walk instead, with a warning: OpenLDAP,
/// for one, answers an unknown matching rule with "success, 0 entries", which must never be
/// taken for "no members".
struct InChainMembership {
    /// LDAP_MATCHING_RULE_IN_CHAIN.
    static let rule = "1.2.840.113556.1.4.1941"

    /// Normalised user DN → positions (in the group index) of the asked groups the user is in, at any depth.
    var groupsByUser: [String: Set<Int>] = [:]
    /// Normalised DNs of the groups the server was asked about: for these its answer is authoritative.
    var asked: Set<String> = []

    /// Whether a rule names or matches the group: the groups worth asking the server about.
    static func concerns(_ rules: [MappingRule], _ group: GroupIndex.Node) -> Bool {
        rules.contains { rule in
            switch rule.selector {
            case .group(let dn): dn == group.dn
            case .groups(let pattern): pattern.matches(groupDN: group.dn, cn: group.cn)
            case .filter: false
            }
        }
    }

    /// The filter asking for the users in `groupDN` at any depth.
    static func filter(users usersFilter: String, groupDN: String) -> String {
        request(SearchRequest(base: "", filter: usersFilter), groupDN: groupDN).filter
    }

    /// The users' search narrowed to the members of `groupDN` at any depth, asking for no attribute.
    static func request(_ users: SearchRequest, groupDN: String) -> SearchRequest {
        var request = users.narrowed(to: "(memberOf:\(rule):=\(LDAPFilterText.escape(groupDN)))")
        request.attributes = []
        return request
    }

    /// Asks the server for the members at any depth of each of `groups` the `rules` concern; nil when
    /// it answers that the rule is unsupported (the caller walks the groups itself). Other failures throw.
    static func read(groups: [GroupIndex.Node], rules: [MappingRule], users: SearchRequest, connection: DirectoryConnection) throws -> InChainMembership? {
        var membership = InChainMembership()
        for (position, group) in groups.enumerated() where concerns(rules, group) {
            membership.asked.insert(group.dn)
            let request = request(users, groupDN: group.entry.dn)
            do {
                try connection.search(request) { page in
                    for entry in page {
                        guard let dn = try? DistinguishedName.normalize(entry.dn) else { continue }
                        membership.groupsByUser[dn, default: []].insert(position)
                    }
                }
            } catch let error as DirectoryError where error.isUnsupportedFeature {
                connection.logger.warning(
                    "the server refused the in-chain matching rule; dirbridge resolves nested groups itself (groups.nested: server falls back to client)",
                    metadata: ["url": "\(connection.url)", "error": "\(error.resultText ?? error.code.rawValue)"])
                return nil
            }
        }
        return membership
    }
}

/// What the group read asks of the server beyond plain attributes: member values in ranges
/// (`groups.range`) and the in-chain rule (`groups.nested: server`), each only where the
/// server's root DSE says it is Active Directory (read once, only when one of them is asked for).
struct ServerGroupFeatures {
    /// The group attributes to request, DN-valued member attributes as `member;range=0-N` when ranged.
    var groupAttributes: [String]
    /// Resolve nesting with the in-chain rule.
    var inChain: Bool

    init(_ mapping: Mapping, connection: DirectoryConnection) throws {
        groupAttributes = mapping.groupAttributesToRead
        inChain = false
        guard let groups = mapping.groups else { return }
        let wantsInChain = groups.nested && groups.nestedResolution == .server
        guard wantsInChain || groups.rangeSize != nil else { return }
        let isActiveDirectory = try connection.capabilities().isActiveDirectory
        if !isActiveDirectory {
            connection.logger.warning(
                "the server does not say it is Active Directory (no supportedCapabilities 1.2.840.113556.1.4.800): dirbridge reads member values whole and resolves nested groups itself",
                metadata: ["url": "\(connection.url)", "range": "\(groups.rangeSize.map(String.init) ?? "-")", "nested": "\(groups.nestedResolution.rawValue)"])
            return
        }
        inChain = wantsInChain
        if let size = groups.rangeSize {
            let ranged = Set(groups.members.filter { $0 != "memberof" && $0 != "memberuid" })
            groupAttributes = groupAttributes.map { ranged.contains($0) ? RangedAttribute.request($0, from: 0, size: size) : $0 }
        }
    }
}

extension GroupIndex {
    /// With `nested: server` on Active Directory, asks the server for nesting (a full read does this
    /// while reading the groups; an incremental run on its cached groups).
    mutating func resolveInChain(_ mapping: Mapping, connection: DirectoryConnection) throws {
        guard let groups = mapping.groups, groups.nested, groups.nestedResolution == .server,
              try ServerGroupFeatures(mapping, connection: connection).inChain else { return }
        inChain = try InChainMembership.read(groups: nodes, rules: mapping.rules, users: mapping.usersSearch(), connection: connection)
    }

    /// With `nested: server`: the memberships the server's in-chain answer confirms.
    ///
    /// Direct memberships (read from `member`, `memberUid`, `memberOf`), the primary group with the
    /// groups above it, and nested memberships of groups the server was not asked about stay; a
    /// nested membership of an asked group counts only when the server lists the user in it; an asked
    /// group the server lists that dirbridge's walk did not reach (through a group outside
    /// `groups.base`) is added, its path being just the group. Paths are dirbridge's shortest walk where it has one.
    func confirmedByServer(_ memberships: [GroupMembership], of user: EntryAttributes) -> [GroupMembership] {
        guard let inChain, let userDN = try? DistinguishedName.normalize(user.dn) else { return memberships }
        let listed = inChain.groupsByUser[userDN] ?? []
        let listedDNs = Set(listed.map { nodes[$0].dn })
        let primaryDN = PrimaryGroups.primaryGroupID(of: user).flatMap { byPrimaryGroupID[$0] }.map { nodes[$0].dn }
        var kept = memberships.filter { membership in
            membership.path.count <= 1 || !inChain.asked.contains(membership.groupDN) || listedDNs.contains(membership.groupDN)
                || (primaryDN != nil && membership.path.first == primaryDN)
        }
        let known = Set(kept.map(\.groupDN))
        for position in listed.sorted() where !known.contains(nodes[position].dn) {
            let node = nodes[position]
            kept.append(GroupMembership(canonicalDN: node.dn, cn: node.cn, attributes: node.entry, path: [node.dn]))
        }
        return kept.sorted { $0.groupDN < $1.groupDN }
    }
}
