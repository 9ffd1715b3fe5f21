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

    static func recordLeaseWait(client: String) {
        Counter(label: "dirbridge_lease_waits_total", dimensions: [("client", client)]).increment()
    }
}

/// The last run of each client, for `/healthz`.
public final class RunHealth: Sendable {
    public static let shared = RunHealth()

    private struct Last { var succeeded: Bool; var at: Date }
    private let state = Mutex<(started: Date, clients: [String: Last])>((Date(), [:]))

    func record(client: String, succeeded: Bool, at: Date) {
        state.withLock { $0.clients[client] = Last(succeeded: succeeded, at: at) }
    }

    /// Healthy while every client's last run succeeded within `window` (two ticks); before
    /// a client's first run ends, while the process is younger than the window.
    public func check(clients: [String], window: TimeInterval, now: Date = Date()) -> (healthy: Bool, detail: String) {
        state.withLock { state in
            var problems: [String] = []
            for client in clients {
                if let last = state.clients[client] {
                    if !last.succeeded { problems.append("\(client): last run did not succeed") }
                    else if now.timeIntervalSince(last.at) > window { problems.append("\(client): no successful run for \(Int(now.timeIntervalSince(last.at)))s") }
                } else if now.timeIntervalSince(state.started) > window {
                    problems.append("\(client): no run finished yet")
                }
            }
            return problems.isEmpty ? (true, "ok") : (false, problems.joined(separator: "; "))
        }
    }
}
