import Foundation
import Synchronization
import Testing
@testable import DirBridgeCore

/// A real PostgreSQL server on 127.0.0.1, started by `scripts/test-postgres` once per test
/// process, the first time a test needs it, and stopped by the script's watchdog once the
/// process is gone. Tests never share a database: each asks for a new one.
final class TestPostgres: Sendable {
    let directory: URL
    let env: [String: String]

    var host: String { env["PGHOST"]! }
    var port: String { env["PGPORT"]! }
    var user: String { env["PG_USER"]! }
    var password: String { env["PG_PASSWORD"]! }
    var passwordFile: String { env["PG_PASSWORD_FILE"]! }
    var caFile: String { env["CA_FILE"]! }
    var otherCAFile: String { env["OTHER_CA_FILE"]! }

    private static let shared = Mutex<Result<TestPostgres, HarnessError>?>(nil)
    private static let databases = Atomic<Int>(0)

    /// The process's server, started on first use.
    static func server() throws -> TestPostgres {
        try shared.withLock { current in
            if let current { return try current.get() }
            let result: Result<TestPostgres, HarnessError>
            do {
                result = .success(try TestPostgres())
            } catch {
                result = .failure(error as? HarnessError ?? HarnessError(description: "\(error)"))
            }
            current = result
            return try result.get()
        }
    }

    private init() throws {
        directory = try makeTemporaryDirectory("postgres")
        // The server runs as the postgres user, which must reach its folder.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        let result = try runProcess("/bin/bash", [repositoryRoot.appendingPathComponent("scripts/test-postgres").path, "start", directory.path,
                                                  "--owner-pid", String(ProcessInfo.processInfo.processIdentifier)])
        guard result.status == 0 else {
            throw HarnessError(description: "scripts/test-postgres start failed (\(result.status)): \(result.stderr)")
        }
        env = keyValueLines(result.stdout)
        // The stores opened by tests and by the CLI they run find the password as libpq's users would.
        setenv("PGPASSWORD", env["PG_PASSWORD"]!, 1)
    }

    /// A new, empty database owned by the test user; returns its name.
    func createDatabase(_ label: String) throws -> String {
        let number = Self.databases.wrappingAdd(1, ordering: .relaxed).newValue
        let name = "t\(ProcessInfo.processInfo.processIdentifier)_\(number)_" + label.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(30)
        let result = try runProcess("/bin/bash", [repositoryRoot.appendingPathComponent("scripts/test-postgres").path, "createdb", directory.path, name])
        guard result.status == 0 else { throw HarnessError(description: "scripts/test-postgres createdb \(name) failed: \(result.stderr)") }
        return name
    }

    /// The URL of `database` (no password: PGPASSWORD has it), plain TCP unless `query` says otherwise.
    func url(_ database: String, query: String = "sslmode=disable") -> String {
        "postgresql://\(user)@\(host):\(port)/\(database)" + (query.isEmpty ? "" : "?\(query)")
    }
}

/// The two implementations of the portal store a parameterised test runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { self == .sqlite ? "SQLite" : "PostgreSQL" }

    /// A new, empty store of this kind: an SQLite file's path in `folder`, or a new database's URL.
    func newLocation(in folder: URL, label: String) throws -> String {
        switch self {
        case .sqlite: return folder.appendingPathComponent("portal.sqlite").path
        case .postgres:
            let server = try TestPostgres.server()
            return server.url(try server.createDatabase(label))
        }
    }
}
