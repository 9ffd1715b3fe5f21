import ArgumentParser
import DirBridgeCore

/// `dirbridge explain MAPPING EMAIL`: why this user gets this group, role and flags.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Why a user gets their user group, role and flags: the rules that matched, through which groups.")

    @Argument(help: "The mapping file.") var mapping: String
    @Argument(help: "The user's email as the mapping renders it.") var email: String
    @Option(name: .long, help: ArgumentHelp("The portal store, to show what it holds now.", valueName: "path")) var store: String?
    @Flag(name: .long, help: "Print JSON.") var json = false
    @OptionGroup var output: OutputOptions

    func run() throws {
        let logger = output.makeLogger()
        try ExitStatus.reporting {
            let loaded = try MappingLoader.load(path: mapping)
            let explanation = try Explainer.explain(email, mapping: loaded, storePath: store, logger: logger)
            if json {
                print(try JSONOutput.encode(value: explanation), terminator: "")
                return
            }
            print("\(explanation.email)  \(explanation.dn)")
            print("\nDirectory entry (attributes the mapping reads):")
            for (name, values) in explanation.attributes.sorted(by: { $0.key < $1.key }) where !values.isEmpty {
                print("  \(name): \(values.joined(separator: " | "))")
            }
            print("\nGroups:")
            print(explanation.groups.isEmpty ? "  (none)" : explanation.groups.map { "  \($0)" }.joined(separator: "\n"))
            print("\nRules that matched:")
            print(explanation.decisions.isEmpty ? "  (none: defaults apply)" : explanation.decisions.map { "  \($0)" }.joined(separator: "\n"))
            print("\nResult: user group \(explanation.userGroup), role \(explanation.role), Global Admin \(explanation.globalAdmin ? "yes" : "no"), Group Manager \(explanation.groupManager ? "yes" : "no")"
                  + (explanation.disabledInDirectory ? ", disabled in the directory" : ""))
            if let stored = explanation.store {
                print("Store now:  user group \(stored["user_group"] ?? ""), role \(stored["role"] ?? ""), Global Admin \(stored["global_admin"] ?? ""), Group Manager \(stored["group_manager"] ?? ""), enabled \(stored["enabled"] ?? "")")
            } else {
                print("Store now:  not in the store")
            }
        }
    }
}
