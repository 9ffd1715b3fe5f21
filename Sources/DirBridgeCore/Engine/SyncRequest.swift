import Foundation
import Logging

/// A sync an admin asked for: dry run or apply, with explicit guard overrides.
public struct SyncRequest: Sendable {
    public var mapping: Mapping
    /// `--store`; overrides the mapping's `store.sqlite`.
    public var storePath: String?
    public var apply: Bool
    public var overrides: GuardOverrides
    /// Read only what changed since the last applied incremental run (content sync or high-water marks), with a full reconcile every `full_every`.
    public var incremental: Bool
    public var incrementalOptions: IncrementalOptions
    /// What holds the client's lease while an apply runs (`sync --apply`, `run`).
    public var holder: String
    /// Queue behind another run holding the lease instead of exiting 5.
    public var waitForLease: Bool
    /// Workers sharing a store: once the lease is held, a client synced (by any worker) since
    /// this moment is skipped (``SyncSkipped``) instead of synced twice in one tick.
    public var skipIfSyncedSince: Date?
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
            throw SyncError(kind: .usage, message: "no portal store: pass --store PATH (or a postgresql:// URL) or set store: { sqlite: PATH } or store: { postgres: URL } in \(mapping.file)")
        }
        return path
    }

    /// Opens the store this run writes to: `--store`, else the mapping's `store:` section.
    public func openStore() throws -> any PortalStorage {
        try openPortalStorage(try resolvedStorePath(), password: mapping.storePassword)
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
    /// When an incremental run planned only the users its changes affect: their DNs, sorted.
    public var affectedDNs: [String]? = nil
    /// Why an incremental run that read only the changes planned every user, when it did.
    public var planningReason: String? = nil
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

/// A scheduled run not made: another worker already synced the client in this tick.
public struct SyncSkipped: Error, Sendable {
    public var last: LastSync
}
