import ArgumentParser
import DirBridgeCore
import Foundation

/// `dirbridge sync MAPPING [--apply]`: the main job. A dry run unless `--apply`.
struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Plan (dry run) or apply the sync of one mapping.",
        discussion: """
            Without --apply, prints the plan and writes only a dry-run row in sync_runs.
            Exit codes: 0 done; 1 usage or mapping error; 2 changes found (with --detailed-exitcode); \
            3 directory error; 4 store error; 5 refused by a safety guard.
            """)

    @Argument(help: "The mapping file.")
    var mapping: String

    @Flag(name: .long, help: "Apply the changes (default: dry run).")
    var apply = false

    @Option(name: .long, help: ArgumentHelp("The portal store (SQLite file); overrides the mapping's store.", valueName: "path"))
    var store: String?

    @Flag(name: .long, help: "Print the plan as JSON with stable keys.")
    var json = false

    @Flag(name: .long, help: "Apply even when a safety guard objects (empty read, max_disable, max_demote, max_promote, last Global Admin).")
    var force = false

    @Option(name: .long, help: ArgumentHelp("Override deprovision.max_disable for this run: a count or a share like 10%.", valueName: "limit"))
    var maxDisable: Threshold?

    @Option(name: .long, help: ArgumentHelp("Override guards.max_promote for this run: how many Global Admin / Group Manager / privileged-role grants one apply may make.", valueName: "count"))
    var maxPromote: Int?

    @Flag(name: .long, help: "Exit 2 when a dry run found changes.")
    var detailedExitcode = false

    @Flag(name: .long, help: "Read only what changed since the last applied incremental run (RFC 4533 content sync, or modifyTimestamp); a full read when there is no cache yet or a full reconcile is due.")
    var incremental = false

    @Option(name: .long, help: ArgumentHelp("With --incremental: read everything when the last full read is older than this.", valueName: "duration"))
    var fullEvery = DurationText(seconds: 24 * 3600)

    @Flag(name: .long, help: "When another sync holds the client's lease, wait for it instead of exiting 5.")
    var wait = false

    @OptionGroup var planFiles: PlanFileOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let maxPromote, maxPromote < 0 { throw ValidationError("--max-promote takes a count of 0 or more") }
        if apply && planFiles.wanted {
            throw ValidationError("--plan-out and --report save a dry run's plan: drop --apply, then apply the saved plan with `dirbridge apply`")
        }
    }

    func run() throws {
        let logger = output.makeLogger()
        try ExitStatus.reporting {
            try planFiles.check(mapping: mapping)
            let loaded = try MappingLoader.load(path: mapping)
            var request = SyncRequest(
                mapping: loaded, storePath: store, apply: apply,
                overrides: GuardOverrides(force: force, maxDisable: maxDisable, maxPromote: maxPromote),
                incremental: incremental, incrementalOptions: IncrementalOptions(fullEvery: fullEvery.seconds),
                waitForLease: wait)
            request.fingerprintsState = planFiles.wanted
            // From here on SIGINT/SIGTERM stop the run cleanly and say what was written.
            let interruption = Interruption()
            request.control = interruption.control
            let progress = Progress.onTerminal(enabled: !output.quiet && !json)
            let outcome: SyncOutcome
            do {
                outcome = try SyncEngine.run(request, logger: logger, progress: progress.report)
                progress.finish()
            } catch let error as SyncError {
                progress.finish()
                if interruption.signalNumber != nil { try interruption.conclude(applied: false, error: error) }
                if let plan = error.plan { print(json ? try JSONOutput.encode(value: plan) : PlanText.render(plan, verbose: output.verbose), terminator: "") }
                throw error
            } catch {
                progress.finish()
                try interruption.conclude(applied: false, error: error)
                throw error
            }
            if json {
                print(try JSONOutput.encode(value: outcome.plan), terminator: "")
            } else {
                if output.quiet { print(outcome.plan.summary.line) } else { print(PlanText.render(outcome.plan, verbose: output.verbose), terminator: "") }
                if incremental && !output.quiet {
                    let how = outcome.method == .full ? "full read (\(outcome.fullReason ?? "full reconcile"))" : "incremental read (\(outcome.method.rawValue))"
                    print("Directory: \(how), \(outcome.entriesRead) entries read.")
                }
                print(outcome.applied ? "Applied (sync run \(outcome.runID))." : "Dry run (sync run \(outcome.runID)): nothing written. Apply with --apply.")
            }
            try planFiles.save(outcome, request: request, json: json, mapping: mapping)
            KeptUntilExit.keep(outcome)
            try interruption.conclude(applied: outcome.applied, error: nil)
            if detailedExitcode && !apply && !outcome.plan.isEmpty { throw ExitCode(2) }
        }
    }
}

/// What a one-shot command leaves for the process's exit to reclaim instead of freeing it:
/// freeing the plan of a 100k-user first sync (its changes, one by one) took 0.3 s, 3% of
/// the run, after everything was written and printed.
enum KeptUntilExit {
    nonisolated(unsafe) private static var values: [Any] = []

    static func keep(_ value: Any) { values.append(value) }
}

/// A one-line progress counter on standard error, only when it is a terminal.
final class Progress {
    private let enabled: Bool
    private var shown = false

    private init(enabled: Bool) { self.enabled = enabled }

    static func onTerminal(enabled: Bool) -> Progress {
        Progress(enabled: enabled && isatty(STDERR_FILENO) == 1)
    }

    func report(_ entries: Int) {
        guard enabled else { return }
        shown = true
        FileHandle.standardError.write(Data("\rreading the directory: \(entries) users".utf8))
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
        shown = false
    }
}
