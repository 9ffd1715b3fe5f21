import Foundation
import PostgresNIO

extension StoreHealth {
    /// `dirbridge doctor` on a PostgreSQL store: it connects, reads the migrations and the
    /// lease, and proves it may write with a table created and rolled back. It never migrates.
    public static func checkPostgres(url: String, password: StorePasswordSource, client: String) -> StoreHealth {
        let display = PostgresAddress.redacted(url)
        do {
            let address = try PostgresAddress(url: url, password: password)
            let session = try PostgresSession(address)
            return try session.exclusive { db in
                let hasMigrations = try db.row("SELECT to_regclass('dirbridge_migrations') IS NOT NULL AS present")?.flag("present") ?? false
                let applied = hasMigrations ? Set(try db.rows("SELECT identifier FROM dirbridge_migrations").map { try $0.text("identifier") }) : []
                let unknown = applied.subtracting(StoreSchema.knownIdentifiers)
                if !unknown.isEmpty {
                    return StoreHealth(summary: "", problem: "\(address.display) was written by a newer dirbridge (migrations \(unknown.sorted().joined(separator: ", ")))",
                                       next: "run the dirbridge that wrote it, or upgrade this one")
                }
                do {
                    try db.execute("BEGIN")
                    try db.execute("CREATE TABLE dirbridge_doctor_probe (x integer)")
                    try db.execute("ROLLBACK")
                } catch {
                    _ = try? db.execute("ROLLBACK")
                    return StoreHealth(summary: "", problem: "\(address.display) cannot be written: \(PostgresSession.describe(error))",
                                       next: "GRANT CREATE ON DATABASE \(address.database) (and ON SCHEMA public) TO \(address.user), or use the database's owner")
                }
                let known = StoreSchema.knownIdentifiers
                let pending = known.subtracting(applied)
                let schema = applied.isEmpty ? "an empty database (the first sync adds the schema)"
                    : pending.isEmpty ? "schema up to date (\(applied.count) migrations)" : "schema \(applied.count) of \(known.count) migrations (the next sync migrates it)"
                // Read with SQL every schema since the leases table came (v3) understands: a store
                // the previous dirbridge migrated has no `process` column nor `dirbridge_fold` yet.
                let lease = applied.contains(StoreSchema.incrementalSync)
                    ? try db.row("""
                        SELECT holder, pid, host, \(PostgresStore.iso("expires_at")) FROM leases
                        WHERE lower(client COLLATE "C") = lower($1 COLLATE "C") AND expires_at > now()
                        """, PostgresBindings([client])).map { row in
                        "`dirbridge \(try row.text("holder"))` (pid \(try row.decode("pid", as: Int32.self)) on \(try row.text("host")), expires \(try row.text("expires_at")))"
                    }
                    : nil
                let tls = address.sslMode == .disable ? "without TLS" : "sslmode \(address.sslMode.rawValue)"
                let summary = "\(address.display): reachable \(tls), writable, \(schema), " + (lease.map { "lease of \(client) held by \($0)" } ?? "no lease held on \(client)")
                if let lease {
                    return StoreHealth(summary: summary, warning: summary, next: "a sync of \(client) now would wait for or be refused by \(lease)")
                }
                return StoreHealth(summary: summary)
            }
        } catch {
            let detail = (error as? StoreError)?.message ?? PostgresSession.describe(error)
            return StoreHealth(summary: "", problem: detail.contains(display) || detail.contains("postgresql://") ? detail : "\(display): \(detail)",
                               next: "check the URL, that the server accepts connections from this host, and the password source")
        }
    }
}
