import ArgumentParser
import DirBridgeCore

/// `dirbridge users`: the portal's client users, as the portal lists them.
struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "List client users: fields, role, user group, login, Global Admin, Group Manager, enabled.",
        discussion: """
            Without --client, every client's users are listed with a Client column. With --as-of, the view as it \
            stood at that moment, reconstructed from the history rows; where history cannot tell (users older than \
            dirbridge's history, edits made without a history row) it says so instead of guessing.
            """
    )

    @OptionGroup var options: StoreViewOptions

    @Option(name: .long, help: "Only this client's users (name, case-insensitive).")
    var client: String?

    @Flag(name: .long, help: "With --client PARENT: the parent account's view, its users and those of every client under it (with a Client column).")
    var withChildren = false

    @Option(name: .long, help: ArgumentHelp("Sort by this column: \(UserSortColumn.names).", valueName: "column"))
    var sort: String = UserSortColumn.email.rawValue

    @Flag(name: .long, help: "Sort in descending order.")
    var desc = false

    @Option(name: .long, help: ArgumentHelp("The view as it stood at this moment (ISO-8601 with a time zone, or a date for midnight UTC), from the history.", valueName: "time"))
    var asOf: Moment?

    func validate() throws {
        if withChildren && client == nil { throw ValidationError("--with-children needs --client PARENT") }
        guard UserSortColumn(rawValue: sort) != nil else {
            throw ValidationError("--sort \(sort) is not a column; use one of: \(UserSortColumn.names)")
        }
    }

    func run() throws {
        try ExitStatus.reporting {
            let store = try options.open()
            let column = UserSortColumn(rawValue: sort) ?? .email
            if let asOf {
                let view = AccessView.asOf(asOf.storeText, timelines: try store.userTimelines(clientName: client, withChildren: withChildren))
                let rows = UserListing.sorted(view.rows, by: column, descending: desc)
                if options.json {
                    print(try AccessView.json(view, rows: rows), terminator: "")
                } else {
                    print(AccessView.text(view, rows: rows, showClient: client == nil || withChildren), terminator: "")
                }
                return
            }
            let rows = UserListing.sorted(try store.userListing(clientName: client, withChildren: withChildren), by: column, descending: desc)
            if options.json {
                print(try UserListing.json(rows), terminator: "")
            } else if rows.isEmpty {
                print("No client users.")
            } else {
                print(UserListing.text(rows, showClient: client == nil || withChildren), terminator: "")
            }
        }
    }
}
