import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization

/// The JSON a webhook receives for one run.
public struct RunNotification: Sendable, Equatable, Encodable {
    /// One changed user: `{"email", "action"}`.
    public struct Change: Sendable, Equatable, Encodable {
        public var email: String
        public var action: String
    }

    /// `failed`, `refused`, `applied` or `changed`.
    public var event: NotifyEvent
    public var client: String
    public var mapping: String
    /// The `sync_runs` id, when the run got as far as recording one.
    public var runID: Int64?
    /// The `sync_runs` status: `succeeded`, `failed` or `refused`.
    public var status: String
    /// `apply` or `dry-run`.
    public var mode: String
    /// For a refusal: each guard and its figures.
    public var guards: [GuardViolation]
    /// The plan's counts (`sync_runs.summary`), when there was a plan.
    public var summary: [String: Int]
    public var error: String?
    /// Up to ``maxChanges`` changed users; `changesTotal` says how many there were.
    public var changes: [Change]
    public var changesTotal: Int
    public var at: String
    public var dirbridge: String

    public static let maxChanges = 50

    enum CodingKeys: String, CodingKey {
        case event, client, mapping, status, mode, guards, summary, error, changes, at, dirbridge
        case runID = "run_id", changesTotal = "changes_total"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(event, forKey: .event)
        try container.encode(client, forKey: .client)
        try container.encode(mapping, forKey: .mapping)
        try container.encode(runID, forKey: .runID)
        try container.encode(status, forKey: .status)
        try container.encode(mode, forKey: .mode)
        try container.encode(guards, forKey: .guards)
        try container.encode(summary, forKey: .summary)
        try container.encode(error, forKey: .error)
        try container.encode(changes, forKey: .changes)
        try container.encode(changesTotal, forKey: .changesTotal)
        try container.encode(at, forKey: .at)
        try container.encode(dirbridge, forKey: .dirbridge)
    }

    init(event: NotifyEvent, mapping: Mapping, runID: Int64?, status: RunStatus, apply: Bool, plan: Plan?, error: String?, at: Date = Date()) {
        self.event = event
        client = mapping.client.name
        self.mapping = mapping.file
        self.runID = runID
        self.status = status.rawValue
        mode = apply ? RunMode.apply.rawValue : RunMode.dryRun.rawValue
        guards = event == .refused ? plan?.guardViolations ?? [] : []
        summary = plan?.summary.counts ?? [:]
        self.error = error
        changes = (plan?.userChanges ?? []).prefix(Self.maxChanges).map { Change(email: $0.email, action: $0.action.rawValue) }
        changesTotal = plan?.userChanges.count ?? 0
        self.at = StoreTime.text(at)
        dirbridge = DirBridge.version
    }

    /// The event `settings` want for an apply's success, if any: `changed` when it changed
    /// something and `changed` is wanted, otherwise `applied` when that is.
    static func successEvent(_ plan: Plan, settings: NotifySettings) -> NotifyEvent? {
        if !plan.isEmpty && settings.on.contains(.changed) { return .changed }
        return settings.on.contains(.applied) ? .applied : nil
    }
}

/// POSTs run outcomes to the mapping's webhook. A delivery that fails is retried with
/// backoff and then logged; it never changes the run's outcome or exit code.
public enum Notifier {
    /// Delays before the retries: an answer of 5xx or 429, or no answer at all, is tried again.
    public static let retryDelays: [Double] = [0.5, 1, 2]

    /// Sends `notification` when `settings` ask for its event. Returns whether a 2xx came back.
    @discardableResult
    public static func deliver(_ notification: RunNotification, settings: NotifySettings, logger: Logger,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard settings.on.contains(notification.event), let url = URL(string: settings.webhook) else { return false }
        // Webhook URLs often carry their token in the path or user:password: logs name the host only.
        let shown = "\(url.scheme ?? "http")://\(url.host ?? "?")\(url.port.map { ":\($0)" } ?? "")/…"
        let body: Data
        do {
            body = Data(try JSONOutput.encode(value: notification).utf8)
        } catch {
            logger.error("webhook not sent: the notification could not be encoded", metadata: ["error": "\(error)"])
            return false
        }
        var request = URLRequest(url: url, timeoutInterval: settings.timeout)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("dirbridge/\(DirBridge.version)", forHTTPHeaderField: "User-Agent")
        request.setValue(notification.event.rawValue, forHTTPHeaderField: "X-Dirbridge-Event")
        if let name = settings.secretEnv {
            guard let secret = environment[name], !secret.isEmpty else {
                // Never send unsigned what was meant to be signed.
                logger.error("webhook not sent: notify.secret_env names \(name), which is not set", metadata: ["event": "\(notification.event.rawValue)"])
                return false
            }
            request.setValue("sha256=" + Digests.hmacSHA256Hex(key: Array(secret.utf8), message: body), forHTTPHeaderField: "X-Dirbridge-Signature")
        }
        request.httpBody = body
        for attempt in 0...retryDelays.count {
            if attempt > 0 { Thread.sleep(forTimeInterval: retryDelays[attempt - 1]) }
            let (status, failure) = post(request, timeout: settings.timeout)
            if let status, (200..<300).contains(status) {
                logger.info("webhook delivered", metadata: ["event": "\(notification.event.rawValue)", "status": "\(status)", "attempts": "\(attempt + 1)"])
                return true
            }
            let retryable = status.map { $0 >= 500 || $0 == 429 } ?? true
            logger.warning("webhook delivery failed", metadata: [
                "event": "\(notification.event.rawValue)", "url": "\(shown)", "attempt": "\(attempt + 1)",
                "status": "\(status.map(String.init) ?? "none")", "error": "\(failure ?? "")",
            ])
            if !retryable { break }
        }
        logger.error("webhook not delivered; the run's outcome stands", metadata: ["event": "\(notification.event.rawValue)", "url": "\(shown)"])
        return false
    }

    /// One POST: the HTTP status, or why there was none.
    private static func post(_ request: URLRequest, timeout: Double) -> (Int?, String?) {
        let result = Mutex<(Int?, String?)>((nil, "no answer within \(formatSeconds(timeout))"))
        let done = DispatchSemaphore(value: 0)
        let task = URLSession.shared.dataTask(with: request) { _, response, error in
            result.withLock { $0 = ((response as? HTTPURLResponse)?.statusCode, error.map { "\($0.localizedDescription)" }) }
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + timeout + 5) == .timedOut { task.cancel() }
        return result.withLock { $0 }
    }
}
