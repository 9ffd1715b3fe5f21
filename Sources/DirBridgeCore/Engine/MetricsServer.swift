import Foundation
import Logging
import Metrics
import Prometheus

/// `dirbridge run --metrics HOST:PORT`: Prometheus text at `/metrics`, and `/healthz` answering
/// 200 while every client's last run succeeded within two ticks (503 otherwise).
///
/// A small HTTP/1.1 responder, a thread per connection with a deadline (GET only, one request per connection): what a
/// scraper and a health probe need, without a web framework's build cost. The metrics
/// themselves come from swift-metrics, rendered by swift-prometheus.
public final class MetricsServer: @unchecked Sendable {
    public let host: String
    public let port: UInt16
    private let socketFD: Int32
    private let registry: PrometheusCollectorRegistry
    private let clients: [String]
    private let window: TimeInterval

    /// Listens on `address` (`HOST:PORT`; port 0 picks a free one) and bootstraps the metrics
    /// system with Prometheus. Call once per process.
    public init(address: String, clients: [String], every: TimeInterval) throws(MetricsServerError) {
        guard let colon = address.lastIndex(of: ":"), let requested = UInt16(address[address.index(after: colon)...]) else {
            throw MetricsServerError(message: "--metrics takes HOST:PORT, e.g. 127.0.0.1:9464, not \(address)")
        }
        var host = String(address[..<colon])
        if host.isEmpty || host == "localhost" { host = "127.0.0.1" }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = requested.bigEndian
        guard inet_pton(AF_INET, host, &socketAddress.sin_addr) == 1 else {
            close(fd)
            throw MetricsServerError(message: "--metrics: \(host) is not an IPv4 address (use 127.0.0.1 or 0.0.0.0)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard listening else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MetricsServerError(message: "--metrics: cannot listen on \(address): \(reason)")
        }
        self.host = host
        port = UInt16(bigEndian: socketAddress.sin_port)
        socketFD = fd
        registry = PrometheusCollectorRegistry()
        self.clients = clients
        window = 2 * every
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let thread = Thread { [self] in serve() }
        thread.name = "dirbridge-metrics"
        thread.start()
    }

    public var url: String { "http://\(host):\(port)" }

    /// Each connection on its own thread, with a deadline: a slow or idle client never holds
    /// up a scrape or a health probe.
    private func serve() {
        signal(SIGPIPE, SIG_IGN)
        while true {
            let connection = accept(socketFD, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE { continue }
                return
            }
            var limit = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            Thread.detachNewThread { [self] in
                respond(on: connection)
                close(connection)
            }
        }
    }

    private func respond(on connection: Int32) {
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(5)
        while request.count < 16_384 && Date() < deadline {
            let count = read(connection, &buffer, buffer.count)
            if count <= 0 { break }
            request += buffer[0..<count]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
            if let text = String(bytes: request, encoding: .utf8), text.contains("\r\n\r\n") { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let (status, type, body): (String, String, [UInt8])
        if line.count >= 2, line[0] == "GET" || line[0] == "HEAD" {
            let path = line[1].split(separator: "?").first.map(String.init) ?? ""
            switch path {
            case "/metrics":
                (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
            case "/healthz":
                let health = RunHealth.shared.check(clients: clients, window: window)
                (status, type, body) = (health.healthy ? "200 OK" : "503 Service Unavailable", "text/plain; charset=utf-8", Array((health.detail + "\n").utf8))
            default:
                (status, type, body) = ("404 Not Found", "text/plain; charset=utf-8", Array("try /metrics or /healthz\n".utf8))
            }
        } else {
            (status, type, body) = ("405 Method Not Allowed", "text/plain; charset=utf-8", Array("GET only\n".utf8))
        }
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + (line.first == "HEAD" ? [] : body)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }
            sent += count
        }
    }
}

/// `--metrics` could not be served: a usage error (exit 1).
public struct MetricsServerError: DirBridgeFailure {
    public var message: String
    public var kind: FailureKind { .usage }
    public var description: String { message }
}
