import ArgumentParser
import DirBridgeCore
import Foundation

/// `sync --plan-out FILE` and `--report FILE`: the dry run's plan saved for `dirbridge apply`,
/// and as a page to review.
struct PlanFileOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Save the dry run's plan to this file; `dirbridge apply FILE` applies exactly it.", valueName: "plan.json"))
    var planOut: String?

    @Option(name: .long, help: ArgumentHelp("Write the plan as one self-contained HTML page to review or attach to a ticket.", valueName: "plan.html"))
    var report: String?

    @Flag(name: .long, help: "Let --plan-out and --report replace an existing file that is not a dirbridge plan or report (never the mapping).")
    var overwrite = false

    /// Whether the dry run must fingerprint the store for a plan document.
    var wanted: Bool { planOut != nil || report != nil }

    /// The files to write; see ``PlanFileTarget`` for where they may go.
    var targets: [PlanFileTarget] {
        [planOut.map { PlanFileTarget(path: $0, kind: .plan) }, report.map { PlanFileTarget(path: $0, kind: .report) }]
            .compactMap { $0 }
    }

    /// Refuses targets that would overwrite the mapping, each other, or a file that is not a
    /// dirbridge plan or report (unless `--overwrite`); run before the sync and again before writing.
    func check(mapping: String) throws {
        let targets = targets
        for (index, target) in targets.enumerated() {
            try target.check(inputs: [mapping], others: Array(targets[..<index]), overwrite: overwrite)
        }
    }

    /// Writes the plan file and the report of a dry run, and says so (on standard error
    /// when standard output carries JSON).
    func save(_ outcome: SyncOutcome, request: SyncRequest, json: Bool, mapping: String) throws {
        guard wanted else { return }
        try check(mapping: mapping)
        let document = try PlanDocument(outcome: outcome, request: request)
        var lines: [String] = []
        if let planOut {
            try document.write(to: planOut)
            lines.append("Plan saved to \(planOut) (sha256 \(document.shortHash)…). Apply exactly this plan with: dirbridge apply \(planOut)")
        }
        if let report {
            try PlanHTML.write(document, to: report, planFile: planOut)
            lines.append("Report written to \(report).")
        }
        for line in lines {
            if json { ExitStatus.printError(line) } else { print(line) }
        }
    }
}
