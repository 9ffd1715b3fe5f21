import ArgumentParser
import DirBridgeCore
import Foundation
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
            run is a dry run. With several mappings (files, or folders of *.yaml), each client runs on its own \
            schedule from a random start offset, with its own lease; one client's failure or refusal never stops \
            the others; at most --concurrency syncs run at once. Several run processes (workers) may share one \
            PostgreSQL store and the same clients: ticks fall at the same moments in all of them, and each client \
            is synced by one worker per tick (the lease); a killed worker's clients are taken over.
            """)

    @Argument(help: "The mapping files, or folders holding them (*.yaml, *.yml).")
    var mappings: [String]

    @Option(name: .long, help: ArgumentHelp("With several clients: at most this many syncs at a time.", valueName: "count"))
    var concurrency = 4

    @Option(name: .long, help: ArgumentHelp("Time between runs: 15m, 1h, 90s. With --watch: the longest time between runs (default 5m), and the polling interval where the server pushes nothing.", valueName: "duration"))
    var every: DurationText?

    @Flag(name: .long, help: "Keep a connection open and run as soon as the server pushes a change (RFC 4533 refreshAndPersist); poll at --every where the server offers no content sync.")
    var watch = false

    @Option(name: .long, help: ArgumentHelp("With --watch: changes arriving within this long of each other are planned together.", valueName: "duration"))
    var batchWindow = DurationText(seconds: 1)

    @Option(name: .long, help: ArgumentHelp("Read everything when the last full read is older than this.", valueName: "duration"))
    var fullEvery = DurationText(seconds: 24 * 3600)

    @Flag(name: .long, help: "Apply the changes of each run.")
    var apply = false

    @Flag(name: .long, help: "Only plan (the default); each run writes its sync_runs row.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp("The portal store (an SQLite file, or a postgresql:// URL); overrides the mapping's store.", valueName: "path"))
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
        guard let every = every ?? (watch ? DurationText(seconds: 300) : nil) else {
            throw ValidationError("--every is required (a duration like 15m, 1h or 90s), unless --watch")
        }
        guard every.seconds >= 1 else {
            throw ValidationError("--every takes a duration like 15m, 1h or 90s, not \(every)")
        }
        if watch && !(batchWindow.seconds > 0 && batchWindow.seconds <= 60) {
            throw ValidationError("--batch-window takes a duration above 0 and at most 60s, not \(batchWindow)")
        }
        if let runs, runs < 1 { throw ValidationError("--runs takes a count of 1 or more") }
        if concurrency < 1 { throw ValidationError("--concurrency takes a count of 1 or more") }
        if !["text", "json"].contains(logFormat) { throw ValidationError("--log-format takes text or json, not \(logFormat)") }
    }

    func run() async throws {
        let every = every ?? DurationText(seconds: 300)
        // A directory server that goes away mid-write must fail the run (EPIPE), not kill the process.
        signal(SIGPIPE, SIG_IGN)
        LogSetup.json = logFormat == "json"
        var logger = output.makeLogger()
        if !output.quiet && !output.verbose { logger.logLevel = .notice }
        let files = try ExitStatus.reporting { try Self.mappingFiles(mappings) }
        let loaded = try ExitStatus.reporting { try files.map { file throws(MappingErrors) in try MappingLoader.load(path: file) } }
        var seen: [String: String] = [:]
        for (file, mapping) in zip(files, loaded) {
            if let other = seen[mapping.client.name.lowercased()] {
                throw ValidationError("\(file) and \(other) both sync client \(mapping.client.name): one mapping per client")
            }
            seen[mapping.client.name.lowercased()] = file
        }
        if let metrics {
            let server = try ExitStatus.reporting { try MetricsServer(address: metrics, clients: loaded.map(\.client.name), every: every.seconds) }
            logger.notice("metrics at \(server.url)/metrics, health at \(server.url)/healthz")
        }
        let gate = loaded.count > 1 ? RunGate(permits: concurrency) : nil
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        for mapping in loaded {
            var options = ScheduleOptions(
                every: every.seconds, incremental: IncrementalOptions(fullEvery: fullEvery.seconds),
                apply: apply, storePath: store, maxRuns: runs)
            options.gate = gate
            if watch { options.watch = WatchOptions(batchWindow: batchWindow.seconds) }
            // Workers sharing a PostgreSQL store agree on ticks; a tick another worker synced is skipped.
            options.sharedTicks = apply && !watch && (store ?? mapping.storePath).map(isPostgresLocation) == true
            // Several clients: spread their first runs over the first tick (at most a minute).
            if loaded.count > 1 { options.startOffset = Double.random(in: 0..<min(every.seconds, 60)) }
            var clientLogger = logger
            clientLogger[metadataKey: "client"] = "\(mapping.client.name)"
            let offset = options.sharedTicks ? ", ticks shared with the other workers of this store"
                : options.startOffset > 0 ? ", first run in \(String(format: "%.1f", options.startOffset))s" : ""
            let cadence = watch ? "watching for changes (batch window \(batchWindow), at least every \(every))" : "every \(every)"
            clientLogger.notice("dirbridge run: \(mapping.client.name) \(cadence), full reconcile every \(fullEvery), \(apply ? "applying" : "dry runs")\(offset)")
            services.append(.init(service: SyncScheduler(mapping: mapping, options: options, logger: clientLogger),
                                  successTerminationBehavior: loaded.count == 1 ? .gracefullyShutdownGroup : .ignore))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// The mapping files named, a folder standing for its `*.yaml` / `*.yml` files in name order.
    static func mappingFiles(_ paths: [String]) throws(MappingErrors) -> [String] {
        var files: [String] = []
        for path in paths {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
                let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                    .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }.sorted()
                if names.isEmpty {
                    throw MappingErrors(issues: [MappingIssue(file: path, line: 0, column: 0, message: "no mapping files (*.yaml) in the folder \(path)")])
                }
                files += names.map { URL(fileURLWithPath: path).appendingPathComponent($0).path }
            } else {
                files.append(path)
            }
        }
        return files
    }
}
