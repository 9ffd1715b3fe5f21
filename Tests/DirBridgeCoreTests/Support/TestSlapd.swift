import DirBridgeCore
import Foundation
import Logging

/// The repository's root, found from this file's path.
let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fixture file under Tests/DirBridgeCoreTests/Fixtures.
func fixtureURL(_ relativePath: String) -> URL {
    repositoryRoot.appendingPathComponent("Tests/DirBridgeCoreTests/Fixtures").appendingPathComponent(relativePath)
}

/// A fresh temporary directory for one test or suite, removed when the test process exits
/// (fixtures are values without a teardown, and a server's files must outlive its last use).
func makeTemporaryDirectory(_ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dirbridge-\(label)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    TemporaryDirectories.shared.add(url)
    return url
}

/// The directories this test process made; removed at exit, so a run leaves nothing in /tmp.
final class TemporaryDirectories: @unchecked Sendable {
    static let shared: TemporaryDirectories = {
        let registry = TemporaryDirectories()
        atexit { TemporaryDirectories.shared.removeAll() }
        return registry
    }()

    private let lock = NSLock()
    private var urls: [URL] = []

    func add(_ url: URL) {
        lock.lock()
        defer { lock.unlock() }
        urls.append(url)
    }

    func removeAll() {
        lock.lock()
        let made = urls
        urls = []
        lock.unlock()
        for url in made { try? FileManager.default.removeItem(at: url) }
    }
}

/// Runs a command, returning its exit status and output; throws when it cannot start.
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try? inPipe.fileHandleForWriting.close()
    // Read both pipes before waiting so a chatty child never blocks on a full pipe.
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// The built `dirbridge` next to the test bundle (`swift build` builds it with the tests).
let dirbridgeBinary: URL? = {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [bundleDirectory, bundleDirectory.deletingLastPathComponent()]
        .map { $0.appendingPathComponent("dirbridge") }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
}()

/// Runs the built `dirbridge` with `arguments`; `environment` entries are added to this process's environment.
func runDirbridge(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    guard let binary = dirbridgeBinary else {
        throw HarnessError(description: "the dirbridge binary is not built next to the tests: run `swift build` before `swift test`")
    }
    let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    return try runProcess(binary.path, arguments, environment: merged)
}

/// `KEY=VALUE` lines (a harness script's output, its `DIR/env`) as a dictionary.
func keyValueLines(_ text: String) -> [String: String] {
    var values: [String: String] = [:]
    for line in text.split(separator: "\n") {
        if let equals = line.firstIndex(of: "=") { values[String(line[..<equals])] = String(line[line.index(after: equals)...]) }
    }
    return values
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
}

/// A real OpenLDAP slapd on 127.0.0.1, started by `scripts/test-slapd` from a throwaway config.
///
/// Stops when ``stop()`` is called, or at the latest a second after the test process exits.
final class TestSlapd: Sendable {
    let directory: URL
    let env: [String: String]

    var ldapURL: String { env["LDAP_URL"]! }
    var ldapsURL: String { env["LDAPS_URL"]! }
    var caFile: String { env["CA_FILE"]! }
    var otherCAFile: String { env["OTHER_CA_FILE"]! }
    static let syncDN = "cn=sync,ou=services,dc=example,dc=com"
    static let rootDN = "cn=admin,dc=example,dc=com"

    /// Starts a server loaded with the given fixture LDIF files (online) and bulk LDIF files (slapadd).
    init(label: String, fixtures: [String] = [], ldif: [URL] = [], bulk: [URL] = [], syncprov: Bool = true, sessionlog: Bool = true, certificateDays: Int? = nil) throws {
        directory = try makeTemporaryDirectory("slapd-\(label)")
        var arguments = ["start", directory.path, "--owner-pid", String(ProcessInfo.processInfo.processIdentifier)]
        for fixture in fixtures { arguments += ["--ldif", fixtureURL(fixture).path] }
        for file in ldif { arguments += ["--ldif", file.path] }
        for file in bulk { arguments += ["--bulk-ldif", file.path] }
        if !syncprov { arguments.append("--no-syncprov") } else if !sessionlog { arguments.append("--no-sessionlog") }
        if let certificateDays { arguments += ["--cert-days", String(certificateDays)] }
        let result = try runProcess("/bin/bash", [repositoryRoot.appendingPathComponent("scripts/test-slapd").path] + arguments)
        guard result.status == 0 else {
            throw HarnessError(description: "scripts/test-slapd start failed (\(result.status)): \(result.stderr)")
        }
        env = keyValueLines(result.stdout)
    }

    /// Stops the server and waits for it to exit.
    func stop() {
        _ = try? runProcess("/bin/bash", [repositoryRoot.appendingPathComponent("scripts/test-slapd").path, "stop", directory.path])
    }

    /// Stops the server and starts it again on the same ports with the same data, as a server
    /// restart looks to its clients.
    func restart() throws {
        let result = try runProcess("/bin/bash", [repositoryRoot.appendingPathComponent("scripts/test-slapd").path, "restart", directory.path])
        guard result.status == 0 else { throw HarnessError(description: "scripts/test-slapd restart failed (\(result.status)): \(result.stderr)") }
    }

    /// Applies LDIF changes (ldapmodify syntax) as the rootdn.
    func modify(_ ldif: String) throws {
        let result = try runProcess("/usr/bin/ldapmodify", ["-x", "-H", ldapURL, "-D", Self.rootDN, "-w", "admin-secret"], input: ldif)
        guard result.status == 0 else { throw HarnessError(description: "ldapmodify failed: \(result.stderr)") }
    }

    /// A directory configuration bound as one of the harness's service accounts, password from a 0600 file.
    func configuration(account: String = "sync", url: String? = nil, password: String? = nil, pageSize: Int = 500) throws -> DirectoryConfiguration {
        let file = directory.appendingPathComponent("password-\(account)-\(UUID().uuidString.prefix(6))")
        try Data((password ?? "\(account)-secret").utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        return DirectoryConfiguration(
            urls: [url ?? ldapURL], bindDN: "cn=\(account),ou=services,dc=example,dc=com",
            password: .file(file.path), pageSize: pageSize, timeout: 10)
    }
}

/// A swift-log handler that keeps messages in memory, for asserting on warnings.
final class CapturedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(Logger.Level, String)] = []

    var logger: Logger {
        Logger(label: "test") { _ in CapturingHandler(log: self) }
    }

    func append(_ level: Logger.Level, _ message: String) {
        lock.lock(); defer { lock.unlock() }
        entries.append((level, message))
    }

    var messages: [(Logger.Level, String)] {
        lock.lock(); defer { lock.unlock() }
        return entries
    }

    private struct CapturingHandler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
            log.append(event.level, "\(event.message) \(merged)")
        }
    }
}
