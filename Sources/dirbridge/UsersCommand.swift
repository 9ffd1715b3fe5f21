import ArgumentParser
import DirBridgeCore

/// `dirbridge users`: the portal's client users, as the portal lists them.
struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "List client users: fields, role, user group, login, Global Admin, Group Manager, enabled.",
        discussion: "Without --client, every client's users are listed with a Client column."
    )

    @OptionGroup var options: StoreViewOptions

    @Option(name: .long, help: "Only this client's users (name, case-insensitive).")
    var client: String?

    @Option(name: .long, help: ArgumentHelp("Sort by this column: \(UserSortColumn.names).", valueName: "column"))
    var sort: String = UserSortColumn.email.rawValue

    @Flag(name: .long, help: "Sort in descending order.")
    var desc = false

    func validate() throws {
        guard UserSortColumn(rawValue: sort) != nil else {
            throw ValidationError("--sort \(sort) is not a column; use one of: \(UserSortColumn.names)")
        }
    }

    func run() throws {
        try ExitStatus.reporting {
            let store = try options.open()
            let column = UserSortColumn(rawValue: sort) ?? .email
            let rows = UserListing.sorted(try store.userListing(clientName: client), by: column, descending: desc)
            if options.json {
                print(try UserListing.json(rows), terminator: "")
            } else if rows.isEmpty {
                print("No client users.")
            } else {
                print(UserListing.text(rows, showClient: client == nil), terminator: "")
            }
        }
    }
}
