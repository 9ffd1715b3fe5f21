import ArgumentParser
import DirBridgeCore
import Foundation

/// The `dirbridge` command: keeps a client portal's users in step with a corporate directory.
@main
struct DirBridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dirbridge",
        abstract: "Keep a client portal's users in step with an LDAP directory.",
        // `dirbridge 0.1.0 (libldap 2.5.13, SQLite 3.40.1)`: the libraries it runs with, asked at startup.
        version: "dirbridge \(DirBridge.versionLine)",
        subcommands: [ValidateCommand.self, CheckCommand.self, DoctorCommand.self, SyncCommand.self, ApplyCommand.self, RunCommand.self, ExplainCommand.self, UsersCommand.self, HistoryCommand.self, RunsCommand.self, ClientsCommand.self]
    )

    /// Parses and runs; bad arguments exit 1, as a bad mapping does, not swift-argument-parser's 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                ExitStatus.printError(fullMessage(for: error))
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}

/// Options every view of the store shares.
struct StoreViewOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The portal store to read: an SQLite file, or a postgresql:// URL (password from PGPASSWORD or ~/.pgpass).", valueName: "path"))
    var store: String

    @Flag(name: .long, help: "Print a JSON array of objects with stable snake_case keys.")
    var json = false

    /// Opens the store for reading; a missing file is an error, never an empty new store.
    func open() throws(StoreError) -> any PortalStorage {
        try openPortalStorage(store, createIfMissing: false, readOnly: true)
    }
}
