import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 in front of a real server: it forwards everything the client sends,
/// and the server's first `serverBytes` bytes, then holds the connection open without passing
/// on more. To the client, a server that stopped in the middle of an answer.
///
/// ``close()`` closes every socket, which also ends a client's read still waiting on it.
final class StallingProxy: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let upstreamPort: UInt16
    private let serverBytes: Int
    private let lock = NSLock()
    private var sockets: [Int32] = []
    private var closed = false

    init(upstreamPort: UInt16, serverBytes: Int) throws {
        self.upstreamPort = upstreamPort
        self.serverBytes = serverBytes
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ProxyError("socket: errno \(errno)") }
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else {
            Glibc.close(descriptor)
            throw ProxyError("bind/listen: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        listener = descriptor
        port = UInt16(bigEndian: address.sin_port)
        sockets.append(listener)
        Thread.detachNewThread { self.acceptLoop() }
    }

    var url: String { "ldap://127.0.0.1:\(port)" }

    func close() {
        lock.lock()
        closed = true
        let open = sockets
        sockets = []
        lock.unlock()
        for descriptor in open {
            shutdown(descriptor, Int32(SHUT_RDWR))
            Glibc.close(descriptor)
        }
    }

    deinit { close() }

    private func keep(_ descriptor: Int32) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return false }
        sockets.append(descriptor)
        return true
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard keep(client), keep(server), connected == 0 else {
                Glibc.close(client)
                Glibc.close(server)
                return
            }
            Thread.detachNewThread { Self.pump(from: client, to: server, limit: nil) }
            Thread.detachNewThread { Self.pump(from: server, to: client, limit: self.serverBytes) }
        }
    }

    /// Copies bytes until the source ends, or until `limit` bytes were passed on; then holds
    /// (the connection stays open, nothing more is sent).
    private static func pump(from source: Int32, to destination: Int32, limit: Int?) {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var passed = 0
        while limit.map({ passed < $0 }) ?? true {
            let wanted = limit.map { min(buffer.count, $0 - passed) } ?? buffer.count
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, wanted) }
            guard count > 0 else { return }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + written, count - written) }
                guard result > 0 else { return }
                written += result
            }
            passed += count
        }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

struct ProxyError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
