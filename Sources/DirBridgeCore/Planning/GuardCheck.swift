/// The safety guards that a plan's changes and the store's users are enough to judge: the
/// empty read, `max_disable`, `max_demote`, `max_promote`, the last enabled Global Admin,
/// and `protected` users.
///
/// The planner runs it on the state it planned against; `dirbridge apply` runs it again on
/// the store as it is when a saved plan is applied, with the limits recorded in the plan, so
/// a plan that was fine yesterday but would now remove the last Global Admin is refused.
/// Pure: no I/O.
public struct GuardCheck: Sendable, Equatable, Codable {
    /// The disable limit in force: `--max-disable` when given, otherwise `deprovision.max_disable`.
    public var maxDisable: Threshold
    public var maxDemote: Int
    /// Lowercased emails never disabled or demoted.
    public var protected: [String]
    /// Where the users were read (`users.base`, `users.filter`), for the empty-read message.
    public var usersBase: String
    public var usersFilter: String
    /// The grant limit in force: `--max-promote` when given, otherwise `guards.max_promote`.
    public var maxPromote: Int
    /// Roles whose grant counts as a privilege (`guards.privileged_roles`).
    public var privilegedRoles: [String]

    enum CodingKeys: String, CodingKey {
        case maxDisable = "max_disable", maxDemote = "max_demote", protected
        case usersBase = "users_base", usersFilter = "users_filter"
        case maxPromote = "max_promote", privilegedRoles = "privileged_roles"
    }

    public init(maxDisable: Threshold, maxDemote: Int, protected: [String], usersBase: String, usersFilter: String,
                maxPromote: Int = GuardSettings.defaultMaxPromote, privilegedRoles: [String] = GuardSettings.defaultPrivilegedRoles) {
        self.maxDisable = maxDisable
        self.maxDemote = maxDemote
        self.protected = protected.map { $0.lowercased() }
        self.usersBase = usersBase
        self.usersFilter = usersFilter
        self.maxPromote = maxPromote
        self.privilegedRoles = privilegedRoles
    }

    /// The guards a mapping sets, with this run's overrides.
    public init(mapping: Mapping, overrides: GuardOverrides) {
        self.init(maxDisable: overrides.maxDisable ?? mapping.deprovision.maxDisable, maxDemote: mapping.deprovision.maxDemote,
                  protected: mapping.deprovision.protected, usersBase: mapping.users.base, usersFilter: mapping.users.filter,
                  maxPromote: overrides.maxPromote ?? mapping.guards.maxPromote, privilegedRoles: mapping.guards.privilegedRoles)
    }

    /// Plans saved before `max_promote` existed carry no grant limit: they get the defaults.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        maxDisable = try container.decode(Threshold.self, forKey: .maxDisable)
        maxDemote = try container.decode(Int.self, forKey: .maxDemote)
        protected = try container.decode([String].self, forKey: .protected)
        usersBase = try container.decode(String.self, forKey: .usersBase)
        usersFilter = try container.decode(String.self, forKey: .usersFilter)
        maxPromote = try container.decodeIfPresent(Int.self, forKey: .maxPromote) ?? GuardSettings.defaultMaxPromote
        privilegedRoles = try container.decodeIfPresent([String].self, forKey: .privilegedRoles) ?? GuardSettings.defaultPrivilegedRoles
    }

    /// The grant limit and roles only when they differ from the defaults: a plan saved by an
    /// earlier dirbridge encodes (and hashes) as it did.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(maxDisable, forKey: .maxDisable)
        try container.encode(maxDemote, forKey: .maxDemote)
        try container.encode(protected, forKey: .protected)
        try container.encode(usersBase, forKey: .usersBase)
        try container.encode(usersFilter, forKey: .usersFilter)
        if maxPromote != GuardSettings.defaultMaxPromote { try container.encode(maxPromote, forKey: .maxPromote) }
        if privilegedRoles != GuardSettings.defaultPrivilegedRoles { try container.encode(privilegedRoles, forKey: .privilegedRoles) }
    }

    /// The guards that `changes` break against the client's current `users`; `userEntries`
    /// is the number of user entries in the directory view (all of them, also for an incremental read).
    ///
    /// `--force` overrides these; the `protected` guard is separate (``protectedViolations(_:)``).
    /// `grants`, when the caller has them already (``grants(users:changes:)``), are not computed again.
    public func violations(userEntries: Int, users: [StoredUser], changes: [PlannedUserChange], grants known: [PrivilegeGrant]? = nil) -> [GuardViolation] {
        violations(userEntries: userEntries, population: ClientPopulation(users: users), stored: users, changes: changes, grants: known)
    }

    /// The same verdicts from the whole client's figures (`population`) and the stored users the
    /// changes touch (`stored` may hold more): a plan made for the affected users only is
    /// judged exactly as the plan of the whole directory would be.
    public func violations(userEntries: Int, population: ClientPopulation, stored users: [StoredUser], changes: [PlannedUserChange],
                           grants known: [PrivilegeGrant]? = nil) -> [GuardViolation] {
        var violations: [GuardViolation] = []
        let enabledDirectoryUsers = population.enabledDirectoryUsers
        if userEntries == 0 && enabledDirectoryUsers > 0 {
            violations.append(GuardViolation(guardName: "empty_read", message:
                "the directory returned no users under \(usersBase) matching \(usersFilter), but the store holds \(enabledDirectoryUsers) enabled directory users; "
                + "a broken filter, a bind account that cannot see the entries, or an outage must not disable a company (--force overrides)"))
        }
        // The changes are read in place (an index, not a copy, per change: a copy retains each
        // of a change's fields, and a first sync's plan holds one creation per user).
        var disables = 0
        var demotions = 0
        changes.withUnsafeBufferPointer { changes in
            for index in changes.indices {
                switch changes[index].action {
                case .disable: disables += 1
                // A created user loses nothing; passing a change on copies it, which a plan of
                // 1M creations paid a million times.
                case .create: continue
                default: break
                }
                demotions += Self.demotions(in: changes[index])
            }
        }
        let limit = maxDisable.limit(of: enabledDirectoryUsers)
        if disables > limit {
            violations.append(GuardViolation(guardName: "max_disable", message:
                "\(disables) users would be disabled, above max_disable \(maxDisable) (\(limit) of \(enabledDirectoryUsers) enabled directory users); review the plan, then --max-disable or --force"))
        }
        if demotions > maxDemote {
            violations.append(GuardViolation(guardName: "max_demote", message:
                "\(demotions) Global Admin / Group Manager / role removals, above max_demote \(maxDemote); review the plan, then --force"))
        }
        if let lastAdmin = Self.lastGlobalAdminViolation(adminsBefore: population.enabledGlobalAdmins, users: users, changes: changes) {
            violations.append(lastAdmin)
        }
        // Onboarding brings its admins: a client's first sync (no directory users yet) is exempt.
        let grants = known ?? grants(users: users, changes: changes)
        if grants.count > maxPromote && population.directoryUsers > 0 {
            let shown = grants.prefix(5).map { "\($0.email) \($0.privilegeText)" }.joined(separator: ", ")
            violations.append(GuardViolation(guardName: "max_promote", message:
                "\(grants.count) Global Admin / Group Manager / privileged-role grants (\(shown)\(grants.count > 5 ? ", …" : "")), above max_promote \(maxPromote); "
                + "check who changed the admin groups and review the plan; then `sync --max-promote \(grants.count)`, or --force (sync or apply)"))
        }
        return violations
    }

    /// Every privilege the changes grant: Global Admin, Group Manager, or a role in
    /// `privilegedRoles`, held after the change (enabled) and not before. A creation with one
    /// grants it; so does re-enabling a user who holds one.
    public func grants(users: [StoredUser], changes: [PlannedUserChange]) -> [PrivilegeGrant] {
        // Only the users the changes touch: a whole-client dictionary per plan is not needed.
        let storedByID = Self.storedUsers(touchedBy: changes, in: users)
        let privileged = Set(privilegedRoles.map { $0.lowercased() })
        func held(globalAdmin: Bool, groupManager: Bool, role: String, enabled: Bool) -> [PrivilegeGrant.Privilege] {
            guard enabled else { return [] }
            var result: [PrivilegeGrant.Privilege] = []
            if globalAdmin { result.append(.globalAdmin) }
            if groupManager { result.append(.groupManager) }
            if privileged.contains(role.lowercased()) { result.append(.role(role)) }
            return result
        }
        var grants: [PrivilegeGrant] = []
        changes.withUnsafeBufferPointer { changes in
            for index in changes.indices where changes[index].action != .disable {
                let stored = changes[index].userID.flatMap { storedByID[$0] }
                let creating = changes[index].action == .create
                func old(_ attribute: UserAttribute) -> FieldValue? { creating ? nil : changes[index].fields[attribute]?.old }
                func new(_ attribute: UserAttribute) -> FieldValue? { changes[index].fields[attribute]?.new }
                let before = creating ? [] : held(
                    globalAdmin: old(.globalAdmin)?.flag ?? stored?.globalAdmin ?? false,
                    groupManager: old(.groupManager)?.flag ?? stored?.groupManager ?? false,
                    role: old(.role)?.text ?? stored?.role ?? defaultRoleName,
                    enabled: old(.enabled)?.flag ?? stored?.enabled ?? false)
                let after = held(
                    globalAdmin: new(.globalAdmin)?.flag ?? (creating ? false : stored?.globalAdmin ?? false),
                    groupManager: new(.groupManager)?.flag ?? (creating ? false : stored?.groupManager ?? false),
                    role: new(.role)?.text ?? (creating ? defaultRoleName : stored?.role ?? defaultRoleName),
                    enabled: new(.enabled)?.flag ?? (creating ? true : stored?.enabled ?? true))
                // A role written `admin` before and `Admin` now is no grant.
                for privilege in after where !before.contains(where: { $0.sameAs(privilege) }) {
                    let change = changes[index]
                    let reason = change.reasons.first { $0.contains(privilege.ruleKey) }
                        ?? (change.action == .enable ? change.reasons.first : nil)
                    grants.append(PrivilegeGrant(email: change.email, privilege: privilege, action: change.action, reason: reason))
                }
            }
        }
        return grants
    }

    /// A violation for every change that would disable or demote a `protected` user. The
    /// planner withholds such changes, so only a plan applied after the fact can hold one.
    public func protectedViolations(_ changes: [PlannedUserChange]) -> [GuardViolation] {
        let protected = Set(protected)
        return changes.filter { protected.contains($0.email.lowercased()) && Self.losesAccess($0) }.map { change in
            GuardViolation(guardName: "protected", message: "\(change.email) is protected (deprovision.protected) and would be disabled or demoted")
        }
    }

    /// Whether a change disables the user or takes away Global Admin, Group Manager or a role
    /// other than the default one (a created user loses nothing).
    static func losesAccess(_ change: PlannedUserChange) -> Bool {
        removes(.enabled, change) || demotions(in: change) > 0
    }

    /// Global Admin, Group Manager and role removals in one change.
    static func demotions(in change: PlannedUserChange) -> Int {
        var count = 0
        if removes(.globalAdmin, change) { count += 1 }
        if removes(.groupManager, change) { count += 1 }
        if let role = change.fields[.role]?.old?.text, role != defaultRoleName { count += 1 }
        return count
    }

    /// Whether the change turns `flag` from set to cleared.
    private static func removes(_ flag: UserAttribute, _ change: PlannedUserChange) -> Bool {
        change.fields[flag].map { $0.old?.flag == true && $0.new?.flag == false } ?? false
    }

    /// The stored users the changes name by id: only those, not a whole-client dictionary per plan.
    private static func storedUsers(touchedBy changes: [PlannedUserChange], in users: [StoredUser]) -> [Int64: StoredUser] {
        var touched = Set<Int64>()
        changes.withUnsafeBufferPointer { changes in
            for index in changes.indices { if let id = changes[index].userID { touched.insert(id) } }
        }
        guard !touched.isEmpty else { return [:] }
        return Dictionary(users.lazy.filter { touched.contains($0.id) }.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// `adminsBefore` counts the whole client; `users` holds at least the users the changes touch.
    private static func lastGlobalAdminViolation(adminsBefore: Int, users: [StoredUser], changes: [PlannedUserChange]) -> GuardViolation? {
        guard adminsBefore > 0 else { return nil }
        let storedByID = storedUsers(touchedBy: changes, in: users)
        var adminsAfter = adminsBefore
        changes.withUnsafeBufferPointer { changes in
            for index in changes.indices {
                let gaNew = changes[index].fields[.globalAdmin]?.new?.flag
                let enabledNew = changes[index].fields[.enabled]?.new?.flag
                if let id = changes[index].userID, let stored = storedByID[id] {
                    let before = stored.globalAdmin && stored.enabled
                    let after = (gaNew ?? stored.globalAdmin) && (enabledNew ?? stored.enabled)
                    adminsAfter += (after ? 1 : 0) - (before ? 1 : 0)
                } else if gaNew == true {
                    adminsAfter += 1
                }
            }
        }
        guard adminsAfter == 0 else { return nil }
        return GuardViolation(guardName: "last_global_admin", message:
            "the client has \(adminsBefore) enabled Global Admin\(adminsBefore == 1 ? "" : "s") and would have none after this sync; check the admin rule and group (--force overrides)")
    }
}
