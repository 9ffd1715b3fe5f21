import Foundation
import NIOSSL
import PostgresNIO

/// A PostgreSQL store's address as libpq users write it:
/// `postgresql://user@host[:port]/database?sslmode=…&sslrootcert=…` (a password in it is refused).
///
/// The password comes, in this order, from `store.password_env`, `store.password_file` (not
/// readable by group or others), `PGPASSWORD`, then `PGPASSFILE` or `~/.pgpass` (libpq's
/// format, `host:port:database:user:password`). It never appears in ``display`` nor in any error.
struct PostgresAddress: Sendable {
    var host: String
    var port: Int
    var user: String
    var database: String
    var password: String?
    var sslMode: SSLMode
    var rootCertificate: String?
    var connectTimeout: Int64 = 10

    /// libpq's `sslmode` values.
    enum SSLMode: String, Sendable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// The URL without its password, for messages and `sync_runs`.
    var display: String {
        "postgresql://\(user)@\(host):\(port)/\(database)" + (sslMode == .prefer ? "" : "?sslmode=\(sslMode.rawValue)")
    }

    init(url text: String, password source: StorePasswordSource, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(StoreError)
    {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "postgresql" || scheme == "postgres"
        else {
            throw StoreError(.cannotOpen, "\(Self.redacted(text)) is not a PostgreSQL URL: write postgresql://USER@HOST:PORT/DATABASE")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? environment["PGHOST"] ?? "localhost"
        port = components.port ?? environment["PGPORT"].flatMap(Int.init) ?? 5432
        user = components.user.flatMap { $0.isEmpty ? nil : $0 } ?? environment["PGUSER"] ?? "postgres"
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? (environment["PGDATABASE"] ?? user) : path
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let modeText = query["sslmode"] ?? environment["PGSSLMODE"] ?? "prefer"
        guard let mode = SSLMode(rawValue: modeText) else {
            throw StoreError(.cannotOpen, "sslmode \(modeText) in \(Self.redacted(text)) is not one of disable, allow, prefer, require, verify-ca, verify-full")
        }
        sslMode = mode
        rootCertificate = query["sslrootcert"] ?? environment["PGSSLROOTCERT"]
        if let timeout = query["connect_timeout"].flatMap(Int64.init) { connectTimeout = timeout }
        // A password in the URL would reach shell history, process lists, plan files and logs.
        if components.password != nil || query["password"] != nil {
            throw StoreError(.cannotOpen, "\(Self.redacted(text)) holds a password, which dirbridge refuses (it would show in process "
                + "lists, plans and logs): drop it from the URL and use PGPASSWORD, ~/.pgpass, or the mapping's "
                + "store.password_env / store.password_file")
        }
        password = try Self.password(source, host: host, port: port, database: database, user: user, environment: environment)
    }

    /// The URL with any password replaced by `***`.
    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "postgresql://…"
    }

    private static func password(
        _ source: StorePasswordSource, host: String, port: Int, database: String, user: String, environment: [String: String]
    ) throws(StoreError) -> String? {
        if let name = source.environmentVariable {
            guard let value = environment[name], !value.isEmpty else {
                throw StoreError(.cannotOpen, "store.password_env names \(name), which is not set: export it before running dirbridge")
            }
            return value
        }
        if let file = source.file {
            return try readPasswordFile(file)
        }
        if let value = environment["PGPASSWORD"], !value.isEmpty { return value }
        let passFile = environment["PGPASSFILE"] ?? (environment["HOME"].map { $0 + "/.pgpass" })
        guard let passFile, let text = try? String(contentsOfFile: passFile, encoding: .utf8) else { return nil }
        // libpq ignores a .pgpass that group or others can read; so does dirbridge.
        if let mode = (try? FileManager.default.attributesOfItem(atPath: passFile))?[.posixPermissions] as? Int, mode & 0o077 != 0 {
            return nil
        }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = splitPassLine(String(line))
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    /// A `.pgpass` line's five fields: `:` separates, `\` escapes.
    private static func splitPassLine(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" && fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }

    private static func readPasswordFile(_ path: String) throws(StoreError) -> String {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let text = try? String(contentsOfFile: path, encoding: .utf8)
        else {
            throw StoreError(.cannotOpen, "store.password_file \(path) cannot be read: check the path and that dirbridge's user may read it")
        }
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw StoreError(.cannotOpen, "store.password_file \(path) is readable by others (mode \(String(mode, radix: 8))): chmod 600 \(path)")
        }
        let password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard !password.isEmpty else { throw StoreError(.cannotOpen, "store.password_file \(path) is empty") }
        return password
    }

    /// postgres-nio's configuration: TLS as `sslmode` asks (verify-full checks the host name,
    /// verify-ca only the chain, require encrypts without checking, prefer falls back to plain).
    func configuration() throws(StoreError) -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable, .allow:
            tls = .disable
        case .prefer, .require, .verifyCA, .verifyFull:
            var settings = TLSConfiguration.makeClientConfiguration()
            switch sslMode {
            case .verifyFull: settings.certificateVerification = .fullVerification
            case .verifyCA: settings.certificateVerification = .noHostnameVerification
            default: settings.certificateVerification = .none
            }
            if let rootCertificate, sslMode == .verifyCA || sslMode == .verifyFull {
                settings.trustRoots = .file(rootCertificate)
            }
            do {
                let context = try NIOSSLContext(configuration: settings)
                tls = sslMode == .prefer ? .prefer(context) : .require(context)
            } catch {
                throw StoreError(.cannotOpen, "TLS for \(display) cannot be set up (sslrootcert \(rootCertificate ?? "none")): \(error)")
            }
        }
        var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(connectTimeout)
        configuration.options.additionalStartupParameters = [("application_name", "dirbridge")]
        // verify-full checks the certificate against the host name (SNI), or against the
        // peer's address when the host is an IP address (which SNI cannot carry).
        return configuration
    }

    /// Settings of every session (`SET` once connected: poolers such as PgBouncer refuse them
    /// as startup parameters; one that refuses a `SET` leaves the server's default), so that a
    /// dirbridge that hangs or vanishes mid-transaction never holds the client's locks (its
    /// lease row, its change counter) for long: the server probes an idle connection after a
    /// minute and drops it after six unanswered probes, ends a session left idle inside a
    /// transaction after five minutes, and a statement waiting more than five minutes for a
    /// lock (a portal transaction left open) fails rather than waits forever. The apply then
    /// rolls back and the next tick retries.
    static let sessionSettings: [(String, String)] = [
        ("tcp_keepalives_idle", "60"),
        ("tcp_keepalives_interval", "10"),
        ("tcp_keepalives_count", "6"),
        ("idle_in_transaction_session_timeout", "300000"),
        ("lock_timeout", "300000"),
    ]
}
