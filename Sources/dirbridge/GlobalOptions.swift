import ArgumentParser
import DirBridgeCore
import Logging

/// `--verbose` and `--quiet`, shared by every command that talks to a directory or a store.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Log each step (with the equivalent ldapsearch of each directory search, for commands that read the directory).")
    var verbose = false

    @Flag(name: .long, help: "Print only errors and the result.")
    var quiet = false

    /// A logger writing to standard error at the level the flags ask for.
    func makeLogger(label: String = "dirbridge") -> Logger {
        LogSetup.bootstrapOnce()
        var logger = Logger(label: label)
        logger.logLevel = verbose ? .debug : (quiet ? .error : .notice)
        return logger
    }
}

enum LogSetup {
    /// Set before the first logger is made (`run --log-format json`).
    nonisolated(unsafe) static var json = false

    private static let bootstrapped: Void = {
        let json = LogSetup.json
        LoggingSystem.bootstrap { label -> any LogHandler in json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label) }
    }()

    static func bootstrapOnce() { _ = bootstrapped }
}
