import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// What the watch connection reports to `run --watch`.
enum WatchEvent: Sendable {
    /// The directory changed (one notice per change message).
    case changed(PersistNotice)
    /// The server offers no content synchronisation: `run --watch` polls at `--every`.
    case unsupported(String)
    /// The watch connection failed; it is opened again after `retry` seconds.
    case lost(String, retry: TimeInterval)
    /// The watch connection is open and listening.
    case listening
}

/// Keeps one connection open to the directory and posts a ``WatchEvent`` for each change the
/// server pushes (RFC 4533 refreshAndPersist on the users' and the groups' searches, from the
/// cookies of the last applied run). Runs on a thread of its own, because libldap blocks;
/// reconnects with backoff (1 s, doubling, at most 60 s) until stopped.
final class ChangeWatcher: Sendable {
    let mailbox = WatchMailbox()
    private let stopped = Atomic<Bool>(false)
    private let mapping: Mapping
    private let storePath: String?
    private let logger: Logger

    init(mapping: Mapping, storePath: String?, logger: Logger) {
        self.mapping = mapping
        self.storePath = storePath
        self.logger = logger
    }

    func start() {
        Thread.detachNewThread { [self] in watch() }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    private func watch() {
        var delay: TimeInterval = 1
        while !isStopped {
            do {
                let connection = try DirectoryConnection.open(mapping.directory, logger: logger)
                guard try connection.capabilities().controls.contains(DirectoryConnection.syncRequestOID) else {
                    mailbox.post(.unsupported("the server does not offer content synchronisation (RFC 4533)"))
                    return
                }
                let state = try storePath.map { try openPortalStorage($0, password: mapping.storePassword) as? any DirectoryCacheStoring }??.directoryCache(client: mapping.client.name)?.state
                var searches = [(request: mapping.usersSearch(), cookie: state?.usersCookie)]
                if let groups = mapping.groupsSearch() { searches.append((groups, state?.groupsCookie)) }
                mailbox.post(.listening)
                delay = 1
                try connection.persist(searches, poll: 0.25, shouldStop: { isStopped }) { notice in
                    mailbox.post(.changed(notice))
                }
            } catch {
                if isStopped { return }
                let text = (error as? any DirBridgeFailure)?.description ?? "\(error)"
                mailbox.post(.lost(text.replacingOccurrences(of: "\n", with: " "), retry: delay))
                let until = Date().addingTimeInterval(delay)
                while !isStopped && Date() < until { Thread.sleep(forTimeInterval: 0.1) }
                delay = min(60, delay * 2)
            }
        }
    }
}

/// Events from the watch thread, waited for by the scheduler with a time limit.
final class WatchMailbox: Sendable {
    private let state = Mutex<(events: [WatchEvent], waiter: ResumeOnce<Void>?)>(([], nil))

    func post(_ event: WatchEvent) {
        let waiter = state.withLock { state in
            state.events.append(event)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(())
    }

    /// Every event posted since the last call.
    func take() -> [WatchEvent] {
        state.withLock { state in
            defer { state.events = [] }
            return state.events
        }
    }

    /// Returns once an event is waiting, `timeout` seconds have passed, or a graceful shutdown began.
    func wait(timeout: TimeInterval) async {
        let once = ResumeOnce<Void>()
        let ready = state.withLock { state -> Bool in
            if !state.events.isEmpty { return true }
            state.waiter = once
            return false
        }
        if ready { return }
        let timer = Task {
            try? await Task.sleep(for: .seconds(max(0, timeout)))
            once.resume(())
        }
        await withGracefulShutdownHandler {
            await withCheckedContinuation { once.set($0) }
        } onGracefulShutdown: {
            once.resume(())
        }
        timer.cancel()
        state.withLock { state in if state.waiter === once { state.waiter = nil } }
    }
}
