import Yams

/// `rules:`: which users get which user group, role and flags.
extension MappingReader {
    func readRules(_ node: Node, hasGroups: Bool) -> [MappingRule] {
        guard case .sequence(let sequence) = node else {
            if node.null == nil { issue(node, "`rules` must be a list of rules (lines starting with `- `), found \(Self.describe(node))") }
            return []
        }
        var rules: [MappingRule] = []
        for (offset, ruleNode) in sequence.enumerated() {
            if let rule = readRule(ruleNode, index: offset + 1, hasGroups: hasGroups) { rules.append(rule) }
        }
        return rules
    }

    func readRule(_ node: Node, index: Int, hasGroups: Bool) -> MappingRule? {
        let name = "rule \(index)"
        guard let keys = entries(node, "`\(name)`", MappingKeys.rule) else { return nil }
        var valid = true
        let selectorKeys = ["group", "groups", "filter"].filter { keys[$0] != nil }
        var selector: RuleSelector?
        if selectorKeys.count != 1 {
            if selectorKeys.isEmpty {
                issue(node, "\(name) needs one of `group`, `groups` or `filter` to say which users it selects")
            } else {
                let second = keys[selectorKeys[1]]!.key
                issue(second, "\(name) has both " + selectorKeys.map { "`\($0)`" }.joined(separator: " and ")
                      + "; a rule selects users one way", hint: "split it into one rule per selector")
            }
            valid = false
        } else if let entry = keys["group"] {
            if let dn = dn(entry.value, "group") { selector = .group(dn: dn) } else { valid = false }
        } else if let entry = keys["groups"] {
            if let text = nonEmptyString(entry.value, "groups") { selector = .groups(GroupPattern(text)) } else { valid = false }
        } else if let entry = keys["filter"] {
            if let setting = inMemoryFilter(entry.value, "filter") {
                selector = .filter(setting.filter, text: setting.text)
            } else { valid = false }
        }
        if let selectorKey = selectorKeys.first, selectorKey != "filter", !hasGroups {
            issue(keys[selectorKey]!.key, "\(name) selects by group but the file has no `groups:` section",
                  hint: "add `groups: { base: …, members: [member] }`")
            valid = false
        }

        var userGroup: FieldTemplate?
        if let entry = keys["user_group"] {
            if let template = template(entry.value, "user_group", bareNameIsAttribute: false) {
                userGroup = template
                if !template.isConstant, selectorKeys == ["filter"] {
                    issue(entry.value, "`user_group` placeholders read the matched group's attributes; a `filter:` rule matches no group",
                          hint: "name the user group literally, e.g. `user_group: Engineering`")
                    valid = false
                } else if !template.isConstant, template.mayRenderEmpty {
                    let attributes = template.attributes.map { "`\($0)`" }.joined(separator: ", ")
                    issue(entry.value, "`user_group` `\(template.source)` can be empty: \(attributes) may be missing on a group",
                          hint: #"use `{cn}` or add a default, e.g. "{description | default(\"Staff\")}""#)
                    valid = false
                }
            } else { valid = false }
        }
        var role: String?
        if let entry = keys["role"] {
            if let text = nonEmptyString(entry.value, "role") { role = text.trimmingSpaces() } else { valid = false }
        }
        var globalAdmin = false
        if let entry = keys["global_admin"] {
            if let value = bool(entry.value, "global_admin") { globalAdmin = value } else { valid = false }
        }
        var groupManager = false
        if let entry = keys["group_manager"] {
            if let value = bool(entry.value, "group_manager") { groupManager = value } else { valid = false }
        }
        let namesDefault = userGroup.map {
            $0.isConstant && TemplateFilter.trimmed($0.source).lowercased() == defaultUserGroupName.lowercased()
        }
        if globalAdmin, let userGroup, namesDefault == false {
            issue(keys["global_admin"]!.key,
                  "\(name) can never take effect: Global Admin is only allowed in the \(defaultUserGroupName), but the rule names `\(userGroup.source)`",
                  hint: "drop `user_group` from this rule, or make it a separate rule")
            valid = false
        }
        if groupManager, userGroup == nil || namesDefault == true {
            issue(keys["group_manager"]!.key,
                  "\(name) can never take effect: a Group Manager manages a custom user group, and the rule "
                      + (userGroup == nil ? "names none" : "names the \(defaultUserGroupName)"),
                  hint: "add `user_group: NAME` naming the group this user manages")
            valid = false
        }
        if valid, userGroup == nil, role == nil, !globalAdmin, !groupManager {
            issue(node, "\(name) sets nothing", hint: "add `user_group`, `role`, `global_admin` or `group_manager`")
            valid = false
        }
        guard valid, let selector else { return nil }
        return MappingRule(
            index: index, line: node.mark?.line ?? 1, selector: selector, userGroup: userGroup, role: role,
            globalAdmin: globalAdmin, groupManager: groupManager)
    }
}
