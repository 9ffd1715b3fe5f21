import ArgumentParser
import DirBridgeCore

/// `dirbridge runs`: every sync run, dry or applied, with its counts.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List sync runs: id, mode, status, counts, duration, error."
    )

    @OptionGroup var options: StoreViewOptions

    func run() throws {
        try ExitStatus.reporting {
            let rows = try options.open().runListing()
            if options.json {
                print(try RunListing.json(rows), terminator: "")
            } else if rows.isEmpty {
                print("No sync runs.")
            } else {
                print(RunListing.text(rows), terminator: "")
            }
        }
    }
}
