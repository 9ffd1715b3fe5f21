import Foundation
import Logging

/// `dirbridge apply plan.json`: what to apply and how strictly.
public struct ApplyRequest: Sendable {
    /// The saved plan file.
    public var planPath: String
    /// `--store`; otherwise the store the plan was computed against.
    public var storePath: String?
    /// `--max-age` in seconds: an older plan is refused. Default 24 hours.
    public var maxAge: Double
    /// `--force`: apply although a guard (other than `protected`) objects.
    public var force: Bool
    /// `--dry-run`: check and show, write nothing.
    public var dryRun: Bool

    public static let defaultMaxAge: Double = 24 * 3600

    public init(planPath: String, storePath: String? = nil, maxAge: Double = ApplyRequest.defaultMaxAge, force: Bool = false, dryRun: Bool = false) {
        self.planPath = planPath
        self.storePath = storePath
        self.maxAge = maxAge
        self.force = force
        self.dryRun = dryRun
    }
}

/// What an apply of a saved plan did, or (dry run) would do.
public struct ApplyOutcome: Sendable {
    public var document: PlanDocument
    /// The `sync_runs` id of the apply; nil for a dry run.
    public var runID: Int64?
    /// Why an apply now would be refused; empty when it would go through. Only a dry run
    /// returns objections: a real apply throws them as a ``PlanError``.
    public var objections: [String]
    /// When the store was checked.
    public var checkedAt: Date
}

/// Applies a saved plan exactly as reviewed, or refuses: never reads the directory.
///
/// Refused (exit 5; nothing written but a `refused` sync run) when the file was edited, the
/// plan was applied already, it is older than `--max-age`, the mapping file changed, the
/// store moved (the ``StoreFingerprint`` of what the plan touches differs), or the plan
/// would now break a guard: the last enabled Global Admin, `max_disable` against today's
/// number of directory users, `max_demote`, `protected` users. The fingerprint and the
/// guards are checked again inside the apply's own write transaction.
public enum PlanApplier {
    public static func run(_ request: ApplyRequest, logger: Logger, now: Date = Date()) throws -> ApplyOutcome {
        let document: PlanDocument
        do {
            document = try PlanDocument.read(path: request.planPath)
        } catch {
            // An edited plan is refused; the attempt is recorded in the store it names, if there is
            // one (with libpq's own password sources only: an edited plan's password source is not trusted).
            if error.kind == .refused, !request.dryRun, let edited = error.document,
               let store = try? openPortalStorage(request.storePath ?? edited.store.path, createIfMissing: false) {
                try? recordRefusal(error, document: edited, store: store, planHash: nil, startedAt: now)
            }
            throw error
        }
        let plan = document.plan
        let store = try openPortalStorage(request.storePath ?? document.store.path, createIfMissing: false,
                                          password: document.store.password ?? StorePasswordSource())
        let client = try store.client(named: document.client.name)
        let checked = try preflight(document, request: request, store: store, clientExists: client != nil, now: now)
        var reasons = checked.reasons

        /// The checks on the client's state: the fingerprint (unless the client is new) and the guards.
        func objections(_ state: ClientState?, fingerprint: Bool) -> [String] {
            var found: [String] = []
            if fingerprint {
                let current = StoreFingerprint(plan: plan, state: state)
                if current.sha256 != document.store.fingerprint.sha256 {
                    found.append("the store changed since the plan was made: "
                        + document.store.fingerprint.differences(from: current, plan: plan).joined(separator: "; "))
                }
            }
            let violations = document.guards.violations(userEntries: plan.summary.total + plan.summary.skipped, users: state?.users ?? [], changes: plan.userChanges)
            if request.force || document.force {
                for violation in violations { logger.warning("guard overridden by --force", metadata: ["guard": "\(violation.guardName)", "detail": "\(violation.message)"]) }
            } else {
                found += violations.map { "guard \($0.guardName): \($0.message)" }
            }
            found += document.guards.protectedViolations(plan.userChanges).map { "guard \($0.guardName): \($0.message)" }
            return found
        }

        let clientMatches = client != nil && document.store.clientExisted
        if request.dryRun || !reasons.isEmpty {
            let state = try clientMatches ? client.map { try store.loadState(clientID: $0.id) } : nil
            // Once applied, every user it touched moved: saying so again is noise.
            reasons += objections(state, fingerprint: clientMatches && !checked.appliedAlready)
            if request.dryRun {
                return ApplyOutcome(document: document, runID: nil, objections: reasons, checkedAt: now)
            }
            let refusal = PlanError.refused(reasons, document: document)
            try recordRefusal(refusal, document: document, store: store, planHash: document.sha256, startedAt: now)
            throw refusal
        }

        // One writer per client, as for `sync --apply` and `run`.
        let lease = try store.acquireLease(client: document.client.name, holder: "apply")
        defer { lease.release() }
        // A new client is created inside the apply's transaction, so a refusal leaves none behind.
        let newClient = client == nil
            ? (spec: ClientSpec(name: document.client.name, parentName: document.client.parent, membershipEndDate: document.client.membershipEndDate),
               editor: document.mapping.editor)
            : nil
        let run = SyncRunRecord(
            clientID: client?.id, mapping: document.mapping.file, directory: document.directory, mode: .apply, status: .succeeded,
            startedAt: now, summary: plan.summary.counts, entriesRead: plan.summary.entriesRead, planHash: document.sha256)
        let result = try store.apply(ChangeSet(plan: plan, clientID: client?.id ?? 0, editor: document.mapping.editor), run: run, within: lease,
                                     creating: newClient) { state -> PlanError? in
            let found = objections(state, fingerprint: clientMatches)
            return found.isEmpty ? nil : PlanError.refused(found, document: document)
        }
        switch result {
        case .success(let runID):
            return ApplyOutcome(document: document, runID: runID, objections: [], checkedAt: now)
        case .failure(let refusal):
            try recordRefusal(refusal, document: document, store: store, planHash: document.sha256, startedAt: now)
            throw refusal
        }
    }

    /// The checks that need no client state: applied already, age, mapping file, client.
    private static func preflight(_ document: PlanDocument, request: ApplyRequest, store: any PortalStorage, clientExists: Bool, now: Date)
        throws -> (reasons: [String], appliedAlready: Bool)
    {
        var reasons: [String] = []
        let applied = try document.sha256.flatMap { hash throws(StoreError) in try store.appliedRun(planHash: hash) }
        if let applied {
            reasons.append("this plan was applied already, by sync run \(applied.id)\(applied.finishedAt.map { " at \($0)" } ?? "")")
        }
        if let created = StoreTime.date(document.createdAt) {
            let age = now.timeIntervalSince(created)
            if age > request.maxAge {
                reasons.append("the plan was made \(DurationText.text(age)) ago (\(document.createdAt)), longer than --max-age \(DurationText.text(request.maxAge))")
            }
        } else {
            reasons.append("the plan's creation time \(document.createdAt) is not a UTC ISO-8601 time")
        }
        if let data = FileManager.default.contents(atPath: document.mapping.file) {
            let hash = Digests.sha256Hex(Array(data))
            if hash != document.mapping.sha256 {
                reasons.append("the mapping file \(document.mapping.file) changed since the plan was made (sha256 \(document.mapping.sha256.prefix(12))…, now \(hash.prefix(12))…)")
            }
        } else {
            reasons.append("the mapping file \(document.mapping.file) is gone, so it cannot be checked to be the one the plan was made with")
        }
        if applied != nil {
            // Applied: the client exists now, and that is no news.
        } else if document.store.clientExisted && !clientExists {
            reasons.append("the client \(document.client.name) is no longer in the store \(store.location)")
        } else if !document.store.clientExisted && clientExists {
            reasons.append("the store changed since the plan was made: the client \(document.client.name) was created")
        }
        return (reasons, applied != nil)
    }

    /// The `refused` sync run: the only row a refused apply writes.
    private static func recordRefusal(_ refusal: PlanError, document: PlanDocument, store: any PortalStorage, planHash: String?, startedAt: Date) throws {
        let client = try store.client(named: document.client.name)
        _ = try store.recordRun(SyncRunRecord(
            clientID: client?.id, mapping: document.mapping.file, directory: document.directory, mode: .apply, status: .refused,
            startedAt: startedAt, summary: document.plan.summary.counts, error: refusal.reasons.joined(separator: "\n"),
            entriesRead: document.plan.summary.entriesRead, planHash: planHash))
    }
}
