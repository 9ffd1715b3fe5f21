import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opening a store safely when other processes open it too: two dirbridge runs creating the
/// same new store at once (cron fires every client's sync together), or the portal holding it.
///
/// - A new store file is created empty with mode 0600 (see ``PrivateFile``) before SQLite opens
///   it; SQLite gives the `-wal` and `-shm` files the same mode.
/// - dirbridge processes take an exclusive advisory lock on the store's folder while they open,
///   switch to WAL and migrate, so two of them never race on a brand-new file (two connections
///   both switching a new file to WAL deadlock, and SQLite answers one with "database is locked"
///   at once, without waiting for the busy timeout). The lock is on the folder, never on the
///   database file: closing another descriptor of that file would drop SQLite's own locks.
/// - A "database is locked" that still comes (the portal's process holding the file) is retried
///   until `timeout` has passed; the busy timeout applies from the first statement as well.
struct StoreOpening: ~Copyable {
    let path: String
    let timeout: TimeInterval
    private let folderDescriptor: Int32

    init(path: String, createIfMissing: Bool, timeout: TimeInterval = 10) throws(StoreError) {
        self.path = path
        self.timeout = timeout
        let folder = (path as NSString).deletingLastPathComponent
        let descriptor = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        folderDescriptor = descriptor
        if descriptor >= 0 {
            // Bounded: a process stuck while holding the lock delays the others, never blocks them.
            let deadline = Date().addingTimeInterval(max(timeout, 1) * 3)
            while flock(descriptor, LOCK_EX | LOCK_NB) != 0 && (errno == EWOULDBLOCK || errno == EINTR) && Date() < deadline {
                usleep(20_000)
            }
        }
        if createIfMissing {
            do { try PrivateFile.createEmpty(atPath: path) } catch {
                throw StoreError(.cannotOpen, "cannot open the portal store \(path): \(error.description)")
            }
        }
    }

    deinit {
        if folderDescriptor >= 0 { close(folderDescriptor) }  // closing releases the lock
    }

    /// Runs `body`, again after a short pause while it fails with SQLITE_BUSY, until `timeout`.
    func retryingBusy<T>(_ body: () throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do { return try body() } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && Date() < deadline {
                usleep(50_000)
            }
        }
    }
}
