import DirBridgeCore
import Foundation
import Logging
import Testing

/// A TCP listener on 127.0.0.1 that never answers: the kernel completes handshakes into its
/// backlog, nobody reads. With `full: true` its backlog is filled first, so that a further
/// connect gets no handshake at all (the SYN is dropped) and hangs like a black-holed host.
final class SilentListener {
    private let socketFD: Int32
    private var fillers: [Int32] = []
    let port: UInt16

    init(full: Bool) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && listen(fd, full ? 0 : 64) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot listen on 127.0.0.1: errno \(errno)"])
        }
        socketFD = fd
        port = UInt16(bigEndian: address.sin_port)
        if full {
            // A backlog of 0 holds one finished handshake; three non-blocking connects fill it.
            for _ in 0..<3 {
                let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                _ = fcntl(filler, F_SETFL, fcntl(filler, F_GETFL) | O_NONBLOCK)
                _ = withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                fillers.append(filler)
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    var url: String { "ldap://127.0.0.1:\(port)" }

    deinit {
        for filler in fillers { close(filler) }
        close(socketFD)
    }
}

/// A server that accepts and then never answers must end a run with a directory error
/// (exit 3) once `directory.timeout` has passed, at each stage: the TCP connect, the bind,
/// and a search that stops answering after its first page. The bounds the tests wait are
/// only there to keep a hung run from hanging the suite; the verdict is the outcome.
@Suite("A server that never answers times out as configured")
struct TimeoutTests {
    /// A copy of the incremental fixture mapping with a short timeout and small pages.
    private func mapping(in folder: URL) throws -> String {
        let path = folder.appendingPathComponent("timeout.yaml").path
        try String(contentsOf: fixtureURL("mappings/incremental.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "timeout: 10s", with: "timeout: 2s")
            .replacingOccurrences(of: "page_size: 200", with: "page_size: 2")
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("connect: a listener whose backlog is full (the SYN is dropped): exit 3, the server named as not answering")
    func connectTimesOut() throws {
        _ = testBindPassword
        let folder = try makeTemporaryDirectory("timeout-connect")
        let listener = try SilentListener(full: true)
        let result = try runDirbridge(["check", try mapping(in: folder)], environment: ["DIRBRIDGE_URL": listener.url])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains(listener.url), "\(result.stderr)")
        #expect(result.stderr.contains("directory error"), "\(result.stderr)")
        #expect(!result.stderr.contains("sync-secret"))
    }

    @Test("bind: a listener that accepts and never answers: exit 3 after the timeout, during the bind")
    func bindTimesOut() throws {
        _ = testBindPassword
        let folder = try makeTemporaryDirectory("timeout-bind")
        let listener = try SilentListener(full: false)
        let store = folder.appendingPathComponent("portal.sqlite").path
        let result = try runDirbridge(["sync", try mapping(in: folder), "--store", store, "--apply"], environment: ["DIRBRIDGE_URL": listener.url])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("bind as cn=sync,ou=services,dc=example,dc=com"), "\(result.stderr)")
        #expect(result.stderr.contains("(Timed out)") && result.stderr.contains("no answer within directory.timeout (2s)"), "\(result.stderr)")
        #expect(!result.stderr.contains("sync-secret"))
    }

    @Test("mid-search: slapd stops answering after the first page: a failed run, nothing else written, slapd fine afterwards")
    func searchTimesOut() throws {
        let fixture = try IncrementalFixture("timeout-search", users: 12)
        defer { fixture.slapd.stop() }
        let slapd = try #require(fixture.slapd.env["PID"].flatMap { Int32($0) })
        let folder = try makeTemporaryDirectory("timeout-search")
        let mapping = try MappingLoader.load(path: try mapping(in: folder), environment: ["DIRBRIDGE_URL": fixture.slapd.ldapURL])
        #expect(mapping.directory.timeout == 2 && mapping.directory.pageSize == 2)
        var stopped = false
        defer { kill(slapd, SIGCONT) }
        let request = SyncRequest(mapping: mapping, storePath: fixture.storePath, apply: true)
        do {
            _ = try SyncEngine.run(request, logger: Logger(label: "test")) { read in
                // The first page arrived: from now on the server holds its answers.
                if !stopped, read > 0 { kill(slapd, SIGSTOP); stopped = true }
            }
            Issue.record("the read finished although the server stopped answering")
        } catch let failure as DirectoryError {
            #expect(failure.kind == .directory && failure.description.contains("no answer within 2s"), "\(failure.description)")
        }
        #expect(stopped)
        kill(slapd, SIGCONT)
        #expect(try fixture.value("SELECT count(*) FROM client_users") == 0)
        #expect(try fixture.value("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1") == "failed")
        // The same sync succeeds once the server answers again.
        let outcome = try SyncEngine.run(request, logger: Logger(label: "test"))
        #expect(outcome.applied && outcome.plan.summary.create == 12)
    }
}
