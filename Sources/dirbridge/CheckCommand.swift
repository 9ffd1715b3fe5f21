import ArgumentParser
import DirBridgeCore
import Foundation

/// `dirbridge check MAPPING`: connect, bind, count users and groups, show a few mapped users.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Connect, bind, count users and groups, and show a few mapped users (5 unless --sample).",
        discussion: "Reads only. Exit 0 when the directory answered; 1 for a bad mapping; 3 for a directory error.")

    @Argument(help: "The mapping file.")
    var mapping: String

    @Flag(name: .long, help: "Print the report as JSON.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("How many users to show with their attributes and how they map.", valueName: "count"))
    var sample = 5

    func validate() throws {
        if sample < 0 { throw ValidationError("--sample takes a count of 0 or more") }
    }

    @OptionGroup var output: OutputOptions

    func run() throws {
        let logger = output.makeLogger()
        try ExitStatus.reporting {
            let loaded = try MappingLoader.load(path: mapping)
            let report = try DirectoryCheck.run(loaded, sampleSize: sample, logger: logger)
            if json {
                print(try JSONOutput.encode(value: report), terminator: "")
                return
            }
            print("connected to \(report.url) as \(loaded.directory.bindDN ?? "(anonymous)")")
            print("users:  \(report.users) under \(loaded.users.base) matching \(loaded.users.filter)")
            if let groups = report.groups, let section = loaded.groups {
                print("groups: \(groups) under \(section.base) matching \(section.filter)")
            }
            if report.references > 0 {
                print("search continuation references skipped: \(report.references)")
            }
            for user in report.sample {
                print("\n\(user.dn)")
                for (name, values) in user.attributes.sorted(by: { $0.key < $1.key }) where !values.isEmpty {
                    print("  \(name): \(values.joined(separator: " | "))")
                }
                if let mapped = user.mapped {
                    print("  → " + mapped.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
                } else if let skipped = user.skipped {
                    print("  → skipped: \(skipped)")
                }
            }
        }
    }
}
