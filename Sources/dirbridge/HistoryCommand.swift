import ArgumentParser
import DirBridgeCore

/// `dirbridge history`: who changed what, when, and why.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show history entries: editor, action, date, and each field's old -> new."
    )

    @OptionGroup var options: StoreViewOptions

    @Option(name: .long, help: "Only the history of the client user with this email (case-insensitive).")
    var user: String?

    @Option(name: .customLong("run"), help: ArgumentHelp("Only the entries written by this sync run.", valueName: "id"))
    var runID: Int64?

    @Option(name: .long, help: "Only this client's history.")
    var client: String?

    func run() throws {
        try ExitStatus.reporting {
            let store = try options.open()
            let rows = try store.historyListing(userEmail: user, runID: runID, clientName: client)
            if options.json {
                print(try HistoryListing.json(rows), terminator: "")
            } else if rows.isEmpty, let user,
                      try !store.userListing(clientName: client).contains(where: { $0.email.lowercased() == user.lowercased() }) {
                print("No client user with email \(user)\(client.map { " in client \($0)" } ?? "") in \(store.path).")
            } else if rows.isEmpty {
                print("No history entries.")
            } else {
                print(HistoryListing.text(rows), terminator: "")
            }
        }
    }
}
