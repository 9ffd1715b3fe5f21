/// The safety guards (max_disable, max_demote, protected users, the last Global Admin, the empty read) that a plan's changes and the store's users are enough to
/// judge: the empty read, `max_disable`, `max_demote`, the last enabled Global Admin, and
/// `protected` users.
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

    enum CodingKeys: String, CodingKey {
        case maxDisable = "max_disable", maxDemote = "max_demote", protected
        case usersBase = "users_base", usersFilter = "users_filter"
    }

    public init(maxDisable: Threshold, maxDemote: Int, protected: [String], usersBase: String, usersFilter: String) {
        self.maxDisable = maxDisable
        self.maxDemote = maxDemote
        self.protected = protected.map { $0.lowercased() }
        self.usersBase = usersBase
        self.usersFilter = usersFilter
    }

    /// The guards a mapping sets, with this run's overrides.
    public init(mapping: Mapping, overrides: GuardOverrides) {
        self.init(maxDisable: overrides.maxDisable ?? mapping.deprovision.maxDisable, maxDemote: mapping.deprovision.maxDemote,
                  protected: mapping.deprovision.protected, usersBase: mapping.users.base, usersFilter: mapping.users.filter)
    }

    /// The guards that `changes` break against the client's current `users`; `userEntries`
    /// is the number of user entries in the directory view (all of them, also for an incremental read).
    ///
    /// `--force` overrides these; the `protected` guard is separate (``protectedViolations(_:)``).
    public func violations(userEntries: Int, users: [StoredUser], changes: [PlannedUserChange]) -> [GuardViolation] {
        var violations: [GuardViolation] = []
        let directoryUsers = users.filter { $0.source == .directory && $0.enabled }
        if userEntries == 0 && !directoryUsers.isEmpty {
            violations.append(GuardViolation(guardName: "empty_read", message:
                "the directory returned no users under \(usersBase) matching \(usersFilter), but the store holds \(directoryUsers.count) enabled directory users; "
                + "a broken filter, a bind account that cannot see the entries, or an outage must not disable a company (--force overrides)"))
        }
        let disables = changes.filter { $0.action == .disable }.count
        let limit = maxDisable.limit(of: directoryUsers.count)
        if disables > limit {
            violations.append(GuardViolation(guardName: "max_disable", message:
                "\(disables) users would be disabled, above max_disable \(maxDisable) (\(limit) of \(directoryUsers.count) enabled directory users); review the plan, then --max-disable or --force"))
        }
        let demotions = changes.reduce(0) { $0 + Self.demotions(in: $1) }
        if demotions > maxDemote {
            violations.append(GuardViolation(guardName: "max_demote", message:
                "\(demotions) Global Admin / Group Manager / role removals, above max_demote \(maxDemote); review the plan, then --force"))
        }
        if let lastAdmin = Self.lastGlobalAdminViolation(users: users, changes: changes) {
            violations.append(lastAdmin)
        }
        return violations
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

    private static func lastGlobalAdminViolation(users: [StoredUser], changes: [PlannedUserChange]) -> GuardViolation? {
        let adminsBefore = users.filter { $0.globalAdmin && $0.enabled }.count
        guard adminsBefore > 0 else { return nil }
        let storedByID = Dictionary(uniqueKeysWithValues: users.map { ($0.id, $0) })
        var admins = storedByID.mapValues { $0.globalAdmin && $0.enabled }
        var created = 0
        for change in changes {
            let gaNew = change.fields[.globalAdmin]?.new?.flag
            let enabledNew = change.fields[.enabled]?.new?.flag
            if let id = change.userID, let stored = storedByID[id] {
                admins[id] = (gaNew ?? stored.globalAdmin) && (enabledNew ?? stored.enabled)
            } else if gaNew == true {
                created += 1
            }
        }
        guard admins.values.filter({ $0 }).count + created == 0 else { return nil }
        return GuardViolation(guardName: "last_global_admin", message:
            "the client has \(adminsBefore) enabled Global Admin\(adminsBefore == 1 ? "" : "s") and would have none after this sync; check the admin rule and group (--force overrides)")
    }
}
