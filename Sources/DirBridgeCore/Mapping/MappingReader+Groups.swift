import Yams

/// `groups:`: where groups are read, their member attributes and nesting.
extension MappingReader {
    func readGroups(_ entry: Entry) -> GroupsSection? {
        guard let keys = entries(entry.value, "`groups`", MappingKeys.groups) else { return nil }
        var valid = true
        var section = GroupsSection(
            base: "", scope: .sub, filter: GroupsSection.defaultFilter, members: ["member"], nested: true, maxDepth: nil)
        if let node = keys["base"]?.value {
            if let text = nonEmptyString(node, "groups.base"), dn(node, "groups.base") != nil {
                section.base = text
            } else { valid = false }
        } else if !reportedMisspelling(of: "base", in: entry.value) {
            issue(entry.key, "`groups` needs a `base` (the DN under which groups are searched)")
            valid = false
        }
        if let node = keys["scope"]?.value {
            if let value = choice(node, "scope", SearchScope.self) { section.scope = value } else { valid = false }
        }
        if let node = keys["filter"]?.value {
            if let value = serverFilter(node, "groups.filter") { section.filter = value } else { valid = false }
        }
        if let node = keys["members"]?.value {
            var nodes: [Node] = []
            if case .sequence(let sequence) = node { nodes = Array(sequence) } else { nodes = [node] }
            let names = nodes.compactMap { attributeName($0, "members") }
            if names.count != nodes.count || names.isEmpty {
                if nodes.isEmpty { issue(node, "`members` lists no attribute") }
                valid = false
            } else {
                section.members = names
            }
        }
        if let node = keys["nested"]?.value {
            if let (nested, resolution) = nestedSetting(node) {
                section.nested = nested
                section.nestedResolution = resolution
            } else { valid = false }
        }
        if let node = keys["max_depth"]?.value {
            if let value = integer(node, "max_depth", minimum: 1) { section.maxDepth = value } else { valid = false }
        }
        if let node = keys["range"]?.value {
            if let value = integer(node, "range", minimum: 1) { section.rangeSize = value } else { valid = false }
        }
        if let node = keys["primary_group"]?.value {
            if let value = bool(node, "primary_group") { section.primaryGroup = value } else { valid = false }
        }
        return valid ? section : nil
    }

    /// `nested: true | false | client | server`: `true` is `client`, the walk dirbridge has always done.
    func nestedSetting(_ node: Node) -> (Bool, NestedResolution)? {
        if case .scalar(let scalar) = node, scalar.style == .plain, let value = node.bool { return (value, .client) }
        if case .scalar(let scalar) = node, let value = NestedResolution(rawValue: scalar.string.lowercased()) { return (true, value) }
        issue(node, "`nested` must be true, false, `client` or `server`, found \(Self.describe(node))",
              hint: "`server` asks the directory (Active Directory's in-chain rule); `true` or `client` walks the groups read")
        return nil
    }
}
