import ArgumentParser
import DirBridgeCore
import Foundation

/// `dirbridge apply PLAN`: applies a plan saved by `sync --plan-out` exactly as reviewed, or refuses.
struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply a saved plan exactly as reviewed; refused if anything moved since.",
        discussion: """
            Never reads the directory. Refused (exit 5, nothing written but a refused sync_runs row) when the plan \
            file was edited, it was applied already, it is older than --max-age, the mapping file changed, a user, \
            user group or the client it touches changed in the store, or it would now break a guard (last Global \
            Admin, max_disable, max_demote, max_promote, protected users). With --dry-run, checks and shows, and writes nothing.
            """)

    @Argument(help: "The plan file saved by `dirbridge sync MAPPING --plan-out FILE`.")
    var plan: String

    @Option(name: .long, help: ArgumentHelp("The portal store (SQLite file); default: the store the plan was made against.", valueName: "path"))
    var store: String?

    @Option(name: .long, help: ArgumentHelp("Refuse a plan made longer ago than this: 30m, 24h, 2d.", valueName: "duration"))
    var maxAge = DurationText(seconds: ApplyRequest.defaultMaxAge)

    @Flag(name: .long, help: "Check the plan against the store and show it; write nothing. Exits 5 when an apply would be refused.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp("With --dry-run: write the plan and the check as one self-contained HTML page.", valueName: "plan.html"))
    var report: String?

    @Flag(name: .long, help: "Apply although a guard objects (last Global Admin, max_disable, max_demote, max_promote); never for protected users.")
    var force = false

    @Flag(name: .long, help: "Let --report replace an existing file that is not a dirbridge report (never the plan).")
    var overwrite = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard maxAge.seconds > 0 else {
            throw ValidationError("--max-age takes a duration like 30m, 24h or 2d, not \(maxAge)")
        }
        if report != nil && !dryRun {
            throw ValidationError("--report goes with --dry-run (a report of the plan before it is applied)")
        }
    }

    func run() throws {
        let logger = output.makeLogger()
        try ExitStatus.reporting {
            try report.map { try PlanFileTarget(path: $0, kind: .report).check(inputs: [plan], overwrite: overwrite) }
            let request = ApplyRequest(planPath: plan, storePath: store, maxAge: maxAge.seconds,
                                       force: force, dryRun: dryRun)
            let outcome = try PlanApplier.run(request, logger: logger)
            let document = outcome.document
            if !output.quiet {
                print("Plan \(plan) (sha256 \(document.shortHash)…), made \(document.createdAt) from \(document.mapping.file)")
                print(PlanText.render(document.plan, verbose: output.verbose), terminator: "")
            } else {
                print(document.plan.summary.line)
            }
            if let report {
                try PlanHTML.write(document, to: report, planFile: plan, check: PlanHTML.Check(objections: outcome.objections, checkedAt: outcome.checkedAt))
                print("Report written to \(report).")
            }
            if let runID = outcome.runID {
                print("Applied plan \(document.shortHash) (sync run \(runID)).")
            } else if outcome.objections.isEmpty {
                print("Dry run: checked against the store, an apply of this plan would go ahead; nothing written.")
            } else {
                ExitStatus.printError("dirbridge: an apply of this plan would be REFUSED (dry run; nothing written):\n"
                                      + outcome.objections.map { "  - \($0)" }.joined(separator: "\n"))
                throw ExitCode(FailureKind.refused.exitCode)
            }
        }
    }
}
