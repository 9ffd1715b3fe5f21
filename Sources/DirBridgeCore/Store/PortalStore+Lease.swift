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

    public var description: String {
        "`dirbridge \(holder)` (pid \(pid) on \(host), since \(acquiredAt), lease expires \(expiresAt))"
    }
}

/// Another dirbridge holds the client's lease (exit 5), or this one lost it before writing.
public struct LeaseError: DirBridgeFailure {
    public var client: String
    public var holder: LeaseHolder?
    public var message: String

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
/// a safety net, when the value goes away).
///
/// Every write of the sync checks, inside its transaction, that the lease is still this
/// one (a fencing token), so a process that lost its lease can never write.
public final class StoreLease: Sendable {
    public let client: String
    public let token: String
    let store: PortalStore
    private let released = Mutex(false)

    init(store: PortalStore, client: String, token: String) {
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
        _ = try? store.pool.write { db in
            try db.execute(sql: "DELETE FROM leases WHERE client = ? AND token = ?", arguments: [client, token])
        }
    }

    /// Pushes the expiry `ttl` seconds ahead; fails if the lease was taken over meanwhile.
    public func renew(ttl: TimeInterval) throws(StoreError) {
        try storeOperation("renewing the lease of client \(client)") {
            try store.pool.write { db in try self.verify(db, renewing: ttl) }
        }
    }

    /// Inside a write transaction: throws unless the lease row is still this lease's.
    func verify(_ db: Database, renewing ttl: TimeInterval? = nil) throws {
        guard let token = try String.fetchOne(db, sql: "SELECT token FROM leases WHERE client = ?", arguments: [client]),
              token == self.token
        else {
            throw LeaseError(client: client, holder: try PortalStore.leaseHolder(client: client, db: db),
                             message: "this run lost its lease on client \(client) (it expired and another dirbridge took it); nothing was written")
        }
        if let ttl {
            try db.execute(sql: "UPDATE leases SET expires_at = ? WHERE client = ?",
                           arguments: [StoreTime.text(Date().addingTimeInterval(ttl)), client])
        }
    }
}

extension PortalStore {
    /// How long a lease lasts unless renewed: a sync of 100k users takes seconds, and a
    /// lease left by a process on another host that died is free again after this.
    public static let defaultLeaseDuration: TimeInterval = 10 * 60

    /// Takes the lease on `client`'s writes for `holder`, or throws ``LeaseError`` naming
    /// who has it. A lease whose process is gone (same host) or whose expiry has passed is
    /// taken over. With `wait`, polls every `pollInterval` until free or `shouldStop()`.
    public func acquireLease(
        client: String, holder: String, ttl: TimeInterval = PortalStore.defaultLeaseDuration,
        wait: Bool = false, pollInterval: TimeInterval = 1, shouldStop: () -> Bool = { false },
        onWait: (LeaseHolder) -> Void = { _ in }
    ) throws -> StoreLease {
        var told = false
        while true {
            switch try tryLease(client: client, holder: holder, ttl: ttl) {
            case .success(let lease):
                return lease
            case .failure(let error):
                guard wait, !shouldStop() else { throw error }
                if !told, let current = error.holder { onWait(current); told = true }
                Thread.sleep(forTimeInterval: pollInterval)
            }
        }
    }

    private func tryLease(client: String, holder: String, ttl: TimeInterval) throws(StoreError) -> Result<StoreLease, LeaseError> {
        let token = UUID().uuidString
        let host = ProcessInfo.processInfo.hostName
        let pid = getpid()
        return try storeOperation("taking the lease of client \(client)") {
            try pool.write { db -> Result<StoreLease, LeaseError> in
                if let current = try Self.leaseHolder(client: client, db: db), !Self.isStale(current) {
                    return .failure(.held(client: client, by: current))
                }
                let now = Date()
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO leases (client, holder, token, pid, host, acquired_at, expires_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [client, holder, token, pid, host, StoreTime.text(now), StoreTime.text(now.addingTimeInterval(ttl))])
                return .success(StoreLease(store: self, client: client, token: token))
            }
        }
    }

    /// Drops the lease this process holds on `client`, from outside the run that took it: a
    /// scheduler stopping a run that will never write (see ``RunControl``).
    public func releaseOwnLease(client: String) throws(StoreError) {
        try storeOperation("releasing the lease of client \(client)") {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM leases WHERE client = ? AND pid = ? AND host = ?",
                               arguments: [client, getpid(), ProcessInfo.processInfo.hostName])
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
        try Row.fetchOne(db, sql: "SELECT holder, pid, host, acquired_at, expires_at FROM leases WHERE client = ?", arguments: [client])
            .map { LeaseHolder(holder: $0[0], pid: $0[1], host: $0[2], acquiredAt: $0[3], expiresAt: $0[4]) }
    }

    /// A lease is stale once it expired, or when its process is gone on this very host.
    static func isStale(_ lease: LeaseHolder, now: Date = Date()) -> Bool {
        if let expiry = StoreTime.date(lease.expiresAt), expiry <= now { return true }
        if lease.host == ProcessInfo.processInfo.hostName, lease.pid != getpid() {
            if kill(lease.pid, 0) != 0 { return errno == ESRCH }
            return isZombie(lease.pid)
        }
        return false
    }

    /// A killed process not yet reaped (its parent is slow, or a container's PID 1 never reaps)
    /// still answers `kill(pid, 0)`; its state in /proc/PID/stat is `Z`.
    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
