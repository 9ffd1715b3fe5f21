import Foundation
import Logging

/// A sync an admin asked for: dry run or apply, with explicit guard overrides.
public struct SyncRequest: Sendable {
    public var mapping: Mapping
    /// `--store`; overrides the mapping's `store.sqlite`.
    public var storePath: String?
    public var apply: Bool
    public var overrides: GuardOverrides
    /// A dry run computes the ``SyncOutcome/stateFingerprint`` a saved plan needs.
    public var fingerprintsState = false

    public init(mapping: Mapping, storePath: String? = nil, apply: Bool = false, overrides: GuardOverrides = GuardOverrides()) {
        self.mapping = mapping
        self.storePath = storePath
        self.apply = apply
        self.overrides = overrides
    }

    /// The store file to use, or a usage error when neither `--store` nor `store.sqlite` names one.
    public func resolvedStorePath() throws(SyncError) -> String {
        guard let path = storePath ?? mapping.storePath else {
            throw SyncError(kind: .usage, message: "no portal store: pass --store PATH or set store: { sqlite: PATH } in \(mapping.file)")
        }
        return path
    }
}

/// What a sync did: its plan, and the `sync_runs` row that records it.
public struct SyncOutcome: Sendable {
    public var plan: Plan
    public var runID: Int64
    public var applied: Bool
    /// With ``SyncRequest/fingerprintsState``, a dry run's fingerprint of the store state its
    /// plan was computed against (see ``PlanDocument``).
    public var stateFingerprint: StoreFingerprint? = nil
}

/// A sync that stopped: refused by a guard (exit 5), or a usage problem (exit 1).
public struct SyncError: DirBridgeFailure {
    public var kind: FailureKind
    public var message: String
    /// The plan that was refused, when there is one.
    public var plan: Plan?

    public init(kind: FailureKind, message: String, plan: Plan? = nil) {
        self.kind = kind
        self.message = message
        self.plan = plan
    }

    public var description: String { message }
}

/// Runs the main job: read the directory, map, plan, guard, and (with `apply`) write.
///
/// Nothing but a `sync_runs` row is written until the whole directory read succeeded and
/// the guards passed; the apply itself is one SQLite transaction.
public enum SyncEngine {
    public static func run(_ request: SyncRequest, logger: Logger, progress: ((Int) -> Void)? = nil) throws -> SyncOutcome {
        let mapping = request.mapping
        let store = try PortalStore(path: try request.resolvedStorePath())
        let started = Date()
        var client = try store.client(named: mapping.client.name)
        func record(_ status: RunStatus, mode: RunMode, summary: [String: Int] = [:], error: String? = nil, entriesRead: Int? = nil) throws -> Int64 {
            try store.recordRun(SyncRunRecord(
                clientID: client?.id, mapping: mapping.file, directory: mapping.directory.displayURL, mode: mode, status: status,
                startedAt: started, summary: summary, error: error, entriesRead: entriesRead))
        }
        let mode: RunMode = request.apply ? .apply : .dryRun
        let snapshot: DirectorySnapshot
        do {
            let connection = try DirectoryConnection.open(mapping.directory, logger: logger)
            snapshot = try DirectorySnapshotReader.read(mapping, connection: connection, logger: logger, progress: progress)
        } catch let failure as DirectoryError {
            _ = try record(.failed, mode: mode, error: failure.description)
            throw failure
        }
        let planner = Planner(mapping: mapping, overrides: request.overrides)
        let state = try client.map { try store.loadState(clientID: $0.id) }
        var plan = planner.plan(snapshot: snapshot, state: state)
        guard request.apply else {
            let runID = try record(.succeeded, mode: .dryRun, summary: plan.summary.counts, entriesRead: snapshot.entriesRead)
            return SyncOutcome(plan: plan, runID: runID, applied: false,
                               stateFingerprint: request.fingerprintsState ? StoreFingerprint(plan: plan, state: state) : nil)
        }
        if !plan.guardViolations.isEmpty {
            if request.overrides.force {
                for violation in plan.guardViolations { logger.warning("guard overridden by --force", metadata: ["guard": "\(violation.guardName)", "detail": "\(violation.message)"]) }
            } else {
                let text = plan.guardViolations.map(\.description).joined(separator: "\n")
                _ = try record(.refused, mode: .apply, summary: plan.summary.counts, error: text, entriesRead: snapshot.entriesRead)
                throw SyncError(kind: .refused, message: "apply refused by a safety guard; nothing was changed:\n" + text, plan: plan)
            }
        }
        if client == nil {
            let spec = ClientSpec(name: mapping.client.name, parentName: mapping.client.parent, membershipEndDate: mapping.client.membershipEndDate)
            client = try store.ensureClient(spec, editor: mapping.editor)
            plan = planner.plan(snapshot: snapshot, state: try store.loadState(clientID: client!.id))
        }
        let clientID = client!.id
        let run = SyncRunRecord(clientID: clientID, mapping: mapping.file, directory: mapping.directory.displayURL, mode: .apply,
                                status: .succeeded, startedAt: started, summary: plan.summary.counts, entriesRead: snapshot.entriesRead)
        let runID = try store.apply(plan.changeSet(clientID: clientID, editor: mapping.editor), run: run)
        return SyncOutcome(plan: plan, runID: runID, applied: true)
    }
}

extension Plan {
    /// The store's change set for this plan: what `apply` writes, in one transaction.
    public func changeSet(clientID: Int64, editor: String) -> ChangeSet {
        let creations = userChanges.filter { $0.action == .create }.map { change -> NewClientUser in
            func value(_ field: String) -> String? { change.fields[field]?.new }
            return NewClientUser(
                email: change.email, firstName: value("first_name"), lastName: value("last_name"), title: value("title"),
                cellPhone: value("cell_phone"), officePhone: value("office_phone"), extension: value("extension"), location: value("location"),
                role: value("role") ?? RuleEvaluator.defaultRole, userGroupName: value("user_group"),
                globalAdmin: value("global_admin") == "1", groupManager: value("group_manager") == "1",
                hasLogin: value("has_login") == "1", enabled: true, source: .directory,
                externalID: change.externalID, externalDN: change.dn, invite: change.invite,
                reason: change.reasons.joined(separator: "\n"))
        }
        let updates = userChanges.filter { $0.action != .create }.compactMap { change -> ClientUserUpdate? in
            guard let id = change.userID else { return nil }
            return ClientUserUpdate(userID: id, action: change.historyAction, fields: change.fields, reason: change.reasons.joined(separator: "\n"))
        }
        return ChangeSet(
            clientID: clientID, editor: editor,
            groupCreations: groupCreations.map { NewUserGroup(name: $0.name, source: .directory, reason: $0.reason) },
            groupRenames: [], userCreations: creations, userUpdates: updates, invitations: [])
    }
}
