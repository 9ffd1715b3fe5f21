import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// What `dirbridge run` does on each tick.
public struct ScheduleOptions: Sendable {
    /// Time between the starts of two runs.
    public var every: TimeInterval
    public var incremental: IncrementalOptions
    /// Apply the changes (default: dry runs, which write only their `sync_runs` row).
    public var apply: Bool
    public var storePath: String?
    /// The first retry after a failed run; doubled per failure, never later than the next tick.
    public var firstRetry: TimeInterval
    /// Stop after this many runs (tests, one-off use); nil runs until stopped.
    public var maxRuns: Int?
    /// Wait this long before the first run (many clients in one process do not all fire at once).
    public var startOffset: TimeInterval = 0
    /// Shared by the clients of one process: at most `--concurrency` syncs at a time.
    public var gate: RunGate? = nil
    /// `run --watch`: between ticks, a change the server pushes starts a run (after the batch window).
    public var watch: WatchOptions? = nil
    /// Workers sharing a store (PostgreSQL): ticks fall at the same moments in every worker
    /// (multiples of `every` plus an offset derived from the client's name), and a tick whose
    /// client another worker has synced is skipped; while another worker is syncing it, this one
    /// looks again until that worker is done (or gone: then this one syncs the tick) or the tick ends.
    public var sharedTicks = false

    public init(every: TimeInterval, incremental: IncrementalOptions = IncrementalOptions(), apply: Bool = false,
                storePath: String? = nil, firstRetry: TimeInterval = 15, maxRuns: Int? = nil) {
        self.every = every
        self.incremental = incremental
        self.apply = apply
        self.storePath = storePath
        self.firstRetry = firstRetry
        self.maxRuns = maxRuns
    }
}

/// How `run --watch` batches pushed changes.
public struct WatchOptions: Sendable {
    /// Changes arriving within this long of each other are planned together (the batch ends
    /// after this much quiet, or at ten times it).
    public var batchWindow: TimeInterval

    public init(batchWindow: TimeInterval = 1) { self.batchWindow = batchWindow }
}

/// At most `permits` syncs at a time across the clients of one `run` process.
public actor RunGate {
    private var available: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(permits: Int) { available = max(1, permits) }

    func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { available += 1 } else { waiting.removeFirst().resume() }
    }
}

/// `dirbridge run`: incremental syncs on a schedule, one log line per run, a clean stop on
/// SIGTERM/SIGINT (a run that is reading is abandoned before it writes; a run that is
/// writing finishes its transaction). A failed run is retried with backoff.
public struct SyncScheduler: Service {
    public let mapping: Mapping
    public let options: ScheduleOptions
    public let logger: Logger

    public init(mapping: Mapping, options: ScheduleOptions, logger: Logger) {
        self.mapping = mapping
        self.options = options
        self.logger = logger
    }

    public func run() async throws {
        var failures = 0
        var number = 0
        var watcher: ChangeWatcher?
        defer { watcher?.stop() }
        /// The pushed changes that started the coming run.
        var batch: [PersistNotice] = []
        if options.startOffset > 0 && !options.sharedTicks {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(options.startOffset)) }
        }
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            number += 1
            // When the run was due: without shared ticks, the next one is `every` after it,
            // however long the gate kept this one waiting.
            let due = Date()
            let control = RunControl()
            var request = SyncRequest(
                mapping: mapping, storePath: options.storePath, apply: options.apply, incremental: true,
                incrementalOptions: options.incremental, holder: "run", control: control)
            await options.gate?.acquire()
            if Task.isShuttingDownGracefully {
                await options.gate?.release()
                break
            }
            // The run's time starts once the gate lets it in: waiting for another client's run
            // is not this run's duration.
            var started = Date()
            // Shared ticks: the tick this run falls in (once the gate let it start: a run that
            // waited into the next tick is that tick's run); the next one starts `every` after it.
            let tick = options.sharedTicks ? SharedTicks.start(of: Date(), every: options.every, client: mapping.client.name) : due
            if options.sharedTicks { request.skipIfSyncedSince = tick }
            var ending = await runOnce(request, control: control)
            await options.gate?.release()
            // Shared ticks: another worker holds the lease. Look again (not holding a place in the
            // gate meanwhile) until it is done or the tick ends: a holder that synced makes this a
            // skip; a holder that died on this host is taken over, and the tick is still synced.
            var looks = 0
            while options.sharedTicks, Self.heldByAnotherWorker(ending), !Task.isCancelled, !Task.isShuttingDownGracefully,
                  let pause = Self.recheckPause(tick: tick, every: options.every, look: looks) {
                looks += 1
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(pause)) }
                await options.gate?.acquire()
                // A place in the gate that came only in the next tick: this tick stays the holder's.
                if Task.isCancelled || Task.isShuttingDownGracefully || Date() >= tick.addingTimeInterval(options.every) {
                    await options.gate?.release()
                    break
                }
                started = Date()
                ending = await runOnce(request, control: control)
                await options.gate?.release()
            }
            // Shared ticks, stopped while waiting for another worker's run: no skip with a next
            // run to report.
            if options.sharedTicks, Self.heldByAnotherWorker(ending), Task.isCancelled || Task.isShuttingDownGracefully { break }
            let seconds = Date().timeIntervalSince(started)
            var delay = options.every
            switch ending {
            case .abandoned:
                if options.apply { try? request.openStore().releaseOwnLease(client: mapping.client.name) }
                logger.notice("\(SchedulerLog.stopped(number: number, seconds: seconds))", metadata: ["run": "\(number)"])
                return
            case .finished(.success(let outcome)):
                failures = 0
                var line = SchedulerLog.line(number: number, outcome: outcome, apply: options.apply, seconds: seconds,
                                             next: options.maxRuns.map { number >= $0 } == true ? nil : tick.addingTimeInterval(delay))
                if let pushed = SchedulerLog.watchLag(batch, committed: Date()) {
                    line += "; " + pushed.text
                    RunMetrics.recordWatchLag(client: mapping.client.name, seconds: pushed.lag)
                }
                logger.notice("\(line)", metadata: ["run": "\(number)", "run_id": "\(outcome.runID)"])
            case .finished(.failure(let error as SyncSkipped)):
                failures = 0
                logger.notice("\(SchedulerLog.skipped(number: number, by: error.last, next: tick.addingTimeInterval(delay)))", metadata: ["run": "\(number)"])
            case .finished(.failure(let error as LeaseError)) where options.sharedTicks && !error.lost:
                failures = 0
                RunMetrics.recordSkip(client: mapping.client.name)
                logger.notice("\(SchedulerLog.skipped(number: number, holder: error.holder, next: tick.addingTimeInterval(delay)))", metadata: ["run": "\(number)"])
            case .finished(.failure(let error)):
                if error is SyncStopped {
                    logger.notice("\(SchedulerLog.stopped(number: number, seconds: seconds))")
                    return
                }
                failures += 1
                delay = min(options.every, options.firstRetry * pow(2, Double(failures - 1)))
                logger.error("\(SchedulerLog.failure(number: number, error: error, seconds: seconds, retry: Date().addingTimeInterval(Self.wait(tick: tick, retry: delay, every: options.every))))", metadata: ["run": "\(number)"])
            }
            batch = []
            if let maxRuns = options.maxRuns, number >= maxRuns { return }
            let wait = Self.wait(tick: tick, retry: failures > 0 ? delay : nil, every: options.every)
            if let watch = options.watch {
                if watcher == nil {
                    // After the first run: the store holds the cookies the watch starts from.
                    let store = try? SyncRequest(mapping: mapping, storePath: options.storePath).resolvedStorePath()
                    watcher = ChangeWatcher(mapping: mapping, storePath: store, logger: logger)
                    watcher?.start()
                }
                batch = await nextBatch(watcher!.mailbox, timeout: wait, window: watch.batchWindow)
            } else {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(wait)) }
            }
        }
        logger.notice("dirbridge run: stopped")
    }

    /// Whether the run found the client's lease held by another worker (not lost after reading).
    static func heldByAnotherWorker(_ ending: Ending) -> Bool {
        if case .finished(.failure(let error as LeaseError)) = ending { return !error.lost }
        return false
    }

    /// How long to wait before the `look`th look (from 0) at a held lease: a second (a quarter of
    /// a tick shorter than four seconds), doubled after each look up to 30 s, so that a long sync
    /// is not asked after every second; nil when the look would fall in the next tick.
    static func recheckPause(tick: Date, every: TimeInterval, look: Int, now: Date = Date()) -> TimeInterval? {
        let pause = min(min(1, every / 4) * pow(2, Double(min(look, 8))), 30)
        return now.addingTimeInterval(pause) < tick.addingTimeInterval(every) ? pause : nil
    }

    /// Seconds from `now` until the next run: `every` after this run's tick, or for a `retry`
    /// after a failure, that backoff from now (the failure), but never past the next tick.
    static func wait(tick: Date, retry: TimeInterval?, every: TimeInterval, now: Date = Date()) -> TimeInterval {
        let nextTick = tick.addingTimeInterval(every).timeIntervalSince(now)
        guard let retry else { return max(0, nextTick) }
        return max(0, min(retry, nextTick))
    }

    /// Waits for pushed changes, or until `timeout` (the next tick) or a shutdown. Once a change
    /// arrives, keeps collecting until `window` passes without one (at most ten windows).
    private func nextBatch(_ mailbox: WatchMailbox, timeout: TimeInterval, window: TimeInterval) async -> [PersistNotice] {
        let deadline = Date().addingTimeInterval(timeout)
        var notices: [PersistNotice] = []
        var batchEnd: Date?
        while !Task.isShuttingDownGracefully {
            let until = batchEnd.map { min($0, Date().addingTimeInterval(window)) } ?? deadline
            await mailbox.wait(timeout: until.timeIntervalSinceNow)
            let events = mailbox.take()
            var changed = false
            for event in events {
                switch event {
                case .changed(let notice):
                    notices.append(notice)
                    changed = true
                case .listening:
                    logger.info("watching for changes (RFC 4533 refreshAndPersist)")
                case .unsupported(let reason):
                    logger.notice("--watch: \(reason); polling every \(DurationText.text(options.every)) instead")
                case .lost(let reason, let retry):
                    logger.warning("--watch: the watch connection failed: \(reason); reconnecting in \(DurationText.text(retry))")
                }
            }
            if !notices.isEmpty {
                if batchEnd == nil { batchEnd = Date().addingTimeInterval(window * 10) }
                // The batch ends after a quiet window, or at ten windows.
                if (!changed && events.isEmpty) || Date() >= batchEnd! { return notices }
                continue
            }
            if Date() >= deadline { return [] }
        }
        return notices
    }

    enum Ending: Sendable {
        case finished(Result<SyncOutcome, any Error>)
        case abandoned
    }

    /// Runs one sync on its own thread (libldap blocks); on shutdown, a run still reading is
    /// abandoned at once and will never write, a run writing is waited for.
    private func runOnce(_ request: SyncRequest, control: RunControl) async -> Ending {
        let once = ResumeOnce<Ending>()
        let logger = logger
        return await withGracefulShutdownHandler {
            await withCheckedContinuation { continuation in
                once.set(continuation)
                Thread.detachNewThread {
                    let result = Result<SyncOutcome, any Error> { try SyncEngine.run(request, logger: logger) }
                    once.resume(.finished(result))
                }
            }
        } onGracefulShutdown: {
            if !control.requestStop() { once.resume(.abandoned) }
        }
    }
}

/// Resumes a continuation exactly once, whether the value or the continuation comes first.
final class ResumeOnce<Value: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Value, Never>)
        case resolved(Value)
        case done
    }

    private let state = Mutex<State>(.empty)

    func set(_ continuation: CheckedContinuation<Value, Never>) {
        let value: Value? = state.withLock { state in
            switch state {
            case .resolved(let value):
                state = .done
                return value
            default:
                state = .waiting(continuation)
                return nil
            }
        }
        if let value { continuation.resume(returning: value) }
    }

    func resume(_ value: Value) {
        let continuation: CheckedContinuation<Value, Never>? = state.withLock { state in
            switch state {
            case .empty:
                state = .resolved(value)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .resolved, .done:
                return nil
            }
        }
        continuation?.resume(returning: value)
    }
}

/// The one line `run` logs per run.
enum SchedulerLog {
    /// `next` is nil after the last run `--runs` asked for.
    static func line(number: Int, outcome: SyncOutcome, apply: Bool, seconds: TimeInterval, next: Date?) -> String {
        let read = outcome.method == .full ? "full read" : "incremental read (\(outcome.method.rawValue))"
        let counts = outcome.plan.summary.line
        return "run \(number): \(apply ? "applied" : "dry run"), \(read), \(outcome.entriesRead) entries read; \(counts); "
            + "sync run \(outcome.runID); \(String(format: "%.2f", seconds))s; " + (next.map { "next run at \(StoreTime.text($0))" } ?? "last run")
    }

    /// "N changes pushed, lag Xs" for a run a watch batch started: from the first change
    /// received (and from its modifyTimestamp, on the server's clock, when it had one) to the commit.
    static func watchLag(_ batch: [PersistNotice], committed: Date) -> (text: String, lag: Double)? {
        guard let first = batch.map(\.received).min() else { return nil }
        let lag = committed.timeIntervalSince(first)
        var text = "\(batch.count) change\(batch.count == 1 ? "" : "s") pushed, lag \(String(format: "%.2f", lag))s"
        if let changed = batch.compactMap(\.changedAt).min() {
            text += " (\(String(format: "%.0f", max(0, committed.timeIntervalSince(changed))))s from its modifyTimestamp)"
        }
        return (text, lag)
    }

    static func failure(number: Int, error: any Error, seconds: TimeInterval, retry: Date) -> String {
        let text = (error as? any DirBridgeFailure)?.description ?? "\(error)"
        return "run \(number): failed after \(String(format: "%.2f", seconds))s, nothing applied: "
            + text.replacingOccurrences(of: "\n", with: " ") + "; retry at \(StoreTime.text(retry))"
    }

    static func skipped(number: Int, by last: LastSync, next: Date) -> String {
        "run \(number): skipped, sync run \(last.runID) by \(last.worker ?? "another worker") at \(StoreTime.text(last.startedAt)) "
            + "already synced this tick; next run at \(StoreTime.text(next))"
    }

    static func skipped(number: Int, holder: LeaseHolder?, next: Date) -> String {
        "run \(number): skipped, \(holder.map { "\($0.host):\($0.pid)" } ?? "another worker") is syncing this client; next run at \(StoreTime.text(next))"
    }

    static func stopped(number: Int, seconds: TimeInterval) -> String {
        "run \(number): stopped by a signal after \(String(format: "%.2f", seconds))s before writing; nothing written, lease released"
    }
}

/// The ticks of workers sharing a store: the same moments in every worker, so that "synced
/// this tick" means the same to all of them.
enum SharedTicks {
    /// The client's offset within a tick, in whole seconds: spread over the first minute (or
    /// the tick, if shorter), the same for every worker (derived from the name, not random).
    static func offset(client: String, every: TimeInterval) -> TimeInterval {
        let span = max(1, Int(min(every, 60)))
        let hash = client.lowercased().utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        return TimeInterval(hash % UInt64(span))
    }

    /// The start of the tick that `moment` falls in, to the whole second (sync_runs' resolution).
    static func start(of moment: Date, every: TimeInterval, client: String) -> Date {
        let offset = offset(client: client, every: every)
        let seconds = moment.timeIntervalSince1970 - offset
        let start = (seconds / every).rounded(.down) * every + offset
        return Date(timeIntervalSince1970: start.rounded(.down))
    }
}
