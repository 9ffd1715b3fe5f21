import Foundation
import GRDB

/// What `dirbridge doctor` says of a store: reachable, writable, its schema, the lease.
/// Reads only: it never creates or migrates a store, and its write test is rolled back.
public struct StoreHealth: Sendable, Equatable {
    /// All well: where, the schema, the lease.
    public var summary: String
    /// Something that would make a sync fail.
    public var problem: String?
    /// Something to know that does not stop a sync.
    public var warning: String?
    /// What to do about the problem or the warning.
    public var next: String?

    public static func check(path: String, client: String) -> StoreHealth {
        let manager = FileManager.default
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard manager.fileExists(atPath: path) else {
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                return StoreHealth(summary: "", problem: "no store at \(path), and its folder \(folder) does not exist",
                                   next: "create the folder (mode 0700, owned by the account that runs dirbridge) or fix the store path")
            }
            let probe = URL(fileURLWithPath: folder).appendingPathComponent(".dirbridge-doctor-\(getpid())").path
            guard manager.createFile(atPath: probe, contents: Data()) else {
                return StoreHealth(summary: "", problem: "no store at \(path) yet, and its folder \(folder) is not writable: the first apply could not create it",
                                   next: "let the account that runs dirbridge write to \(folder)")
            }
            try? manager.removeItem(atPath: probe)
            return StoreHealth(summary: "no store at \(path) yet: the first apply creates it (its folder is writable)")
        }
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            let applied = try queue.read { db in try StoreSchema.migrator.appliedIdentifiers(db) }
            let unknown = applied.subtracting(StoreSchema.knownIdentifiers)
            if !unknown.isEmpty {
                return StoreHealth(summary: "", problem: "\(path) was written by a newer dirbridge (migrations \(unknown.sorted().joined(separator: ", ")))",
                                   next: "run the dirbridge that wrote it, or upgrade this one")
            }
            let integrity = try queue.read { db in try String.fetchOne(db, sql: "PRAGMA quick_check(1)") } ?? "?"
            guard integrity == "ok" else {
                return StoreHealth(summary: "", problem: "\(path) fails SQLite's integrity check: \(integrity)",
                                   next: "restore the store from a backup; dirbridge never writes to a damaged store")
            }
            do {
                // A real write, rolled back: BEGIN IMMEDIATE alone succeeds on a read-only file.
                try queue.inTransaction(.immediate) { db in
                    try db.execute(sql: "CREATE TABLE main.dirbridge_doctor_probe (x)")
                    return .rollback
                }
            } catch {
                let detail = (error as? DatabaseError)?.message ?? "\(error)"
                return StoreHealth(summary: "", problem: "\(path) cannot be written: \(detail)",
                                   next: "give the account that runs dirbridge write access to \(path), its -wal and -shm files and its folder (and check the file system is not read-only)")
            }
            let known = StoreSchema.knownIdentifiers
            let pending = known.subtracting(applied)
            let schema = applied.isEmpty ? "an empty database (the first sync adds the schema)"
                : pending.isEmpty ? "schema up to date (\(applied.count) migrations)" : "schema \(applied.count) of \(known.count) migrations (the next sync migrates it)"
            // A store an older dirbridge wrote may have another leases table: only this build's is read.
            let lease = try queue.read { db -> String? in
                guard try db.tableExists("leases"), try db.columns(in: "leases").contains(where: { $0.name == "client" }) else { return nil }
                return try Row.fetchOne(db, sql: "SELECT holder, pid, host, expires_at FROM leases WHERE client = ?", arguments: [client]).flatMap { row in
                    let expires: String = row["expires_at"]
                    if let expiry = StoreTime.date(expires), expiry <= Date() { return nil }   // expired: the next run takes it over
                    return "`dirbridge \(row["holder"] as String)` (pid \(row["pid"] as Int64) on \(row["host"] as String), expires \(expires))"
                }
            }
            let summary = "\(path): writable, \(schema), " + (lease.map { "lease of \(client) held by \($0)" } ?? "no lease held on \(client)")
            if let lease {
                return StoreHealth(summary: summary, warning: summary, next: "a sync of \(client) now would wait for or be refused by \(lease)")
            }
            return StoreHealth(summary: summary)
        } catch {
            let detail = (error as? DatabaseError)?.message ?? "\(error)"
            return StoreHealth(summary: "", problem: "cannot open the store \(path): \(detail)", next: "check the path, the file's permissions and that it is a dirbridge store")
        }
    }
}
