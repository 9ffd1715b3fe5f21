import DirBridgeCore
import Foundation
import GRDB
import Logging

/// The bind password of every test slapd's `sync` account, in the variable the fixture
/// mappings name; evaluated once, by the first fixture that needs it.
let testBindPassword: Void = { setenv("DIRBRIDGE_TEST_BIND_PASSWORD", "sync-secret", 1) }()

/// A test fixture that syncs one mapping into its own store file, in process or through the CLI.
protocol SyncFixture: PortalStoreReading {
    var mapping: Mapping { get }
    /// The environment of the CLI: the variables the mapping file names.
    var environment: [String: String] { get }
    /// Whether `sync` reads incrementally (false unless the fixture says so).
    var incremental: Bool { get }
}

extension SyncFixture {
    var incremental: Bool { false }

    @discardableResult
    func sync(
        apply: Bool = true, overrides: GuardOverrides = GuardOverrides(), options: IncrementalOptions = IncrementalOptions(),
        logger: Logger = Logger(label: "test")
    ) throws -> SyncOutcome {
        try SyncEngine.run(
            SyncRequest(mapping: mapping, storePath: storePath, apply: apply, overrides: overrides, incremental: incremental,
                        incrementalOptions: options),
            logger: logger)
    }

    /// Runs the CLI against this fixture's directory.
    func cli(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runDirbridge(arguments, environment: environment)
    }

    /// Everything a sync writes but `sync_runs` and the cache: proves a refused, failed or
    /// stopped run wrote nothing else.
    func portalContents() throws -> String {
        try ["clients", "user_groups", "client_users", "history", "invitations"].map { table in
            "\(table):\(try rows("SELECT * FROM \(table) ORDER BY id").map(\.description).joined(separator: "|"))"
        }.joined(separator: "\n")
    }
}
