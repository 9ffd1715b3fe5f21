import DirBridgeCore
import Foundation
import Testing

/// A free TCP port on 127.0.0.1 (bound, read, released).
func freePort() throws -> UInt16 {
    let listener = try SilentListener(full: false)
    return listener.port
}

/// `GET path` over plain HTTP/1.1 on 127.0.0.1: the status code and the body; nil when nothing answers.
func httpGet(port: UInt16, _ path: String) -> (status: Int, body: String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count <= 0 { break }
        response += buffer[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { return nil }
    let statusLine = text[..<split.lowerBound].split(separator: "\r\n").first ?? ""
    let parts = statusLine.split(separator: " ")
    guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
    return (status, String(text[split.upperBound...]))
}

@Suite("run --metrics: Prometheus text and a health check over HTTP; --log-format json")
struct MetricsTests {
    /// Each line of Prometheus' text exposition format (0.0.4): a comment, or `name{labels} value`.
    private func isExposition(_ text: String) -> Bool {
        let sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$/
        let type = /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/
        return text.split(separator: "\n").allSatisfy { line in
            line.hasPrefix("# HELP ") || line.wholeMatch(of: type) != nil || line.wholeMatch(of: sample) != nil
        }
    }

    /// The value of the sample `name` whose labels include every one of `labels`.
    private func value(_ text: String, _ name: String, _ labels: [String] = []) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            if labels.allSatisfy({ line.contains($0) }), let number = line.split(separator: " ").last.flatMap({ Double($0) }) { return number }
        }
        return nil
    }

    @Test("after two runs the counters moved, the text parses as exposition format, /healthz is 200; JSON log lines carry client and run")
    func metricsAfterTwoRuns() throws {
        let fixture = try EngineFixture("metrics")
        defer { fixture.slapd.stop() }
        let port = try freePort()
        let run = try BackgroundDirbridge(
            ["run", fixture.mappingPath, "--store", fixture.storePath, "--apply", "--every", "1s", "--metrics", "127.0.0.1:\(port)", "--log-format", "json"],
            environment: fixture.environment)
        defer { if run.process.isRunning { kill(run.pid, SIGKILL); _ = run.wait(seconds: 30) } }
        // Waits for the outcome (two runs counted), however long the machine takes.
        var metrics = ""
        let counted = eventually(seconds: 300) {
            guard let response = httpGet(port: port, "/metrics"), response.status == 200 else { return false }
            metrics = response.body
            return (value(metrics, "dirbridge_runs_total", ["client=\"Engine Corp\"", "status=\"succeeded\"", "mode=\"apply\""]) ?? 0) >= 2
        }
        #expect(counted, "\(metrics)")
        #expect(isExposition(metrics), "\(metrics)")
        #expect(metrics.contains("# TYPE dirbridge_runs_total counter"))
        #expect(value(metrics, "dirbridge_changes_applied_total", ["action=\"create\""]) == 12)
        #expect((value(metrics, "dirbridge_entries_read_total") ?? 0) > 0)
        #expect((value(metrics, "dirbridge_last_success_timestamp_seconds") ?? 0) > 1_700_000_000)
        #expect(value(metrics, "dirbridge_run_duration_seconds_count") != nil, "\(metrics)")
        // Healthy right after a run ends; polled, so that a slow machine does not decide it.
        var health: (status: Int, body: String)?
        #expect(eventually(seconds: 300) {
            health = httpGet(port: port, "/healthz")
            return health?.status == 200
        }, "\(String(describing: health))")
        #expect(health?.body == "ok\n")
        #expect(httpGet(port: port, "/nothing")?.status == 404)

        kill(run.pid, SIGTERM)
        let ended = try #require(run.wait(seconds: 120))
        #expect(ended.status == 0, "\(ended.stderr)")
        let lines = ended.stderr.split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.count == lines.count, "every line is a JSON object:\n\(ended.stderr)")
        let runLines = objects.filter { ($0["message"] as? String)?.hasPrefix("run ") == true }
        #expect(runLines.count >= 2)
        #expect(runLines.allSatisfy { $0["client"] as? String == "Engine Corp" && $0["run"] as? String != nil && $0["level"] as? String == "notice" && $0["time"] is String })
    }

    @Test("/healthz is 503 once the last run failed")
    func unhealthy() throws {
        _ = testBindPassword
        let folder = try makeTemporaryDirectory("metrics-unhealthy")
        let mapping = folder.appendingPathComponent("m.yaml").path
        try String(contentsOf: fixtureURL("mappings/engine.yaml"), encoding: .utf8).write(toFile: mapping, atomically: true, encoding: .utf8)
        let port = try freePort()
        let run = try BackgroundDirbridge(
            ["run", mapping, "--store", folder.appendingPathComponent("p.sqlite").path, "--every", "1s", "--metrics", "127.0.0.1:\(port)"],
            environment: ["DIRBRIDGE_URL": "ldap://127.0.0.1:1"])
        defer { kill(run.pid, SIGKILL); _ = run.wait(seconds: 30) }
        var health: (status: Int, body: String)?
        #expect(eventually(seconds: 300) {
            health = httpGet(port: port, "/healthz")
            return health?.status == 503
        })
        #expect(health?.body.contains("Engine Corp: last run did not succeed") == true, "\(String(describing: health))")
        let metrics = httpGet(port: port, "/metrics")?.body ?? ""
        #expect((value(metrics, "dirbridge_runs_total", ["status=\"failed\""]) ?? 0) >= 1, "\(metrics)")
    }
}
