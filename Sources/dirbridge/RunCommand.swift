import ArgumentParser
import DirBridgeCore
import Logging
import ServiceLifecycle

/// `dirbridge run MAPPING --every 15m`: scheduled incremental syncs until SIGTERM/SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Sync on a schedule: incremental reads, a full reconcile every --full-every, until stopped.",
        discussion: """
            Logs one line per run. SIGTERM or SIGINT stops it cleanly: a run still reading is abandoned \
            before it writes anything, a run writing finishes its transaction; then exits 0. A failed run \
            is retried with backoff (15s, 30s, … never later than the next tick). Without --apply every \
            run is a dry run.
            """)

    @Argument(help: "The mapping file.")
    var mapping: String

    @Option(name: .long, help: ArgumentHelp("Time between runs: 15m, 1h, 90s.", valueName: "duration"))
    var every: DurationText

    @Option(name: .long, help: ArgumentHelp("Read everything when the last full read is older than this.", valueName: "duration"))
    var fullEvery = DurationText(seconds: 24 * 3600)

    @Flag(name: .long, help: "Apply the changes of each run.")
    var apply = false

    @Flag(name: .long, help: "Only plan (the default); each run writes its sync_runs row.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp("The portal store (SQLite file); overrides the mapping's store.", valueName: "path"))
    var store: String?

    @Option(name: .long, help: ArgumentHelp("Stop after this many runs.", valueName: "count"))
    var runs: Int?

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics and a health check at /healthz.", valueName: "host:port"))
    var metrics: String?

    @Option(name: .long, help: ArgumentHelp("text (default) or json: one JSON object per line (time, level, client, run, message, metadata).", valueName: "format"))
    var logFormat = "text"

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if apply && dryRun { throw ValidationError("--apply and --dry-run exclude each other") }
        guard every.seconds >= 1 else {
            throw ValidationError("--every takes a duration like 15m, 1h or 90s, not \(every)")
        }
        if let runs, runs < 1 { throw ValidationError("--runs takes a count of 1 or more") }
        if !["text", "json"].contains(logFormat) { throw ValidationError("--log-format takes text or json, not \(logFormat)") }
    }

    func run() async throws {
        LogSetup.json = logFormat == "json"
        var logger = output.makeLogger()
        if !output.quiet && !output.verbose { logger.logLevel = .notice }
        let loaded = try ExitStatus.reporting { try MappingLoader.load(path: mapping) }
        logger[metadataKey: "client"] = "\(loaded.client.name)"
        if let metrics {
            let server = try ExitStatus.reporting { try MetricsServer(address: metrics, clients: [loaded.client.name], every: every.seconds) }
            logger.notice("metrics at \(server.url)/metrics, health at \(server.url)/healthz")
        }
        let options = ScheduleOptions(
            every: every.seconds, incremental: IncrementalOptions(fullEvery: fullEvery.seconds),
            apply: apply, storePath: store, maxRuns: runs)
        let scheduler = SyncScheduler(mapping: loaded, options: options, logger: logger)
        logger.notice("dirbridge run: \(loaded.client.name) every \(every), full reconcile every \(fullEvery), \(apply ? "applying" : "dry runs")")
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: scheduler, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
