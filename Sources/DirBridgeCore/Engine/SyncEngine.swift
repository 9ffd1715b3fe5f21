import Foundation
import Logging

/// Runs the main job: read the directory, map, plan, guard, and (with `apply`) write.
///
/// Nothing but a `sync_runs` row is written until the whole directory read succeeded and
/// the guards passed; the apply itself is one SQLite transaction.
public enum SyncEngine {
    public static func run(_ request: SyncRequest, logger: Logger, progress: ((Int) -> Void)? = nil) throws -> SyncOutcome {
        let recorded = RecordedRun()
        let started = Date()
        let client = request.mapping.client.name
        RunMetrics.recordStart(client: client, now: started)
        do {
            let outcome = try stages(request, recorded: recorded, logger: logger, progress: progress)
            RunMetrics.recordRun(client: client, status: .succeeded, apply: request.apply, seconds: Date().timeIntervalSince(started),
                                 entriesRead: outcome.entriesRead, plan: outcome.plan)
            if let settings = request.mapping.notify, outcome.applied, let event = RunNotification.successEvent(outcome.plan, settings: settings) {
                Notifier.deliver(RunNotification(event: event, mapping: request.mapping, runID: outcome.runID, status: .succeeded, apply: true,
                                                 plan: outcome.plan, error: nil), settings: settings, logger: logger)
            }
            return outcome
        } catch is SyncStopped {
            throw SyncStopped()
        } catch let skipped as SyncSkipped {
            // Another worker synced this client in this tick: not a run, so no webhook.
            RunMetrics.recordSkip(client: client)
            throw skipped
        } catch let held as LeaseError where !held.lost && request.skipIfSyncedSince != nil {
            // Shared ticks: another worker is syncing this client now. Not a run: the scheduler
            // looks again until the tick ends, and counts a skip if the tick stays theirs.
            throw held
        } catch {
            let refusal = (error as? SyncError).flatMap { $0.kind == .refused ? $0 : nil }
            RunMetrics.recordRun(client: client, status: refusal == nil ? .failed : .refused, apply: request.apply,
                                 seconds: Date().timeIntervalSince(started), entriesRead: refusal?.plan?.summary.entriesRead ?? 0, plan: refusal?.plan)
            if let settings = request.mapping.notify {
                let failure = (error as? any DirBridgeFailure)?.description ?? "\(error)"
                Notifier.deliver(RunNotification(event: refusal == nil ? .failed : .refused, mapping: request.mapping, runID: recorded.id,
                                                 status: refusal == nil ? .failed : .refused, apply: request.apply, plan: refusal?.plan,
                                                 error: failure), settings: settings, logger: logger)
            }
            throw error
        }
    }

    private static func stages(_ request: SyncRequest, recorded: RecordedRun, logger: Logger, progress: ((Int) -> Void)?) throws -> SyncOutcome {
        var run = try SyncRun(request, logger: logger, recorded: recorded)
        // One writer per client: the lease is held from before the read until after the write.
        let lease = try run.takeLease()
        defer { lease?.release() }
        var clock = StageClock(logger: logger)
        var read = try run.read(progress: progress)
        clock.lap("read")
        var planned = try run.plan(&read)
        clock.lap("planned")
        guard request.apply else { return try run.recordDryRun(planned, read) }
        try run.checkGuards(planned, read)
        // The store's users served the plan and its guards; the write needs only the plan.
        BackgroundRelease.release(&planned.state)
        let outcome = try run.write(planned, read: &read, lease: lease)
        clock.lap("written")
        return outcome
    }
}

/// Logs how long each stage of a run took and the process's memory at its end (`--verbose`).
private struct StageClock {
    let logger: Logger
    private var last = DispatchTime.now()

    init(logger: Logger) { self.logger = logger }

    mutating func lap(_ stage: String) {
        let now = DispatchTime.now()
        let seconds = Double(now.uptimeNanoseconds - last.uptimeNanoseconds) / 1e9
        var metadata: Logger.Metadata = ["seconds": "\(String(format: "%.3f", seconds))"]
        if let memory = Self.memory() {
            metadata["rss_mb"] = "\(memory.resident)"
            metadata["peak_rss_mb"] = "\(memory.peak)"
        }
        logger.debug("\(stage)", metadata: metadata)
        last = now
    }

    /// Resident and peak resident memory in MB, from /proc/self/status (Linux); nil elsewhere.
    private static func memory() -> (resident: Int, peak: Int)? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func kilobytes(_ key: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        }
        guard let resident = kilobytes("VmRSS"), let peak = kilobytes("VmHWM") else { return nil }
        return (resident / 1024, peak / 1024)
    }
}

/// The id of the `sync_runs` row a run recorded for a failure or a refusal, for its notification.
final class RecordedRun: @unchecked Sendable {
    var id: Int64?
}

/// What the directory read of one run produced.
private struct DirectoryRead {
    /// The directory view to plan; nil once planned, or when nothing changed since the last applied run.
    var snapshot: DirectorySnapshot?
    var entriesRead: Int
    /// For incremental-capable runs: how it read, and the cache update to write with the apply.
    var incremental: IncrementalReadResult?

    var method: ReadMethod { incremental?.method ?? .full }
}

/// A plan and the store state it was made against.
private struct PlannedRun {
    var plan: Plan
    var state: ClientState?
    /// The client's change counter read before the state (see ``DirectoryCacheUpdate/expectedCounter``).
    var counterAtRead: Int64?
}

/// One run's stages: open → lease → read → plan → guard → write; each stage a method.
private struct SyncRun {
    let request: SyncRequest
    let logger: Logger
    let store: any PortalStorage
    /// The client, looked up once the lease is held; nil before its first apply.
    private(set) var client: ClientRecord?
    let started = Date()
    let recorded: RecordedRun
    var mapping: Mapping { request.mapping }

    /// Opens the store.
    init(_ request: SyncRequest, logger: Logger, recorded: RecordedRun) throws {
        self.request = request
        self.logger = logger
        self.recorded = recorded
        store = try request.openStore()
    }

    /// The client's lease for an apply, then the client as it stands under the lease (a run
    /// that waited sees the client another run created). A stop that came meanwhile gives the lease back.
    mutating func takeLease() throws -> StoreLease? {
        let lease = request.apply
            ? try store.acquireLease(client: mapping.client.name, holder: request.holder, wait: request.waitForLease,
                                     shouldStop: request.shouldStop) { holder in
                RunMetrics.recordLeaseWait(client: mapping.client.name)
                logger.notice("waiting for the lease", metadata: ["holder": "\(holder)"])
            }
            : nil
        do {
            if request.shouldStop() { throw SyncStopped() }
            client = try store.client(named: mapping.client.name)
            if let since = request.skipIfSyncedSince, let client, let last = try store.lastSync(clientID: client.id), last.startedAt >= since {
                throw SyncSkipped(last: last)
            }
        } catch {
            lease?.release()
            throw error
        }
        return lease
    }

    /// The whole directory, or with `incremental` what changed since the last applied run.
    /// A failed read records a `failed` run and writes nothing else.
    func read(progress: ((Int) -> Void)?) throws -> DirectoryRead {
        let read: DirectoryRead
        do {
            let connection = try DirectoryConnection.open(mapping.directory, logger: logger)
            if request.incremental, let cached = store as? any DirectoryCacheStoring {
                var cacheOptions = request.incrementalOptions
                cacheOptions.writesCache = request.apply
                let result = try IncrementalReader.read(
                    mapping, store: cached, connection: connection, options: cacheOptions, logger: logger,
                    progress: progress, shouldStop: request.shouldStop)
                read = DirectoryRead(snapshot: result.snapshot, entriesRead: result.entriesRead, incremental: result)
            } else {
                let snapshot = try DirectorySnapshotReader.read(
                    mapping, connection: connection, logger: logger, progress: progress, collector: nil, shouldStop: request.shouldStop)
                read = DirectoryRead(snapshot: snapshot, entriesRead: snapshot.entriesRead)
            }
        } catch let failure as DirectoryError {
            try gate()
            _ = try record(.failed, error: failure.description)
            throw failure
        }
        if request.shouldStop() { throw SyncStopped() }
        return read
    }

    /// The plan against the client's state; the empty plan when nothing changed on either side.
    func plan(_ read: inout DirectoryRead) throws -> PlannedRun {
        if let affected = read.incremental?.affected, let snapshot = read.snapshot, let client, let cached = store as? any DirectoryCacheStoring {
            let partial = try cached.loadPartialState(clientID: client.id, externalIDs: affected.externalIDs, emails: affected.emails,
                                                     userIDs: affected.userIDs)
            let reason = request.fingerprintsState ? "a saved plan fingerprints the whole store state"
                : AffectedPlanning.conflict(snapshot: snapshot, users: partial.state.users)
            if let reason, let whole = read.incremental?.wholeView {
                logger.debug("planning every user", metadata: ["reason": "\(reason)"])
                read.snapshot = try whole()
                read.incremental?.affected = nil
                read.incremental?.planningReason = reason
            } else {
                logger.debug("planning the affected users only", metadata: ["users": "\(snapshot.users.count + snapshot.skipped.count)"])
                let scope = AffectedScope(total: affected.total, userEntries: affected.userEntries, population: partial.population)
                let plan = Planner(mapping: mapping, overrides: request.overrides).plan(snapshot: snapshot, state: partial.state, affected: scope)
                return PlannedRun(plan: plan, state: nil, counterAtRead: affected.counter)
            }
        }
        // The change counter is read before the state: a portal write in between makes the
        // apply record no counter (see DirectoryCacheUpdate.expectedCounter), never a stale one.
        let counterAtRead = try client.map { try store.changeCounter(clientID: $0.id) }
        let needsState = read.snapshot != nil || request.fingerprintsState
        // The stored users share the values they have in common with the directory's (the
        // index for it is freed once they are loaded).
        let snapshot = read.snapshot
        let state = needsState ? try client.map { try store.loadState(clientID: $0.id, sharing: snapshot.map(StoredUserSharing.init)) } : nil
        let plan = read.snapshot.map { Planner(mapping: mapping, overrides: request.overrides).plan(snapshot: $0, state: state) }
            ?? Plan.unchanged(mapping: mapping, view: read.incremental?.unchanged, entriesRead: read.entriesRead)
        return PlannedRun(plan: plan, state: state, counterAtRead: counterAtRead)
    }

    /// A dry run writes its `sync_runs` row only.
    func recordDryRun(_ planned: PlannedRun, _ read: DirectoryRead) throws -> SyncOutcome {
        try gate()
        let runID = try record(.succeeded, summary: planned.plan.summary.counts, entriesRead: read.entriesRead, incremental: read.method != .full)
        var result = outcome(planned.plan, read, runID: runID, applied: false)
        if request.fingerprintsState { result.stateFingerprint = StoreFingerprint(plan: planned.plan, state: planned.state) }
        return result
    }

    /// Refuses (a `refused` run, exit 5) while the plan breaks a guard, unless `--force`.
    func checkGuards(_ planned: PlannedRun, _ read: DirectoryRead) throws {
        let plan = planned.plan
        guard !plan.guardViolations.isEmpty else { return }
        if request.overrides.force {
            for violation in plan.guardViolations {
                logger.warning("guard overridden by --force", metadata: ["guard": "\(violation.guardName)", "detail": "\(violation.message)"])
            }
            return
        }
        let text = plan.guardViolations.map(\.description).joined(separator: "\n")
        try gate()
        _ = try record(.refused, summary: plan.summary.counts, error: text, entriesRead: read.entriesRead, incremental: read.method != .full)
        throw SyncError(kind: .refused, message: "apply refused by a safety guard; nothing was changed:\n" + text, plan: plan)
    }

    /// The apply: the change set, the run and the directory cache in one transaction.
    func write(_ planned: PlannedRun, read: inout DirectoryRead, lease: StoreLease?) throws -> SyncOutcome {
        let plan = planned.plan
        try gate()
        // A new client is created inside the apply's transaction (the plan was made against no
        // client: only the Default User Group exists, as it will once created).
        let newClient = client == nil
            ? (spec: ClientSpec(name: mapping.client.name, parentName: mapping.client.parent, membershipEndDate: mapping.client.membershipEndDate),
               editor: mapping.editor)
            : nil
        let clientID = client?.id ?? 0
        let run = SyncRunRecord(clientID: client?.id, mapping: mapping.file, directory: mapping.directory.displayURL, mode: .apply,
                                status: .succeeded, startedAt: started, summary: plan.summary.counts, entriesRead: read.entriesRead,
                                incremental: read.method != .full)
        var extra = read.incremental?.cacheUpdate
        if extra != nil {
            // What lets the next run skip planning when nothing changes on either side.
            extra?.countingClientID = clientID
            if read.snapshot != nil { extra?.expectedCounter = planned.counterAtRead }
            let repeatable = plan.protectedKept.isEmpty && plan.guardViolations.isEmpty
            let view = UnchangedView(total: plan.summary.total, skipped: plan.skipped)
            let planned = read.snapshot == nil ? extra?.state.plannedView ?? view : view
            extra?.state.recordShortcut(mappingHash: mapping.sourceHash, view: repeatable ? view : nil, planned: planned)
        }
        let outcome = outcome(plan, read, runID: 0, applied: true)
        // The directory view is planned: let it go, on another thread (this one builds the change
        // set and writes meanwhile). The incremental read's result holds it too.
        read.incremental?.snapshot = nil
        BackgroundRelease.release(&read.snapshot)
        read = DirectoryRead(snapshot: nil, entriesRead: read.entriesRead)
        var changes: ChangeSet? = ChangeSet(plan: plan, clientID: clientID, editor: mapping.editor)
        let runID = try store.apply(changes!, run: run, within: lease, extra: extra, creating: newClient)
        // A first sync's 100k creations took 0.01-0.02 s to free here.
        BackgroundRelease.release(&changes)
        var result = outcome
        result.runID = runID
        return result
    }

    // MARK: helpers

    /// From the first write on, a stop request waits for the run to finish instead.
    private func gate() throws {
        if let control = request.control, !control.beginWriting() { throw SyncStopped() }
    }

    private func record(_ status: RunStatus, summary: [String: Int] = [:], error: String? = nil, entriesRead: Int? = nil, incremental: Bool = false) throws -> Int64 {
        let id = try store.recordRun(SyncRunRecord(
            clientID: client?.id, mapping: mapping.file, directory: mapping.directory.displayURL, mode: request.apply ? .apply : .dryRun,
            status: status, startedAt: started, summary: summary, error: error, entriesRead: entriesRead, incremental: incremental))
        recorded.id = id
        return id
    }

    private func outcome(_ plan: Plan, _ read: DirectoryRead, runID: Int64, applied: Bool) -> SyncOutcome {
        var outcome = SyncOutcome(plan: plan, runID: runID, applied: applied, method: read.method, fullReason: read.incremental?.fullReason,
                                  entriesRead: read.entriesRead)
        outcome.affectedDNs = read.incremental?.affected?.plannedDNs
        outcome.planningReason = read.incremental?.planningReason
        return outcome
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
