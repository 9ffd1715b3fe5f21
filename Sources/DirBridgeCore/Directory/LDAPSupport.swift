internal import CLDAP
import Foundation

/// Host and port of an `ldap://` or `ldaps://` URL.
struct LDAPURLParts {
    var host: String
    var port: UInt16

    init?(_ url: String) {
        let lower = url.lowercased()
        let secure = lower.hasPrefix("ldaps://")
        guard secure || lower.hasPrefix("ldap://") else { return nil }
        var rest = url.dropFirst(secure ? 8 : 7)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var hostPart = Substring(rest)
        var portNumber: UInt16 = secure ? 636 : 389
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":"), let value = UInt16(after.dropFirst()) { portNumber = value }
        } else if let colon = rest.lastIndex(of: ":") {
            hostPart = rest[..<colon]
            if let value = UInt16(rest[rest.index(after: colon)...]) { portNumber = value }
        }
        host = hostPart.isEmpty ? "localhost" : String(hostPart)
        port = portNumber
    }
}

/// True when a TCP connection to host:port succeeds within `timeout` seconds.
func tcpAccepts(host: String, port: UInt16, timeout: Double) -> Bool {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &list) == 0, let list else { return false }
    defer { freeaddrinfo(list) }
    var cursor: UnsafeMutablePointer<addrinfo>? = list
    while let info = cursor {
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        if fd >= 0 {
            defer { close(fd) }
            var limit = timeval(seconds: min(timeout, 5))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return true }
        }
        cursor = info.pointee.ai_next
    }
    return false
}

/// Owns one `LDAPMessage*` and frees it when the box goes away.
final class LDAPMessageBox {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { ldap_msgfree(pointer) }
}

extension timeval {
    init(seconds: Double) {
        let whole = Int(seconds)
        self.init(tv_sec: whole, tv_usec: Int((seconds - Double(whole)) * 1_000_000))
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
}

/// Calls `body` with a NULL-terminated `char **` of `strings`, or NULL when `strings` is nil.
func withCStringArray<R>(_ strings: [String]?, _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> R) -> R {
    guard let strings else { return body(nil) }
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}
