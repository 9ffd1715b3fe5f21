import Foundation
import Logging

/// One line of `dirbridge doctor`: what was checked, how it went, and what to do.
public struct DoctorCheck: Sendable, Equatable, Encodable {
    public enum Status: String, Sendable, Encodable {
        case ok, warning, failed
    }

    /// Which side a failure is on: it decides the exit code (directory 3, store 4).
    public enum Side: String, Sendable, Encodable {
        case directory, store
    }

    /// `dns`, `tcp`, `tls`, `bind`, `entries`, `server`, `clock`, `groups`, `store`.
    public var check: String
    public var status: Status
    public var side: Side
    public var detail: String
    /// What to do, for a warning or a failure.
    public var next: String?
}

/// What `dirbridge doctor` found: every check, and the exit code they add up to.
public struct DoctorReport: Sendable, Equatable, Encodable {
    public var mapping: String
    public var client: String
    public var checks: [DoctorCheck]

    /// 0 when a sync would work (warnings included), 3 when the directory side would fail, 4 when the store side would.
    public var exitCode: Int32 {
        if checks.contains(where: { $0.status == .failed && $0.side == .directory }) { return FailureKind.directory.exitCode }
        if checks.contains(where: { $0.status == .failed && $0.side == .store }) { return FailureKind.store.exitCode }
        return 0
    }

    enum CodingKeys: String, CodingKey {
        case mapping, client, checks
        case exitCode = "exit_code"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mapping, forKey: .mapping)
        try container.encode(client, forKey: .client)
        try container.encode(checks, forKey: .checks)
        try container.encode(exitCode, forKey: .exitCode)
    }

    /// One line per check, with what to do under warnings and failures.
    public var text: String {
        var lines = ["dirbridge doctor: \(mapping) (client \(client))"]
        for check in checks {
            let mark = switch check.status { case .ok: "✓"; case .warning: "⚠"; case .failed: "✗" }
            lines.append("  \(mark) \(check.check.padding(toLength: 8, withPad: " ", startingAt: 0)) \(check.detail)")
            if let next = check.next, check.status != .ok { lines.append("      next: \(next)") }
        }
        switch exitCode {
        case 0: lines.append("A sync would work" + (checks.contains { $0.status == .warning } ? " (see the warnings)." : "."))
        case FailureKind.directory.exitCode: lines.append("A sync would fail on the directory side (exit 3).")
        default: lines.append("A sync would fail on the store side (exit 4).")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `dirbridge doctor MAPPING`: before a first sync, or when one fails, says what works and what
/// will not, each with what to do. Reads only: the directory is searched, the store is opened
/// and a write transaction begun and rolled back, nothing is written anywhere.
public enum Doctor {
    /// A certificate expiring within this many days is a warning.
    public static let certificateWarningDays = 30
    /// A server clock this far from ours is a warning (high-water marks depend on it).
    public static let clockWarningSeconds: TimeInterval = 120

    public static func run(_ mapping: Mapping, storePath: String?, logger: Logger, now: Date = Date()) -> DoctorReport {
        var checks: [DoctorCheck] = []
        func add(_ check: String, _ status: DoctorCheck.Status, _ detail: String, next: String? = nil, side: DoctorCheck.Side = .directory) {
            checks.append(DoctorCheck(check: check, status: status, side: side, detail: detail, next: next))
        }
        let configuration = mapping.directory
        if !configuration.tlsVerify {
            add("tls", .warning, "tls_verify: false: the server's certificate is not checked, so anyone on the network path can impersonate it",
                next: "set directory.ca_file to the CA that signed the server's certificate and remove tls_verify: false")
        }

        // Each URL: DNS, TCP, TLS and the bind; the first that binds is used for the rest.
        var connection: DirectoryConnection?
        for url in configuration.urls {
            guard let parts = LDAPURLParts(url) else {
                add("dns", .failed, "\(url) is not an ldap:// or ldaps:// URL", next: "fix directory.url")
                continue
            }
            let addresses = resolve(parts.host)
            guard !addresses.isEmpty else {
                add("dns", .failed, "\(url): \(parts.host) does not resolve", next: "check the host name in directory.url and this machine's DNS")
                continue
            }
            add("dns", .ok, "\(url): \(parts.host) → \(addresses.prefix(3).joined(separator: ", "))")
            guard tcpAccepts(host: parts.host, port: parts.port, timeout: configuration.timeout) else {
                add("tcp", .failed, "\(url): nothing accepts connections on port \(parts.port)",
                    next: "check that the server is up, the port, and any firewall between here and there")
                continue
            }
            add("tcp", .ok, "\(url) accepts connections")
            var single = configuration
            single.urls = [url]
            let secure = url.lowercased().hasPrefix("ldaps://") || configuration.startTLS
            do {
                let opened = try DirectoryConnection.open(single, logger: logger)
                if secure { checks.append(tlsCheck(opened, url: url, configuration: configuration, now: now)) }
                add("bind", .ok, "\(url): bound as \(configuration.bindDN ?? "(anonymous)")")
                if connection == nil { connection = opened }
            } catch {
                switch error.code {
                case .tls:
                    add("tls", .failed, "\(url): \(error.resultText ?? "TLS failed")\(error.diagnostic.map { "; \($0)" } ?? "")", next: error.hint)
                case .bind, .credentials, .configuration:
                    if secure { add("tls", .ok, "\(url): handshake done" + (configuration.tlsVerify ? ", certificate and host name verified" : " (not verified: tls_verify: false)")) }
                    add("bind", .failed, "\(url): \(error.resultText ?? error.code.rawValue)\(error.diagnostic.map { "; \($0)" } ?? "")", next: error.hint)
                default:
                    add("bind", .failed, "\(url): \(error.resultText ?? error.code.rawValue)", next: error.hint)
                }
            }
        }
        if let connection {
            checks += directoryChecks(mapping, connection: connection, logger: logger, now: now)
        } else if !checks.contains(where: { $0.status == .failed }) {
            add("bind", .failed, "no directory URL could be reached", next: "set directory.url")
        }
        checks += storeChecks(mapping: mapping, storePath: storePath)
        return DoctorReport(mapping: mapping.file, client: mapping.client.name, checks: checks)
    }

    /// The chain was verified by the handshake (against ca_file or the system CAs, with the
    /// host name); what is left to say is how long the certificate has.
    private static func tlsCheck(_ connection: DirectoryConnection, url: String, configuration: DirectoryConfiguration, now: Date) -> DoctorCheck {
        let against = configuration.caFile.map { "ca_file \($0)" } ?? "the system's CAs"
        let verified = configuration.tlsVerify ? "certificate and host name verified against \(against)" : "handshake done (not verified)"
        guard let expiry = connection.peerCertificateExpiry() else {
            return DoctorCheck(check: "tls", status: .ok, side: .directory, detail: "\(url): \(verified); expiry unknown", next: nil)
        }
        let days = Int((expiry.timeIntervalSince(now) / 86400).rounded(.down))
        let date = String(StoreTime.text(expiry).prefix(10))
        if days < certificateWarningDays {
            return DoctorCheck(check: "tls", status: .warning, side: .directory,
                               detail: "\(url): \(verified); the certificate expires in \(days) day\(days == 1 ? "" : "s") (\(date))",
                               next: "renew the server's certificate before \(date): after that every sync fails with a TLS error")
        }
        return DoctorCheck(check: "tls", status: .ok, side: .directory, detail: "\(url): \(verified); the certificate expires in \(days) days (\(date))", next: nil)
    }

    /// On the bound connection: the paged count against the account's limits, what the server
    /// offers, its clock, and the groups the rules name.
    private static func directoryChecks(_ mapping: Mapping, connection: DirectoryConnection, logger: Logger, now: Date) -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        func add(_ check: String, _ status: DoctorCheck.Status, _ detail: String, next: String? = nil) {
            checks.append(DoctorCheck(check: check, status: status, side: .directory, detail: detail, next: next))
        }
        do {
            let report = try DirectoryCheck.run(mapping, sampleSize: 0, logger: logger)
            let groups = report.groups.map { ", \($0) groups under \(mapping.groups?.base ?? "")" } ?? ""
            if report.users == 0 {
                add("entries", .failed, "no users under \(mapping.users.base) match \(mapping.users.filter)\(groups)",
                    next: "check users.base and users.filter, and that the bind account may read the entries (servers answer \"success, 0 entries\" when access rules hide them)")
            } else {
                add("entries", .ok, "\(report.users) users under \(mapping.users.base) match, read in full through paging\(groups)")
            }
        } catch let error as DirectoryError {
            add("entries", .failed, "counting the users (paged) failed: \(error.resultText ?? error.code.rawValue)\(error.diagnostic.map { "; \($0)" } ?? "")",
                next: error.code == .sizeLimit
                    ? "the bind account's size limit is below the number of entries the filter matches: lift it (OpenLDAP: limits dn.exact=\"\(mapping.directory.bindDN ?? "…")\" size=unlimited; 389 DS: nsSizeLimit: -1 and nsLookThroughLimit: -1 on the account; AD: MaxPageSize)"
                    : error.hint)
        } catch {
            add("entries", .failed, "counting the users failed: \(error)", next: nil)
        }

        // What the server offers.
        if let offered = try? connection.capabilities() {
            let features: [(String, Bool)] = [
                ("paging (RFC 2696)", offered.controls.contains("1.2.840.113556.1.4.319")),
                ("content sync (RFC 4533)", offered.controls.contains(DirectoryConnection.syncRequestOID)),
                ("DirSync", offered.controls.contains("1.2.840.113556.1.4.841")),
                ("AD in-chain rule and range retrieval", offered.isActiveDirectory),
            ]
            let stamps = (try? connection.readEntry(mapping.users.base, attributes: ["modifyTimestamp"]))??.first("modifytimestamp") != nil
            let yes = features.filter(\.1).map(\.0) + (stamps ? ["modifyTimestamp"] : [])
            let no = features.filter { !$0.1 }.map(\.0) + (stamps ? [] : ["modifyTimestamp"])
            let incremental = yes.contains("content sync (RFC 4533)") || offered.isActiveDirectory || stamps
            add("server", incremental && yes.contains("paging (RFC 2696)") ? .ok : .warning,
                "offers \(yes.isEmpty ? "none of the features dirbridge uses" : yes.joined(separator: ", "))" + (no.isEmpty ? "" : "; not \(no.joined(separator: ", "))"),
                next: yes.contains("paging (RFC 2696)") ? "incremental runs need content sync, Active Directory's uSNChanged or modifyTimestamp; without them every run reads everything"
                    : "the server does not announce paged results: reads above its size limit will fail")
        } else {
            add("server", .warning, "the root DSE could not be read: what the server offers is unknown", next: "grant the bind account read access to the root DSE")
        }

        // The server's clock: Active Directory publishes currentTime; OpenLDAP's cn=Monitor does when configured.
        let clock = (try? connection.readEntry("", attributes: ["currentTime"]))??.first("currenttime")
            ?? (try? connection.readEntry("cn=Current,cn=Time,cn=Monitor", attributes: ["monitorTimestamp"]))??.first("monitortimestamp")
        if let clock, let serverTime = GeneralizedTime.date(clock) {
            let skew = serverTime.timeIntervalSince(now)
            add("clock", abs(skew) > clockWarningSeconds ? .warning : .ok,
                "the server's clock is \(Int(abs(skew).rounded()))s \(skew >= 0 ? "ahead of" : "behind") ours",
                next: "synchronise both clocks (NTP): modifyTimestamp high-water marks and lease expiry depend on them")
        } else {
            add("clock", .ok, "the server does not publish its time (AD's currentTime, OpenLDAP's cn=Monitor); incremental runs keep a \(Int(IncrementalOptions().margin))s margin")
        }

        // Every group a rule names by DN.
        let named = mapping.rules.compactMap { rule -> (Int, Int, String)? in
            if case .group(let dn) = rule.selector { return (rule.index, rule.line, dn) }
            return nil
        }
        var missing: [String] = []
        for (index, line, dn) in named {
            let found = (try? connection.readEntry(dn, attributes: ["1.1"])) ?? nil
            if found == nil { missing.append("rule \(index) (line \(line)): \(dn)") }
        }
        if named.isEmpty {
            add("groups", .ok, "no rule names a group by DN")
        } else if missing.isEmpty {
            add("groups", .ok, "the \(named.count) group\(named.count == 1 ? "" : "s") the rules name exist")
        } else {
            add("groups", .failed, "\(missing.count) group\(missing.count == 1 ? " named by a rule does" : "s named by rules do") not exist or cannot be read: \(missing.joined(separator: "; "))",
                next: "fix the DN in the rule (a sync would run, but such a rule never matches anyone), or grant the bind account read access to the group")
        }
        return checks
    }

    /// The store: where it is, that it can be written, its schema, and who holds a lease.
    private static func storeChecks(mapping: Mapping, storePath: String?) -> [DoctorCheck] {
        guard let path = storePath ?? mapping.storePath else {
            return [DoctorCheck(check: "store", status: .failed, side: .store, detail: "no store: the mapping has no store section and no --store was given",
                                next: "add store: { sqlite: /var/lib/dirbridge/portal.sqlite } (or { postgres: URL }) to the mapping, or pass --store")]
        }
        let health = isPostgresLocation(path)
            ? StoreHealth.checkPostgres(url: path, password: mapping.storePassword, client: mapping.client.name)
            : StoreHealth.check(path: path, client: mapping.client.name)
        return [DoctorCheck(check: "store", status: health.problem == nil ? (health.warning == nil ? .ok : .warning) : .failed, side: .store,
                            detail: health.problem ?? health.warning ?? health.summary, next: health.next)]
    }

    /// The addresses `host` resolves to.
    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let current = node {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(current.pointee.ai_addr, current.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !addresses.contains(text) { addresses.append(text) }
            }
            node = current.pointee.ai_next
        }
        return addresses
    }
}
