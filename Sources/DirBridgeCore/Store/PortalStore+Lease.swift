import Foundation
import GRDB
import Synchronization

/// Who holds a client's lease: the one dirbridge allowed to write that client.
public struct LeaseHolder: Sendable, Equatable, CustomStringConvertible {
    /// What holds it: `sync --apply`, `apply`, `run`.
    public var holder: String
    public var pid: Int32
    public var host: String
    public var acquiredAt: String
    public var expiresAt: String
    /// The holder's boot and PID namespace (``LeaseHolder/currentProcess``); nil in a lease an
    /// older dirbridge took.
    public var process: String? = nil

    public var description: String {
        "`dirbridge \(holder)` (pid \(pid) on \(host), since \(acquiredAt), lease expires \(expiresAt))"
    }
}

/// Another dirbridge holds the client's lease (exit 5), or this one lost it before writing.
public struct LeaseError: DirBridgeFailure {
    public var client: String
    public var holder: LeaseHolder?
    public var message: String
    /// True when this run lost a lease it had (after reading); false when the lease was held
    /// by another run before this one read anything.
    public var lost = false

    public var kind: FailureKind { .refused }
    public var description: String { message }

    static func held(client: String, by holder: LeaseHolder) -> LeaseError {
        LeaseError(
            client: client, holder: holder,
            message: "another sync of client \(client) is running: \(holder). Nothing was read or written. "
                + "Try again when it is done, or pass --wait to queue behind it; a lease left by a killed "
                + "process is taken over once that process is gone (same host) or the lease expires.")
    }
}

/// A lease this process holds on one client's writes; released by ``release()`` (and, as
/// a safety net, when the value goes away). ``PortalStorage/acquireLease`` keeps it renewed
/// while it is held.
///
/// Every write of the sync checks, inside its transaction, that the lease is still this
/// one (a fencing token), so a process that lost its lease can never write.
public final class StoreLease: Sendable {
    public let client: String
    public let token: String
    let store: any PortalStorage
    private let released = Mutex(false)
    /// The renewal timer (guarded by `renewalLock`; DispatchSourceTimer is not Sendable).
    nonisolated(unsafe) private var renewal: (any DispatchSourceTimer)?
    private let renewalLock = NSLock()

    init(store: any PortalStorage, client: String, token: String) {
        self.store = store
        self.client = client
        self.token = token
    }

    deinit { release() }

    /// Gives the lease back. Harmless when already released or taken over.
    public func release() {
        let wasReleased = released.withLock { value in
            defer { value = true }
            return value
        }
        guard !wasReleased else { return }
        renewalLock.withLock {
            renewal?.cancel()
            renewal = nil
        }
        store.releaseLease(client: client, token: token)
    }

    /// Renews the lease every third of `ttl` until it is released, so that a run longer than
    /// the lease's duration keeps it (a process that dies stops renewing, and its lease
    /// expires). A renewal that finds the lease taken over stops; the run's write then
    /// finds it lost and writes nothing.
    func keepRenewed(ttl: TimeInterval) {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        let interval = max(1, ttl / 3)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self, !released.withLock({ $0 }) else { return }
            // A failure is left to the fencing check at the write, which writes nothing unless the
            // lease is still this one; a lease taken over is not renewed again.
            do {
                try store.renewLease(client: client, token: token, ttl: ttl)
            } catch is LeaseError {
                renewalLock.withLock { renewal?.cancel() }
            } catch {
                // The store unreachable for now: the next renewal tries again.
            }
        }
        renewalLock.withLock {
            guard !released.withLock({ $0 }) else { return }
            renewal = timer
            timer.resume()
        }
    }

    /// Pushes the expiry `ttl` seconds ahead; fails if the lease was taken over meanwhile.
    public func renew(ttl: TimeInterval) throws(StoreError) {
        try storeOperation("renewing the lease of client \(client)") {
            try store.renewLease(client: client, token: token, ttl: ttl)
        }
    }

    /// The message of a lease lost before a write.
    static func lost(client: String, holder: LeaseHolder?) -> LeaseError {
        LeaseError(client: client, holder: holder,
                   message: "this run lost its lease on client \(client) (it expired and another dirbridge took it); nothing was written",
                   lost: true)
    }

    /// Inside an SQLite write transaction: throws unless the lease row is still this lease's.
    func verify(_ db: Database) throws {
        guard let token = try String.fetchOne(db, sql: "SELECT token FROM leases WHERE client = ?", arguments: [client]),
              token == self.token
        else {
            throw Self.lost(client: client, holder: try PortalStore.leaseHolder(client: client, db: db))
        }
    }
}

extension PortalStore {
    /// How long a lease lasts unless renewed: a sync of 100k users takes seconds, and a
    /// lease left by a process on another host that died is free again after this.
    public static let defaultLeaseDuration: TimeInterval = 10 * 60

    public func releaseLease(client: String, token: String) {
        _ = try? pool.write { db in
            try db.execute(sql: "DELETE FROM leases WHERE client = ? AND token = ?", arguments: [client, token])
        }
    }

    public func renewLease(client: String, token: String, ttl: TimeInterval) throws {
        try pool.write { db in
            guard let current = try String.fetchOne(db, sql: "SELECT token FROM leases WHERE client = ?", arguments: [client]), current == token else {
                throw StoreLease.lost(client: client, holder: try Self.leaseHolder(client: client, db: db))
            }
            try db.execute(sql: "UPDATE leases SET expires_at = ? WHERE client = ?",
                           arguments: [StoreTime.text(Date().addingTimeInterval(ttl)), client])
        }
    }

    public func tryLease(client: String, holder: String, ttl: TimeInterval) throws(StoreError) -> Result<StoreLease, LeaseError> {
        let token = UUID().uuidString
        let result = try storeOperation("taking the lease of client \(client)") {
            try pool.write { db -> Result<Void, LeaseError> in
                if let current = try Self.leaseHolder(client: client, db: db), !current.isStale() {
                    return .failure(.held(client: client, by: current))
                }
                let now = Date()
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO leases (client, holder, token, pid, host, process, acquired_at, expires_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [client, holder, token, getpid(), ProcessInfo.processInfo.hostName, LeaseHolder.currentProcess,
                                StoreTime.text(now), StoreTime.text(now.addingTimeInterval(ttl))])
                return .success(())
            }
        }
        // Built once the transaction committed: a lease object whose row never landed would
        // try to delete it from inside the failed write.
        return result.map { StoreLease(store: self, client: client, token: token) }
    }

    /// Drops the lease this process holds on `client`, from outside the run that took it: a
    /// scheduler stopping a run that will never write (see ``RunControl``).
    public func releaseOwnLease(client: String) throws(StoreError) {
        try storeOperation("releasing the lease of client \(client)") {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM leases WHERE client = ? AND pid = ? AND host = ? AND (process IS NULL OR process = ?)",
                               arguments: [client, getpid(), ProcessInfo.processInfo.hostName, LeaseHolder.currentProcess])
            }
        }
    }

    /// The current lease on `client`, if any (expired ones included).
    public func leaseHolder(client: String) throws(StoreError) -> LeaseHolder? {
        try storeOperation("reading the lease of client \(client)") {
            try pool.read { db in try Self.leaseHolder(client: client, db: db) }
        }
    }

    static func leaseHolder(client: String, db: Database) throws -> LeaseHolder? {
        try Row.fetchOne(db, sql: "SELECT holder, pid, host, acquired_at, expires_at, process FROM leases WHERE client = ?", arguments: [client])
            .map { LeaseHolder(holder: $0[0], pid: $0[1], host: $0[2], acquiredAt: $0[3], expiresAt: $0[4], process: $0[5]) }
    }

}

extension LeaseHolder {
    /// A lease is stale once it expired, or when its process is gone.
    func isStale(now: Date = Date()) -> Bool {
        if let expiry = StoreTime.date(expiresAt), expiry <= now { return true }
        return processIsGone
    }

    /// Whether the holding process is known to be gone: it ran in this very boot and PID
    /// namespace (same host name, same ``currentProcess``) and its pid is dead or a zombie.
    /// A holder in another namespace (a container sharing the host name) cannot be checked,
    /// and its lease lasts until it expires.
    var processIsGone: Bool {
        guard host == ProcessInfo.processInfo.hostName, pid != getpid() else { return false }
        if let process, process != Self.currentProcess { return false }
        if kill(pid, 0) != 0 { return errno == ESRCH }
        return Self.isZombie(pid)
    }

    /// This process's boot and PID namespace: `BOOT_ID/pid:[INODE]`, from
    /// /proc/sys/kernel/random/boot_id and /proc/self/ns/pid (nil where /proc has neither).
    static let currentProcess: String? = {
        let boot = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let namespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
        guard boot != nil || namespace != nil else { return nil }
        return "\(boot ?? "-")/\(namespace ?? "-")"
    }()

    /// A killed process not yet reaped (its parent is slow, or a container's PID 1 never reaps)
    /// still answers `kill(pid, 0)`; its state in /proc/PID/stat is `Z`.
    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
