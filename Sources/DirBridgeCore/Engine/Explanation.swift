import Logging

/// Why one user gets their user group, role and flags: `dirbridge explain`.
public struct Explanation: Sendable, Encodable {
    public var email: String
    public var dn: String
    /// The entry's attributes the mapping reads, as text.
    public var attributes: [String: [String]]
    /// The groups the user is in, each with the path that made the membership.
    public var groups: [String]
    /// Every rule decision, in rule order.
    public var decisions: [String]
    public var userGroup: String
    public var role: String
    public var globalAdmin: Bool
    public var groupManager: Bool
    public var disabledInDirectory: Bool
    /// What the store holds for the user now, or nil when they are not in the store.
    public var store: [String: String]?

    enum CodingKeys: String, CodingKey {
        case email, dn, attributes, groups, decisions, role, store
        case userGroup = "user_group"
        case globalAdmin = "global_admin"
        case groupManager = "group_manager"
        case disabledInDirectory = "disabled_in_directory"
    }
}

/// A usage error for `explain`: no such user in the directory.
public struct ExplainError: DirBridgeFailure {
    public var message: String
    public var kind: FailureKind { .usage }
    public var description: String { message }
}

public enum Explainer {
    /// Reads the groups and the users, finds the entry whose mapped email is `email`
    /// (case-insensitive), and explains it. Writes nothing.
    public static func explain(_ email: String, mapping: Mapping, storePath: String?, logger: Logger) throws -> Explanation {
        let connection = try DirectoryConnection.open(mapping.directory, logger: logger)
        var (index, _) = try GroupIndex.read(mapping, connection: connection)
        var found: (EntryAttributes, MappedFields)?
        try connection.search(mapping.usersSearch()) { page in
            for entry in page where found == nil {
                if case .success(let mapped) = mapping.mapUser(entry), mapped.email.lowercased() == email.lowercased() { found = (entry, mapped) }
            }
        }
        guard let (entry, mapped) = found else {
            throw ExplainError(message: "no entry under \(mapping.users.base) matching \(mapping.users.filter) maps to the email \(email); check the spelling, or run `dirbridge check` to see how entries map")
        }
        let memberships = index.memberships(of: entry)
        let outcome = RuleEvaluator(rules: mapping.rules).evaluate(user: entry, memberships: memberships)
        var stored: [String: String]?
        if let path = storePath ?? mapping.storePath, let store = try? openPortalStorage(path, createIfMissing: false, readOnly: true, password: mapping.storePassword),
           let client = try store.client(named: mapping.client.name) {
            let state = try store.loadState(clientID: client.id)
            if let user = state.users.first(where: { $0.externalID == mapped.externalID || $0.email.lowercased() == email.lowercased() }) {
                let group = state.userGroups.first { $0.id == user.userGroupID }?.name ?? "?"
                stored = ["email": user.email, "user_group": group, "role": user.role, "global_admin": user.globalAdmin ? "yes" : "no",
                          "group_manager": user.groupManager ? "yes" : "no", "enabled": user.enabled ? "yes" : "no",
                          "source": user.source.rawValue, "external_dn": user.externalDN ?? ""]
            }
        }
        var attributes: [String: [String]] = [:]
        for name in mapping.attributesToRead { attributes[name] = entry.bytes(name).map(DirectoryCheck.displayValue) }
        return Explanation(
            email: mapped.email, dn: entry.dn, attributes: attributes,
            groups: memberships.map { $0.path.count > 1 ? "\($0.groupDN) (via \($0.path.dropLast().joined(separator: " → ")))" : $0.groupDN },
            decisions: outcome.decisions.map(\.description), userGroup: outcome.userGroup, role: outcome.role,
            globalAdmin: outcome.globalAdmin, groupManager: outcome.groupManager, disabledInDirectory: mapped.disabled, store: stored)
    }
}
