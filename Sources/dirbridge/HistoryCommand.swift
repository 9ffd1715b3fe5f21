import ArgumentParser
import DirBridgeCore

/// `dirbridge history`: who changed what, when, and why.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show history entries: editor, action, date, and each field's old -> new.",
        discussion: """
            With --privileges: every grant and removal of Global Admin, Group Manager and the privileged roles \
            (--privileged-role, default Admin), with who, when, the run and the reason: the list an access review needs. \
            Disabling a user who holds one removes it; re-enabling grants it again.
            """
    )

    @OptionGroup var options: StoreViewOptions

    @Option(name: .long, help: "Only the history of the client user with this email (case-insensitive).")
    var user: String?

    @Option(name: .customLong("run"), help: ArgumentHelp("Only the entries written by this sync run.", valueName: "id"))
    var runID: Int64?

    @Option(name: .long, help: "Only this client's history.")
    var client: String?

    @Flag(name: .long, help: "Only grants and removals of Global Admin, Group Manager and privileged roles.")
    var privileges = false

    @Option(name: .long, help: ArgumentHelp("Only entries at or after this moment (ISO-8601 with a time zone, or a date).", valueName: "time"))
    var since: Moment?

    @Option(name: .customLong("privileged-role"), help: ArgumentHelp("With --privileges: a role that counts as a privilege (repeatable; default Admin, as guards.privileged_roles).", valueName: "role"))
    var privilegedRoles: [String] = []

    func validate() throws {
        if !privilegedRoles.isEmpty && !privileges { throw ValidationError("--privileged-role goes with --privileges") }
        if privileges && (user != nil || runID != nil) { throw ValidationError("--privileges lists every user's grants; filter them with --client and --since") }
    }

    func run() throws {
        try ExitStatus.reporting {
            let store = try options.open()
            if privileges {
                let events = AccessHistory.privilegeEvents(
                    try store.userTimelines(clientName: client),
                    privilegedRoles: privilegedRoles.isEmpty ? GuardSettings.defaultPrivilegedRoles : privilegedRoles, since: since?.storeText)
                if options.json {
                    print(try JSONOutput.encode(events), terminator: "")
                } else if events.isEmpty {
                    print("No grants or removals of Global Admin, Group Manager or privileged roles\(since.map { " since \($0.storeText)" } ?? "").")
                } else {
                    print(AccessHistory.text(events), terminator: "")
                }
                return
            }
            let rows = try store.historyListing(userEmail: user, runID: runID, clientName: client)
                .filter { row in since.map { row.at >= $0.storeText } ?? true }
            if options.json {
                print(try HistoryListing.json(rows), terminator: "")
            } else if rows.isEmpty, let user,
                      try !store.userListing(clientName: client).contains(where: { $0.email.lowercased() == user.lowercased() }) {
                print("No client user with email \(user)\(client.map { " in client \($0)" } ?? "") in \(store.location).")
            } else if rows.isEmpty {
                print("No history entries.")
            } else {
                print(HistoryListing.text(rows), terminator: "")
            }
        }
    }
}
