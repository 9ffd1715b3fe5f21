import Foundation
import Yams

/// `deprovision:` (what happens to users no longer read, and the guards' limits) and `guards:`.
extension MappingReader {
    func readDeprovision(_ node: Node) -> DeprovisionSettings {
        var settings = DeprovisionSettings()
        guard let keys = entries(node, "`deprovision`", MappingKeys.deprovision) else { return settings }
        if let node = keys["missing"]?.value, let value = choice(node, "missing", MissingAction.self) {
            settings.missing = value
        }
        if let node = keys["max_disable"]?.value, let value = threshold(node, "max_disable") {
            settings.maxDisable = value
        }
        if let node = keys["max_demote"]?.value, let value = integer(node, "max_demote", minimum: 0) {
            settings.maxDemote = value
        }
        if let entry = keys["protected"] {
            var nodes: [Node] = []
            if case .sequence(let sequence) = entry.value { nodes = Array(sequence) } else { nodes = [entry.value] }
            for node in nodes {
                guard let email = nonEmptyString(node, "protected") else { continue }
                if email.contains("@") {
                    settings.protected.append(email.trimmingSpaces().lowercased())
                } else {
                    issue(node, "`protected` lists client users by email, found `\(email)`")
                }
            }
        }
        return settings
    }

    /// `guards:`: `max_promote` (a count) and `privileged_roles` (role names).
    func readGuards(_ node: Node) -> GuardSettings {
        var settings = GuardSettings()
        guard let keys = entries(node, "`guards`", MappingKeys.guards) else { return settings }
        if let node = keys["max_promote"]?.value, let value = integer(node, "max_promote", minimum: 0) {
            settings.maxPromote = value
        }
        if let entry = keys["privileged_roles"] {
            var nodes: [Node] = []
            if case .sequence(let sequence) = entry.value { nodes = Array(sequence) } else { nodes = [entry.value] }
            settings.privilegedRoles = nodes.compactMap { nonEmptyString($0, "privileged_roles")?.trimmingSpaces() }
        }
        return settings
    }

    /// `notify:`: `webhook` (required), `on`, `secret_env`, `timeout`.
    func readNotify(_ node: Node) -> NotifySettings? {
        guard let keys = entries(node, "`notify`", MappingKeys.notify) else { return nil }
        guard let webhookNode = keys["webhook"]?.value else {
            issue(node, "`notify` needs `webhook: URL` (where to POST each run's outcome)")
            return nil
        }
        guard let webhook = nonEmptyString(webhookNode, "webhook") else { return nil }
        let lower = webhook.lowercased()
        guard (lower.hasPrefix("http://") || lower.hasPrefix("https://")), URL(string: webhook)?.host != nil else {
            issue(webhookNode, "`webhook` must be an http:// or https:// URL, found `\(webhook)`")
            return nil
        }
        var settings = NotifySettings(webhook: webhook)
        if let entry = keys["on"] {
            var nodes: [Node] = []
            if case .sequence(let sequence) = entry.value { nodes = Array(sequence) } else { nodes = [entry.value] }
            settings.on = Set(nodes.compactMap { choice($0, "on", NotifyEvent.self) })
        }
        if let node = keys["secret_env"]?.value, let name = nonEmptyString(node, "secret_env") {
            settings.secretEnv = name
        }
        if let node = keys["timeout"]?.value, let value = duration(node, "timeout") {
            settings.timeout = value
        }
        return settings
    }

    /// A count (`10`) or a share (`5%`, 0…100%), read by ``Threshold/parse(_:)``.
    func threshold(_ node: Node, _ name: String) -> Threshold? {
        guard case .scalar(let scalar) = node else {
            issue(node, "`\(name)` \(Threshold.ParseError.malformed), found \(Self.describe(node))")
            return nil
        }
        let text = scalar.string.trimmingSpaces()
        do {
            return try Threshold.parse(text)
        } catch {
            issue(node, "`\(name)` \(error), found `\(text)`")
            return nil
        }
    }
}
