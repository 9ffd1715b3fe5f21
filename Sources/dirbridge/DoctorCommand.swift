import ArgumentParser
import DirBridgeCore
import Foundation

/// `dirbridge doctor MAPPING`: what works and what will not, each with what to do.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check everything a sync needs: DNS, TCP, TLS, the bind, limits, server features, clock, rule groups, the store.",
        discussion: """
            Reads only. Exit 0 when a sync would work (warnings such as a certificate expiring within 30 days or \
            tls_verify: false do not change it), 3 when the directory side would fail, 4 when the store side would, \
            1 for a bad mapping.
            """)

    @Argument(help: "The mapping file.")
    var mapping: String

    @Option(name: .long, help: ArgumentHelp("The portal store (SQLite file); overrides the mapping's store.", valueName: "path"))
    var store: String?

    @Flag(name: .long, help: "Print the checks as JSON: {mapping, client, checks: [{check, status, side, detail, next}], exit_code}.")
    var json = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let logger = output.makeLogger()
        let report = try ExitStatus.reporting {
            let loaded = try MappingLoader.load(path: mapping)
            return Doctor.run(loaded, storePath: store, logger: logger)
        }
        print(json ? try JSONOutput.encode(value: report) : report.text, terminator: "")
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}
