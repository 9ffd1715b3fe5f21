import Foundation
import PostgresNIO
import Testing
@testable import DirBridgeCore

/// Reaching a PostgreSQL store: TLS as `sslmode` says, the password sources, and errors that
/// say what to do and never hold the password. A real server (``TestPostgres``).
@Suite("PostgreSQL store connections")
struct PostgresConnectionTests {
    @Test("sslmode verify-full against the test CA connects over TLS; an unrelated CA is refused with a store error")
    func tls() throws {
        let server = try TestPostgres.server()
        let database = try server.createDatabase("tls")
        let verified = try PostgresStore(url: server.url(database, query: "sslmode=verify-full&sslrootcert=\(server.caFile)"))
        let ssl = try verified.session.exclusive { db in
            try db.row("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")?.flag("ssl")
        }
        #expect(ssl == true)
        // A session that hangs or vanishes mid-transaction does not hold the client's locks for long.
        let settings = try verified.session.exclusive { db in
            try db.row("""
                SELECT current_setting('lock_timeout') AS lock, current_setting('idle_in_transaction_session_timeout') AS idle,
                       current_setting('tcp_keepalives_idle') AS keepalive, current_setting('application_name') AS name
                """)
        }
        #expect(try settings?.text("lock") == "5min" && settings?.text("idle") == "5min")
        #expect(try settings?.text("keepalive") == "60" && settings?.text("name") == "dirbridge")
        #expect(verified.location.hasSuffix("?sslmode=verify-full"))
        let plain = try PostgresStore(url: server.url(database, query: "sslmode=disable"))
        #expect(try plain.session.exclusive { db in try db.row("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")?.flag("ssl") } == false)
        let foreign = #expect(throws: StoreError.self) {
            try PostgresStore(url: server.url(database, query: "sslmode=verify-full&sslrootcert=\(server.otherCAFile)"))
        }
        #expect(foreign?.code == .cannotOpen)
        #expect(foreign?.message.contains("cannot connect to the portal store postgresql://dirbridge@127.0.0.1:\(server.port)/\(database)") == true, "\(foreign?.message ?? "")")
    }

    @Test("the password from password_env, password_file (0600 only) or ~/.pgpass; a wrong one fails without showing it")
    func passwordSources() throws {
        let server = try TestPostgres.server()
        let database = try server.createDatabase("passwords")
        let url = server.url(database)
        let folder = try makeTemporaryDirectory("pg-passwords")
        // password_env
        setenv("DIRBRIDGE_TEST_DB_PASSWORD", server.password, 1)
        _ = try PostgresStore(url: url, password: StorePasswordSource(environmentVariable: "DIRBRIDGE_TEST_DB_PASSWORD"))
        let unset = #expect(throws: StoreError.self) {
            try PostgresStore(url: url, password: StorePasswordSource(environmentVariable: "DIRBRIDGE_TEST_UNSET_DB_PASSWORD"))
        }
        #expect(unset?.message.contains("DIRBRIDGE_TEST_UNSET_DB_PASSWORD, which is not set") == true)
        // password_file, refused while others may read it
        let file = folder.appendingPathComponent("db.password").path
        try (server.password + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        let readable = #expect(throws: StoreError.self) { try PostgresStore(url: url, password: StorePasswordSource(file: file)) }
        #expect(readable?.message.contains("chmod 600") == true)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        _ = try PostgresStore(url: url, password: StorePasswordSource(file: file))
        // A wrong password: exit 4, what to check, and never the password itself.
        let wrongFile = folder.appendingPathComponent("wrong.password").path
        try "not-the-password-7f3a\n".write(toFile: wrongFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: wrongFile)
        let wrong = #expect(throws: StoreError.self) { try PostgresStore(url: url, password: StorePasswordSource(file: wrongFile)) }
        #expect(wrong?.kind.exitCode == 4)
        #expect(wrong?.message.contains("password") == true)
        #expect(wrong?.message.contains("not-the-password-7f3a") == false)
        // libpq's ~/.pgpass (PGPASSFILE), used when nothing else names a password.
        let pgpass = folder.appendingPathComponent("pgpass").path
        try "# test\n127.0.0.1:\(server.port):*:dirbridge:\(server.password)\n".write(toFile: pgpass, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: pgpass)
        let address = try PostgresAddress(url: url, password: StorePasswordSource(), environment: ["PGPASSFILE": pgpass])
        #expect(address.password == server.password)
        let none = try PostgresAddress(url: url, password: StorePasswordSource(), environment: [:])
        #expect(none.password == nil)
    }

    @Test("the CLI: sync --store postgresql://… with a wrong password exits 4 and prints neither password")
    func cliWrongPassword() throws {
        let server = try TestPostgres.server()
        let database = try server.createDatabase("cli")
        let fixture = try EngineFixture("pg-cli", store: .sqlite)
        defer { fixture.slapd.stop() }
        let result = try runDirbridge(["sync", fixture.mappingPath, "--store", server.url(database), "--apply"],
                                      environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL, "PGPASSWORD": "wrong-db-password-91"])
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderr.contains("postgresql://dirbridge@127.0.0.1:\(server.port)/\(database)"))
        #expect(!result.stderr.contains("wrong-db-password-91") && !result.stdout.contains("wrong-db-password-91"))
        #expect(!result.stderr.contains("sync-secret"))
        let doctor = try runDirbridge(["doctor", fixture.mappingPath, "--store", server.url(database)],
                                      environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
        #expect(doctor.stdout.contains("reachable without TLS, writable"), "\(doctor.stdout)\n\(doctor.stderr)")
    }

    @Test("views never migrate an empty database; a password in --store is refused unseen; apply PLAN finds the password where the mapping said")
    func viewsPlansAndPasswords() throws {
        let server = try TestPostgres.server()
        let database = try server.createDatabase("plans")
        let url = server.url(database)
        func tables() throws -> Int {
            let session = try PostgresSession(try PostgresAddress(url: url, password: StorePasswordSource()))
            return try session.exclusive { db in Int(try db.row("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'")?.int("n") ?? -1) }
        }
        // A view on an empty database: no store, and it stays empty (a reporting role may lack CREATE).
        let empty = try runDirbridge(["users", "--store", url])
        #expect(empty.status == 4, "\(empty.stderr)")
        #expect(empty.stderr.contains("no portal store in postgresql://dirbridge@127.0.0.1:\(server.port)/\(database)"), "\(empty.stderr)")
        #expect(try tables() == 0)
        // A password in the URL is refused, and not echoed.
        let withPassword = url.replacingOccurrences(of: "://dirbridge@", with: "://dirbridge:secret-in-url-55@")
        for arguments in [["users", "--store", withPassword], ["clients", "--store", withPassword]] {
            let refused = try runDirbridge(arguments)
            #expect(refused.status == 4, "\(refused.stderr)")
            #expect(refused.stderr.contains("holds a password") && !refused.stderr.contains("secret-in-url-55"), "\(refused.stderr)")
        }
        // A plan made with the mapping's password_env: the plan names the variable, never the
        // password, and `apply` finds the password there with no PGPASSWORD around.
        let fixture = try EngineFixture("pg-plan", store: .sqlite) { text in
            text + "store:\n  postgres: \"\(url)\"\n  password_env: DIRBRIDGE_TEST_PG_STORE_PASSWORD\n"
        }
        defer { fixture.slapd.stop() }
        let planPath = (fixture.mappingPath as NSString).deletingLastPathComponent + "/plan.json"
        var environment = fixture.environment
        environment["DIRBRIDGE_TEST_PG_STORE_PASSWORD"] = server.password
        environment["PGPASSWORD"] = ""
        environment["PGPASSFILE"] = "/nonexistent"
        let planned = try runDirbridge(["sync", fixture.mappingPath, "--plan-out", planPath], environment: environment)
        #expect(planned.status == 0, "\(planned.stderr)")
        let planText = try String(contentsOfFile: planPath, encoding: .utf8)
        #expect(planText.contains("DIRBRIDGE_TEST_PG_STORE_PASSWORD") && !planText.contains(server.password))
        let applied = try runDirbridge(["apply", planPath], environment: environment)
        #expect(applied.status == 0, "\(applied.stderr)")
        let users = try runDirbridge(["users", "--store", url, "--json"])
        #expect(users.status == 0 && users.stdout.contains("lead1@example.com"), "\(users.stderr)")
    }

    @Test("a store an older dirbridge migrated (to v5): doctor reads it, views say to migrate, the next sync migrates it to v6 and v7")
    func upgradeFromV5() throws {
        let server = try TestPostgres.server()
        let database = try server.createDatabase("upgrade")
        let url = server.url(database)
        let fixture = try EngineFixture("pg-upgrade", store: .sqlite)
        defer { fixture.slapd.stop() }
        let first = try runDirbridge(["sync", fixture.mappingPath, "--store", url, "--apply"], environment: fixture.environment)
        #expect(first.status == 0, "\(first.stderr)")
        // Back to the schema of v5: no population indexes, no leases.process, no dirbridge_fold, the lower() indexes and the row trigger.
        let session = try PostgresSession(try PostgresAddress(url: url, password: StorePasswordSource()))
        try session.exclusive { db in
            try db.executeScript("""
                DELETE FROM dirbridge_migrations WHERE identifier IN ('v6-lease-process', 'v7-population-indexes');
                DROP INDEX client_users_population;
                DROP INDEX client_users_enabled_admins;
                ALTER TABLE leases DROP COLUMN process;
                DROP TRIGGER client_users_rules_on_insert ON client_users;
                DROP FUNCTION dirbridge_client_user_rules_inserted();
                CREATE TRIGGER client_users_rules_on_insert BEFORE INSERT ON client_users
                    FOR EACH ROW EXECUTE FUNCTION dirbridge_client_user_rules();
                DROP FUNCTION dirbridge_fold(text) CASCADE;
                CREATE UNIQUE INDEX user_groups_client_name ON user_groups(client_id, lower(name));
                CREATE UNIQUE INDEX client_users_client_email ON client_users(client_id, lower(email));
                CREATE UNIQUE INDEX sync_state_client_key ON sync_state(lower(client), key);
                CREATE UNIQUE INDEX leases_client ON leases(lower(client));
                CREATE UNIQUE INDEX directory_cache_entry ON directory_cache(lower(client), kind, key);
                INSERT INTO leases (client, holder, token, pid, host, acquired_at, expires_at)
                VALUES ('Engine Corp', 'run', 'old', 4194400, 'elsewhere', now(), now() + interval '1 hour');
                """)
        }
        let doctor = try runDirbridge(["doctor", fixture.mappingPath, "--store", url], environment: fixture.environment)
        #expect(doctor.stdout.contains("the next sync migrates it") && doctor.stdout.contains("held by `dirbridge run` (pid 4194400 on elsewhere"),
                "\(doctor.stdout)\n\(doctor.stderr)")
        let view = try runDirbridge(["users", "--store", url])
        #expect(view.status == 4 && view.stderr.contains("lacks migrations v6-lease-process, v7-population-indexes"), "\(view.stderr)")
        try session.exclusive { db in _ = try db.execute("DELETE FROM leases") }
        let upgraded = try runDirbridge(["sync", fixture.mappingPath, "--store", url, "--apply"], environment: fixture.environment)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        let users = try runDirbridge(["users", "--store", url])
        #expect(users.status == 0 && users.stdout.contains("lead1@example.com"), "\(users.stderr)")
        let indexes = try session.exclusive { db in
            try db.rows("SELECT indexdef FROM pg_indexes WHERE indexname IN ('client_users_client_email', 'directory_cache_email')").map { try $0.text("indexdef") }
        }
        #expect(indexes.count == 2 && indexes.allSatisfy { $0.contains("dirbridge_fold") }, "\(indexes)")
        // v7's indexes, created on the populated store, and the counts an incremental run takes from them.
        let population = try session.exclusive { db in
            (try db.rows("SELECT indexname FROM pg_indexes WHERE indexname IN ('client_users_population', 'client_users_enabled_admins')").count,
             try db.row(PostgresSchema.populationSQL, PostgresBindings([Int64(1)]))?.int("directory"),
             try db.row("SELECT count(*) AS n FROM client_users WHERE client_id = 1 AND source = 'directory'")?.int("n"))
        }
        #expect(population.0 == 2 && population.1 == population.2 && (population.1 ?? 0) > 0, "\(population)")
    }
}
