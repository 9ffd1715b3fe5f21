import Foundation
import Metrics
import Synchronization

/// The metrics every sync records through swift-metrics, per client: a no-op unless the
/// process bootstraps a metrics backend (`dirbridge run --metrics` bootstraps Prometheus).
///
/// | metric | type | labels |
/// | --- | --- | --- |
/// | `dirbridge_runs_total` | counter | client, status (succeeded, failed, refused), mode |
/// | `dirbridge_changes_applied_total` | counter | client, action (create, link, update, enable, disable) |
/// | `dirbridge_guard_refusals_total` | counter | client, guard |
/// | `dirbridge_run_duration_seconds` | histogram | client |
/// | `dirbridge_last_run_duration_seconds` | gauge | client |
/// | `dirbridge_entries_read_total` | counter | client |
/// | `dirbridge_last_success_timestamp_seconds` | gauge | client |
/// | `dirbridge_lease_waits_total` | counter | client |
/// | `dirbridge_watch_lag_seconds` | gauge | client |
public enum RunMetrics {
    static func recordRun(client: String, status: RunStatus, apply: Bool, seconds: Double, entriesRead: Int, plan: Plan?, now: Date = Date()) {
        let clientLabel = ("client", client)
        Counter(label: "dirbridge_runs_total", dimensions: [clientLabel, ("status", status.rawValue), ("mode", apply ? "apply" : "dry-run")]).increment()
        Metrics.Timer(label: "dirbridge_run_duration_seconds", dimensions: [clientLabel], preferredDisplayUnit: .seconds)
            .recordNanoseconds(Int64(max(0, seconds) * 1_000_000_000))
        Gauge(label: "dirbridge_last_run_duration_seconds", dimensions: [clientLabel]).record(seconds)
        if entriesRead > 0 { Counter(label: "dirbridge_entries_read_total", dimensions: [clientLabel]).increment(by: entriesRead) }
        if let plan {
            if status == .succeeded && apply {
                let summary = plan.summary
                for (action, count) in [("create", summary.create), ("link", summary.link), ("update", summary.update),
                                        ("enable", summary.enable), ("disable", summary.disable)] where count > 0 {
                    Counter(label: "dirbridge_changes_applied_total", dimensions: [clientLabel, ("action", action)]).increment(by: count)
                }
            }
            if status == .refused {
                for violation in plan.guardViolations {
                    Counter(label: "dirbridge_guard_refusals_total", dimensions: [clientLabel, ("guard", violation.guardName)]).increment()
                }
            }
        }
        if status == .succeeded {
            Gauge(label: "dirbridge_last_success_timestamp_seconds", dimensions: [clientLabel]).record(now.timeIntervalSince1970)
        }
        RunHealth.shared.record(client: client, succeeded: status == .succeeded, at: now)
    }

    /// A run began: `/healthz` counts a run in progress as alive while it is younger than the window.
    static func recordStart(client: String, now: Date = Date()) {
        RunHealth.shared.started(client: client, at: now)
    }

    /// `run --watch`: from the first pushed change of a batch to its commit.
    static func recordWatchLag(client: String, seconds: Double) {
        Gauge(label: "dirbridge_watch_lag_seconds", dimensions: [("client", client)]).record(seconds)
    }

    /// A shared tick another worker took: counted apart from runs, and no webhook.
    static func recordSkip(client: String, now: Date = Date()) {
        Counter(label: "dirbridge_ticks_skipped_total", dimensions: [("client", client)]).increment()
        RunHealth.shared.skipped(client: client, at: now)
    }

    static func recordLeaseWait(client: String) {
        Counter(label: "dirbridge_lease_waits_total", dimensions: [("client", client)]).increment()
    }
}

/// The last run of each client, for `/healthz`.
public final class RunHealth: Sendable {
    public static let shared = RunHealth()

    private struct Client {
        var lastSucceeded: Bool?
        var lastEnded: Date?
        var runningSince: Date?
    }

    private let state = Mutex<(started: Date, clients: [String: Client])>((Date(), [:]))

    func started(client: String, at: Date) {
        state.withLock { $0.clients[client, default: Client()].runningSince = at }
    }

    /// A tick this worker left to another (shared ticks): a sign of life that says nothing
    /// about whether syncs succeed, so the last run's verdict stands.
    func skipped(client: String, at: Date) {
        state.withLock { state in
            state.clients[client, default: Client()].runningSince = nil
            state.clients[client, default: Client()].lastEnded = at
        }
    }

    func record(client: String, succeeded: Bool, at: Date) {
        state.withLock { state in
            state.clients[client, default: Client()] = Client(lastSucceeded: succeeded, lastEnded: at, runningSince: nil)
        }
    }

    /// Healthy while, for every client, the last run that ended succeeded, and the client
    /// showed life within `window` (two ticks): a run ended, or one in progress began. Before
    /// a client's first run ends, the process's start counts as its last sign of life. A run
    /// stuck for longer than the window, or a last run that failed, is unhealthy.
    public func check(clients: [String], window: TimeInterval, now: Date = Date()) -> (healthy: Bool, detail: String) {
        state.withLock { state in
            var problems: [String] = []
            for name in clients {
                let client = state.clients[name] ?? Client()
                if client.lastSucceeded == false {
                    problems.append("\(name): last run did not succeed")
                    continue
                }
                let alive = [client.lastEnded, client.runningSince, client.lastEnded == nil ? state.started : nil].compactMap { $0 }.max() ?? state.started
                if now.timeIntervalSince(alive) > window {
                    problems.append(client.runningSince != nil
                        ? "\(name): a run has been going for \(Int(now.timeIntervalSince(client.runningSince!)))s"
                        : client.lastEnded == nil ? "\(name): no run finished yet" : "\(name): no run for \(Int(now.timeIntervalSince(alive)))s")
                }
            }
            return problems.isEmpty ? (true, "ok") : (false, problems.joined(separator: "; "))
        }
    }
}
