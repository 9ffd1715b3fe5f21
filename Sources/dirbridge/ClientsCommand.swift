import ArgumentParser
import DirBridgeCore

/// `dirbridge clients`: the portal's clients with their dashboard numbers.
struct ClientsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients",
        abstract: "List clients: membership end date, users, locations, active, created."
    )

    @OptionGroup var options: StoreViewOptions

    func run() throws {
        try ExitStatus.reporting {
            let rows = try options.open().clientListing()
            if options.json {
                print(try ClientListing.json(rows), terminator: "")
            } else if rows.isEmpty {
                print("No clients.")
            } else {
                print(ClientListing.text(rows), terminator: "")
            }
        }
    }
}
