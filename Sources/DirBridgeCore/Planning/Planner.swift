/// The whole directory view's figures for a plan made from the affected users only.
public struct AffectedScope: Sendable, Equatable {
    /// Directory users in the whole view, skipped entries excluded: the plan's total.
    public var total: Int
    /// User entries in the whole view: what the empty-read guard checks.
    public var userEntries: Int
    /// The whole client's figures in the store.
    public var population: ClientPopulation

    public init(total: Int, userEntries: Int, population: ClientPopulation) {
        self.total = total
        self.userEntries = userEntries
        self.population = population
    }
}

/// Explicit overrides of the guards, from the command line.
public struct GuardOverrides: Sendable, Equatable {
    /// `--force`: apply even when guards object.
    public var force: Bool
    /// `--max-disable`: replaces `deprovision.max_disable` for this run.
    public var maxDisable: Threshold?
    /// `--max-promote`: replaces `guards.max_promote` for this run.
    public var maxPromote: Int?

    public init(force: Bool = false, maxDisable: Threshold? = nil, maxPromote: Int? = nil) {
        self.force = force
        self.maxDisable = maxDisable
        self.maxPromote = maxPromote
    }
}

/// Computes the plan: the directory's desired state against the store's current state.
///
/// Pure: no I/O. Users are matched by external id, then (with `adopt_existing: email`) a
/// portal user by email; mapped fields, user group, role and flags follow the directory;
/// users gone from the directory or disabled there are disabled, never deleted. Fields the
/// mapping does not map, and portal-created users it does not adopt, are never touched.
public struct Planner: Sendable {
    public let mapping: Mapping
    public let overrides: GuardOverrides

    public init(mapping: Mapping, overrides: GuardOverrides = GuardOverrides()) {
        self.mapping = mapping
        self.overrides = overrides
    }

    /// The plan of `snapshot` against `state`. With `affected`, the snapshot holds only the
    /// users a change can affect and the state only the stored users they can match; every
    /// other directory user is known to be in step with the store, so it counts as unchanged,
    /// and the guards count against the whole client's figures in `affected`.
    public func plan(snapshot: DirectorySnapshot, state: ClientState?, affected: AffectedScope? = nil) -> Plan {
        let users = state?.users ?? []
        let groupsByID = Dictionary(uniqueKeysWithValues: (state?.userGroups ?? []).map { ($0.id, $0) })
        var groupNames: [String: String] = [:]  // lowercased → stored spelling
        for group in state?.userGroups ?? [] { groupNames[group.name.lowercased()] = group.name }
        if groupNames[defaultUserGroupName.lowercased()] == nil { groupNames[defaultUserGroupName.lowercased()] = defaultUserGroupName }

        var byExternalID: [String: Int] = [:]
        byExternalID.reserveCapacity(users.count)
        // The stored users are read in place here and below: a copy of each would retain its every field.
        for position in users.indices {
            if let id = users[position].externalID, users[position].source == .directory { byExternalID[id] = position }
        }
        // By lowercased email, built on first need: a resync that finds every user by external
        // id never asks (folding and indexing every stored email was a quarter of its plan).
        var emailIndex: [String: Int]?
        func byEmail(_ email: String) -> Int? {
            if emailIndex == nil {
                var index: [String: Int] = [:]
                index.reserveCapacity(users.count)
                for position in users.indices { index[users[position].email.lowercased()] = position }
                emailIndex = index
            }
            return emailIndex?[email.lowercased()]
        }
        // Whether an id is in the directory's answer: a skipped entry's, or a user's (their
        // set built on first need: a run whose stored users all match never asks).
        var directoryIDs: Set<String>?
        func isPresent(_ id: String) -> Bool {
            if snapshot.presentIDs.contains(id) { return true }
            if directoryIDs == nil { directoryIDs = Set(snapshot.users.map(\.mapped.externalID)) }
            return directoryIDs?.contains(id) ?? false
        }
        let protected = Set(mapping.deprovision.protected.map { $0.lowercased() })
        let mappedFields = mapping.users.fields.keys.sorted { $0.rawValue < $1.rawValue }

        var changes: [PlannedUserChange] = []
        var skipped = snapshot.skipped
        var protectedKept: [ProtectedNote] = []
        var groupsToCreate: [String: PlannedGroup] = [:]
        var matched = [Bool](repeating: false, count: users.count)
        var summary = PlanSummary()
        var onboarding: [String: GroupOnboarding] = [:]

        /// Plans the update of a matched store user; `adjust` marks a link or a comeback.
        func planUpdate(_ position: Int, _ user: DirectoryUser, group: String, adjust: (inout PlannedUserChange) -> Void = { _ in }) {
            matched[position] = true
            let stored = users[position]
            var change = update(stored, to: user, group: group, currentGroup: groupsByID[stored.userGroupID]?.name ?? defaultUserGroupName, fields: mappedFields)
            adjust(&change)
            applyProtection(&change, stored: stored, protected: protected, notes: &protectedKept)
            if change.fields.isEmpty {
                summary.unchanged += 1
                return
            }
            // Named only when kept: a resync finds most users unchanged.
            change.name = Self.name(user.mapped.fields[.firstName] ?? stored[.firstName], user.mapped.fields[.lastName] ?? stored[.lastName])
            changes.append(change)
        }

        let unchanged = unchangedMatches(snapshot: snapshot, users: users, byExternalID: byExternalID, groupNames: groupNames,
                                         groupsByID: groupsByID, fields: mappedFields)
        var storedGroupNames: [String: String?] = [:]  // a rule's spelling → the stored group's, if any
        // New users are built after the loop, on every core: each is a pure function of its entry.
        var creations: [(position: Int, group: String)] = []
        // By position, the users read in place: a copy of each would retain its every field,
        // and most are only looked at (unchanged in a resync, a creation's position in a first sync).
        for position in snapshot.users.indices {
            if let stored = unchanged?[position], stored >= 0 {
                matched[Int(stored)] = true
                summary.unchanged += 1
                continue
            }
            let outcome = snapshot.users[position].outcome
            let groupName = Self.storedGroup(outcome.userGroup, in: groupNames, memo: &storedGroupNames)
                ?? groupsToCreate[outcome.userGroup.lowercased()]?.name
            if groupName == nil {
                let reason = outcome.decisions.first { $0.attribute == .userGroup }?.description ?? "named by the rules"
                groupsToCreate[outcome.userGroup.lowercased()] = PlannedGroup(name: outcome.userGroup, reason: reason)
            }
            let targetGroup = groupName ?? outcome.userGroup

            if let stored = byExternalID[snapshot.users[position].mapped.externalID] {
                planUpdate(stored, snapshot.users[position], group: targetGroup)
                continue
            }
            let email = snapshot.users[position].mapped.email
            if let holder = byEmail(email), !matched[holder] {
                let user = snapshot.users[position]
                let stored = users[holder]
                if stored.source == .portal && mapping.users.adoptExisting == .email {
                    planUpdate(holder, user, group: targetGroup) { change in
                        change.fields[.source] = .text(stored.source.rawValue, RecordSource.directory.rawValue)
                        change.action = .link
                        change.historyAction = .linked
                        change.reasons.insert("adopted: portal user with the same email (adopt_existing: email)", at: 0)
                    }
                } else if stored.source == .directory, let oldID = stored.externalID, !isPresent(oldID) {
                    // The entry was deleted and created again (a new immutable id, the same
                    // email): the person comes back to their portal user, re-enabled.
                    planUpdate(holder, user, group: targetGroup) { change in
                        change.reasons.insert("back in the directory with a new \(mapping.users.id) (was \(oldID)): same email, same portal user", at: 0)
                    }
                } else {
                    let why = stored.source == .portal
                        ? "email \(email) belongs to a portal-created user; set users.adopt_existing: email to link it"
                        : "email \(email) belongs to another directory user (external id \(stored.externalID ?? "none")); fix the duplicate in the directory"
                    skipped.append(SkippedEntry(dn: user.mapped.dn, reason: why, externalID: user.mapped.externalID))
                }
                continue
            }
            if snapshot.users[position].mapped.disabled {
                // Not onboarded while disabled in the directory; it is created when enabled there.
                summary.unchanged += 1
                continue
            }
            creations.append((position, targetGroup))
            var entry = onboarding[targetGroup] ?? GroupOnboarding(userGroup: targetGroup, new: 0, managers: 0)
            entry.new += 1
            if outcome.groupManager { entry.managers += 1 }
            onboarding[targetGroup] = entry
        }

        // Directory users no longer in the directory's answer.
        if mapping.deprovision.missing == .disable {
            for position in users.indices where users[position].source == .directory && users[position].enabled && !matched[position] {
                guard let id = users[position].externalID, !isPresent(id) else { continue }
                let stored = users[position]
                if protected.contains(stored.email.lowercased()) {
                    protectedKept.append(ProtectedNote(email: stored.email, withheld: ["disable (not in the directory any more)"]))
                    continue
                }
                summary.gone += 1
                changes.append(PlannedUserChange(
                    action: .disable, historyAction: .disabled, email: stored.email, userID: stored.id, externalID: id, dn: stored.externalDN,
                    fields: [.enabled: .flag(true, false)],
                    reasons: ["not in the directory any more: no entry with \(mapping.users.id)=\(id) under \(mapping.users.base) matching \(mapping.users.filter)"],
                    invite: false, name: Self.name(stored[.firstName], stored[.lastName])))
            }
        }

        // Sorted by action, then email: creations come first (their rank is the lowest), so they
        // are sorted before they are built, straight into the one array of every change, and the
        // other changes (few) are sorted apart. The keys are computed once, not per comparison.
        let keys = changes.map { ($0.action.rank, $0.email.lowercased()) }
        let others = keys.indices.sorted { keys[$0] < keys[$1] }.map { changes[$0] }
        changes = []  // Freed before the creations are built: at 100k, each array of changes is 20 MB.
        let emails = creations.map { snapshot.users[$0.position].mapped.email.lowercasedSharingStorage }
        let creationOrder = String.orderedPositions(emails).map { creations[$0] }
        changes = creationOrder.concurrentMap(extraCapacity: others.count, context: { [Decision: String]() }) { texts, creation in
            create(snapshot.users[creation.position], group: creation.group, decisionTexts: &texts)
        }
        changes += others
        for change in changes {
            switch change.action {
            case .create: summary.create += 1; if change.invite { summary.invitations += 1 }
            case .link: summary.link += 1
            case .update: summary.update += 1
            case .enable: summary.enable += 1
            case .disable: summary.disable += 1
            }
        }
        summary.groupsCreated = groupsToCreate.count
        summary.skipped = skipped.count
        summary.entriesRead = snapshot.entriesRead
        summary.referencesSkipped = snapshot.references
        summary.total = snapshot.users.count
        if let affected {
            summary.unchanged += affected.total - snapshot.users.count
            summary.total = affected.total
        }

        let check = GuardCheck(mapping: mapping, overrides: overrides)
        let grants = check.grants(users: users, changes: changes)
        let violations = check.violations(userEntries: affected?.userEntries ?? snapshot.userEntries,
                                          population: affected?.population ?? ClientPopulation(users: users), stored: users,
                                          changes: changes, grants: grants)
        return Plan(
            client: mapping.client.name, mapping: mapping.file, directory: mapping.directory.displayURL,
            groupCreations: groupsToCreate.values.sorted { $0.name.lowercased() < $1.name.lowercased() },
            userChanges: changes, skipped: skipped.sorted { $0.dn < $1.dn }, protectedKept: protectedKept.sorted { $0.email < $1.email },
            guardViolations: violations, summary: summary,
            onboarding: onboarding.values.sorted { $0.userGroup.lowercased() < $1.userGroup.lowercased() },
            privilegeGrants: grants.isEmpty ? nil : grants)
    }

    /// For each directory user, the position of the stored user it matches by external id when
    /// that user needs no change, else -1: what the loop in ``plan(snapshot:state:affected:)``
    /// would find for it, found on every core. A resync finds most users so, and the loop then
    /// only marks them (one core diffed 100k users in about a third of a no-op resync's plan).
    ///
    /// Only a user whose rules name a stored user group is diffed here (a group the plan
    /// creates is named by the first user that needs it, in the loop's order). The loop plans
    /// every other user as before, and a changed one again, in order. Nil when the client has
    /// no stored users: nothing can match.
    private func unchangedMatches(
        snapshot: DirectorySnapshot, users: [StoredUser], byExternalID: [String: Int], groupNames: [String: String],
        groupsByID: [Int64: StoredUserGroup], fields: [PortalField]
    ) -> [Int32]? {
        guard !users.isEmpty, !snapshot.users.isEmpty else { return nil }
        // The spellings' stored groups are remembered per core.
        return snapshot.users.concurrentMap(context: { [String: String?]() }) { spellings, user in
            guard let position = byExternalID[user.mapped.externalID],
                  let group = Self.storedGroup(user.outcome.userGroup, in: groupNames, memo: &spellings)
            else { return -1 }
            let currentGroup = groupsByID[users[position].userGroupID]?.name ?? defaultUserGroupName
            return update(users[position], to: user, group: group, currentGroup: currentGroup, fields: fields).fields.isEmpty ? Int32(position) : -1
        }
    }

    /// The stored user group a rule's spelling names (in any case), nil when none is stored;
    /// remembered per spelling in `memo`: users share a few spellings, and lowercasing each
    /// user's took a share of a resync's plan.
    private static func storedGroup(_ spelling: String, in groupNames: [String: String], memo: inout [String: String?]) -> String? {
        if let known = memo[spelling] { return known }
        let name = groupNames[spelling.lowercased()]
        memo[spelling] = .some(name)
        return name
    }

    // MARK: one user

    /// A creation; `decisionTexts` holds each decision's text once made (the users a rule places
    /// in one group share the decision, and its text need not be made, nor kept, once per user).
    private func create(_ user: DirectoryUser, group: String, decisionTexts: inout [Decision: String]) -> PlannedUserChange {
        // The mapped values themselves (shared, not copied) unless one is empty.
        var values = user.mapped.fields
        for field in PortalField.allCases where values[field]?.isEmpty == true { values[field] = nil }
        let invite = mapping.users.login == .invite
        let new = PortalUser(email: user.mapped.email, fields: values, role: user.outcome.role, globalAdmin: user.outcome.globalAdmin,
                             groupManager: user.outcome.groupManager, hasLogin: invite, enabled: true,
                             externalID: user.mapped.externalID, externalDN: user.mapped.dn)
        let fields = AttributeChanges(creating: new, userGroup: group)
        var reasons = ["new in the directory: \(user.mapped.dn)"]
        for decision in user.outcome.decisions {
            if let text = decisionTexts[decision] {
                reasons.append(text)
            } else {
                let text = decision.description
                decisionTexts[decision] = text
                reasons.append(text)
            }
        }
        if invite { reasons.append("login: invite — a login and an invitation") }
        return PlannedUserChange(action: .create, historyAction: .created, email: user.mapped.email, userID: nil,
                                 externalID: user.mapped.externalID, dn: user.mapped.dn, fields: fields, reasons: reasons, invite: invite)
    }

    private func update(_ stored: StoredUser, to user: DirectoryUser, group: String, currentGroup: String, fields mapped: [PortalField]) -> PlannedUserChange {
        var fields = AttributeChanges()
        var reasons: [String] = []
        var attributeChanges = false
        for field in mapped {
            let new = user.mapped.fields[field].flatMap { $0.isEmpty ? nil : $0 }
            let old = stored[field]
            if (old ?? "") != (new ?? "") {
                fields[.field(field)] = .text(old, new)
                attributeChanges = true
            }
        }
        if attributeChanges { reasons.append("directory attributes of \(user.mapped.dn)") }
        if stored.externalDN != user.mapped.dn {
            fields[.externalDN] = .text(stored.externalDN, user.mapped.dn)
            if stored.externalDN != nil { reasons.append("entry renamed or moved: same \(mapping.users.id), new DN") }
        }
        if stored.externalID != user.mapped.externalID {
            fields[.externalID] = .text(stored.externalID, user.mapped.externalID)
        }
        let outcome = user.outcome
        let decisionText = { (attribute: DecidedAttribute, fallback: String) -> String in
            outcome.decisions.last { $0.attribute == attribute && $0.note == nil }?.description
                ?? outcome.decisions.first { $0.attribute == attribute }?.description ?? fallback
        }
        if group != currentGroup && group.lowercased() != currentGroup.lowercased() {
            fields[.userGroup] = .text(currentGroup, group)
            reasons.append(decisionText(.userGroup, "no rule names a user group any more: \(defaultUserGroupName)"))
        }
        if stored.role != outcome.role {
            fields[.role] = .text(stored.role, outcome.role)
            reasons.append(decisionText(.role, "no rule names a role any more: \(defaultRoleName)"))
        }
        if stored.globalAdmin != outcome.globalAdmin {
            fields[.globalAdmin] = .flag(stored.globalAdmin, outcome.globalAdmin)
            reasons.append(outcome.globalAdmin ? decisionText(.globalAdmin, "a rule sets Global Admin") : "no matching rule sets Global Admin any more (or the user left the Default User Group)")
        }
        if stored.groupManager != outcome.groupManager {
            fields[.groupManager] = .flag(stored.groupManager, outcome.groupManager)
            reasons.append(outcome.groupManager ? decisionText(.groupManager, "a rule sets Group Manager") : "no matching rule sets Group Manager for the user's group any more")
        }
        let enabled = !user.mapped.disabled
        if stored.enabled != enabled {
            fields[.enabled] = .flag(stored.enabled, enabled)
            reasons.append(enabled ? "enabled in the directory again" : "disabled in the directory: matches users.disabled \(mapping.users.disabled?.text ?? "")")
        }
        let (action, history) = Self.classify(fields)
        return PlannedUserChange(action: action, historyAction: history, email: stored.email, userID: stored.id,
                                 externalID: user.mapped.externalID, dn: user.mapped.dn, fields: fields, reasons: reasons, invite: false)
    }

    /// "First Last" for reading a plan; nil when the user has neither.
    static func name(_ first: String?, _ last: String?) -> String? {
        let parts = [first, last].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    /// The plan group and history action of an update, by precedence.
    static func classify(_ fields: AttributeChanges) -> (PlannedAction, HistoryAction) {
        if let enabled = fields[.enabled] { return enabled.new?.flag == true ? (.enable, .enabled) : (.disable, .disabled) }
        if fields[.userGroup] != nil { return (.update, .groupChanged) }
        if fields[.globalAdmin] != nil || fields[.groupManager] != nil { return (.update, .flagsChanged) }
        if fields[.role] != nil { return (.update, .roleChanged) }
        return (.update, .updated)
    }

    /// Removes what a protected user must not lose: disable, Global Admin, Group Manager, role, and the group move tied to them.
    private func applyProtection(_ change: inout PlannedUserChange, stored: StoredUser, protected: Set<String>, notes: inout [ProtectedNote]) {
        guard !protected.isEmpty, protected.contains(stored.email.lowercased()) else { return }
        var withheld: [String] = []
        guard GuardCheck.losesAccess(change) else { return }
        for attribute in [UserAttribute.enabled, .globalAdmin, .groupManager, .role, .userGroup] {
            if let value = change.fields.removeValue(forKey: attribute) {
                withheld.append("\(attribute): \(value.old?.description ?? "") → \(value.new?.description ?? "")")
            }
        }
        notes.append(ProtectedNote(email: stored.email, withheld: withheld))
        let kept = change.action == .link
        (change.action, change.historyAction) = Self.classify(change.fields)
        if kept { change.action = .link; change.historyAction = .linked }
    }
}
