import Foundation
import Logging

/// A sync an admin asked for: dry run or apply, with explicit guard overrides.
public struct SyncRequest: Sendable {
    public var mapping: Mapping
    /// `--store`; overrides the mapping's `store.sqlite`.
    public var storePath: String?
    public var apply: Bool
    public var overrides: GuardOverrides
    /// Read only what changed since the last applied incremental run (SPEC section 6).
    public var incremental: Bool
    public var incrementalOptions: IncrementalOptions
    /// What holds the client's lease while an apply runs (`sync --apply`, `run`).
    public var holder: String
    /// Queue behind another run holding the lease instead of exiting 5.
    public var waitForLease: Bool
    /// A scheduler's handle to stop the run: asked between pages and before writing.
    public var control: RunControl?
    /// A dry run computes the ``SyncOutcome/stateFingerprint`` a saved plan needs.
    public var fingerprintsState = false

    public init(
        mapping: Mapping, storePath: String? = nil, apply: Bool = false, overrides: GuardOverrides = GuardOverrides(),
        incremental: Bool = false, incrementalOptions: IncrementalOptions = IncrementalOptions(),
        holder: String = "sync --apply", waitForLease: Bool = false, control: RunControl? = nil
    ) {
        self.mapping = mapping
        self.storePath = storePath
        self.apply = apply
        self.overrides = overrides
        self.incremental = incremental
        self.incrementalOptions = incrementalOptions
        self.holder = holder
        self.waitForLease = waitForLease
        self.control = control
    }

    /// True once the scheduler asked the run to stop.
    var shouldStop: @Sendable () -> Bool {
        let control = control
        return { control?.stopRequested ?? false }
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
    /// How the directory was read: `full`, or incrementally by content sync or timestamps.
    public var method: ReadMethod = .full
    /// Why an incremental-capable run read everything, when it did.
    public var fullReason: String? = nil
    /// Entries read from the directory this run.
    public var entriesRead: Int = 0
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
        // One writer per client: the lease is held from before the read until after the write.
        let lease = request.apply
            ? try store.acquireLease(client: mapping.client.name, holder: request.holder, wait: request.waitForLease,
                                     shouldStop: request.shouldStop) { holder in
                logger.notice("waiting for the lease", metadata: ["holder": "\(holder)"])
            }
            : nil
        defer { lease?.release() }
        // A stop that came while the lease was being taken: give it back before reading.
        if request.shouldStop() { throw SyncStopped() }
        let client = try store.client(named: mapping.client.name)
        let mode: RunMode = request.apply ? .apply : .dryRun
        func record(_ status: RunStatus, summary: [String: Int] = [:], error: String? = nil, entriesRead: Int? = nil, incremental: Bool = false) throws -> Int64 {
            try store.recordRun(SyncRunRecord(
                clientID: client?.id, mapping: mapping.file, directory: mapping.directory.displayURL, mode: mode, status: status,
                startedAt: started, summary: summary, error: error, entriesRead: entriesRead, incremental: incremental))
        }
        // From the first write on, a stop request waits for the run to finish instead.
        func gate() throws {
            if let control = request.control, !control.beginWriting() { throw SyncStopped() }
        }
        var snapshot: DirectorySnapshot?
        let entriesRead: Int
        var incremental: IncrementalReadResult?
        do {
            let connection = try DirectoryConnection.open(mapping.directory, logger: logger)
            if request.incremental {
                let result = try IncrementalReader.read(
                    mapping, store: store, connection: connection, options: request.incrementalOptions, logger: logger,
                    progress: progress, shouldStop: request.shouldStop)
                incremental = result
                snapshot = result.snapshot
                entriesRead = result.entriesRead
            } else {
                let read = try DirectorySnapshotReader.read(
                    mapping, connection: connection, logger: logger, progress: progress, collector: nil, shouldStop: request.shouldStop)
                snapshot = read
                entriesRead = read.entriesRead
            }
        } catch let failure as DirectoryError {
            try gate()
            _ = try record(.failed, error: failure.description)
            throw failure
        }
        if request.shouldStop() { throw SyncStopped() }
        let method = incremental?.method ?? .full
        let isIncremental = method != .full
        let planner = Planner(mapping: mapping, overrides: request.overrides)
        // Nothing changed in the directory or the store since the last applied run: the plan is empty.
        func makePlan(_ state: ClientState?) -> Plan {
            guard let snapshot else { return Plan.unchanged(mapping: mapping, view: incremental?.unchanged, entriesRead: entriesRead) }
            return planner.plan(snapshot: snapshot, state: state)
        }
        // The change counter is read before the state: a portal write in between makes the
        // apply record no counter (see DirectoryCacheUpdate.expectedCounter), never a stale one.
        let counterAtRead = try client.map { try store.changeCounter(clientID: $0.id) }
        let state = snapshot != nil || request.fingerprintsState ? try client.map { try store.loadState(clientID: $0.id) } : nil
        let plan = makePlan(state)
        func outcome(_ runID: Int64, applied: Bool) -> SyncOutcome {
            SyncOutcome(plan: plan, runID: runID, applied: applied, method: method, fullReason: incremental?.fullReason, entriesRead: entriesRead)
        }
        guard request.apply else {
            try gate()
            let runID = try record(.succeeded, summary: plan.summary.counts, entriesRead: entriesRead, incremental: isIncremental)
            var result = outcome(runID, applied: false)
            if request.fingerprintsState { result.stateFingerprint = StoreFingerprint(plan: plan, state: state) }
            return result
        }
        if !plan.guardViolations.isEmpty {
            if request.overrides.force {
                for violation in plan.guardViolations { logger.warning("guard overridden by --force", metadata: ["guard": "\(violation.guardName)", "detail": "\(violation.message)"]) }
            } else {
                let text = plan.guardViolations.map(\.description).joined(separator: "\n")
                try gate()
                _ = try record(.refused, summary: plan.summary.counts, error: text, entriesRead: entriesRead, incremental: isIncremental)
                throw SyncError(kind: .refused, message: "apply refused by a safety guard; nothing was changed:\n" + text, plan: plan)
            }
        }
        try gate()
        // A new client is created inside the apply's transaction (the plan was made against no
        // client: only the Default User Group exists, as it will once created).
        let newClient = client == nil
            ? (spec: ClientSpec(name: mapping.client.name, parentName: mapping.client.parent, membershipEndDate: mapping.client.membershipEndDate),
               editor: mapping.editor)
            : nil
        let clientID = client?.id ?? 0
        let run = SyncRunRecord(clientID: client?.id, mapping: mapping.file, directory: mapping.directory.displayURL, mode: .apply,
                                status: .succeeded, startedAt: started, summary: plan.summary.counts, entriesRead: entriesRead,
                                incremental: isIncremental)
        var extra = incremental?.cacheUpdate
        if extra != nil {
            // What lets the next run skip planning when nothing changes on either side.
            extra?.countingClientID = clientID
            if snapshot != nil { extra?.expectedCounter = counterAtRead }
            let repeatable = plan.protectedKept.isEmpty && plan.guardViolations.isEmpty
            extra?.state.recordShortcut(mappingHash: mapping.sourceHash,
                                        view: repeatable ? UnchangedView(total: plan.summary.total, skipped: plan.skipped) : nil)
        }
        // The directory view is planned: let it go before the change set is built (peak memory).
        snapshot = nil
        incremental?.snapshot = nil
        let runID = try store.apply(ChangeSet(plan: plan, clientID: clientID, editor: mapping.editor), run: run, within: lease, extra: extra,
                                    creating: newClient)
        return outcome(runID, applied: true)
    }
}

extension Plan {
    /// The empty plan of a run that found nothing changed since the last applied one.
    static func unchanged(mapping: Mapping, view: UnchangedView?, entriesRead: Int) -> Plan {
        var summary = PlanSummary()
        summary.total = view?.total ?? 0
        summary.unchanged = summary.total
        summary.skipped = view?.skipped.count ?? 0
        summary.entriesRead = entriesRead
        return Plan(client: mapping.client.name, mapping: mapping.file, directory: mapping.directory.displayURL,
                    groupCreations: [], userChanges: [], skipped: view?.skipped ?? [], protectedKept: [], guardViolations: [],
                    summary: summary, onboarding: [])
    }
}
