/// How to reach and bind to a directory: the `directory:` section of a mapping file.
///
/// Holds no secret itself: ``password`` says where the bind password lives.
public struct DirectoryConfiguration: Sendable, Equatable {
    /// `ldap://` or `ldaps://` URLs, tried in order (fail-over).
    public var urls: [String]
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    public var startTLS: Bool
    /// PEM file of the CA(s) that sign the server's certificate; the system CAs when nil.
    public var caFile: String?
    /// Verify the server's certificate and host name. `false` warns on every use.
    public var tlsVerify: Bool
    /// DN for a simple bind; anonymous when nil.
    public var bindDN: String?
    /// Where the bind password comes from; never the mapping file itself.
    public var password: PasswordSource?
    /// Entries per page of a paged search (RFC 2696).
    public var pageSize: Int
    /// Seconds allowed for connecting and for each operation (bind, each page of a search).
    public var timeout: Double

    public init(
        urls: [String], startTLS: Bool = false, caFile: String? = nil, tlsVerify: Bool = true,
        bindDN: String? = nil, password: PasswordSource? = nil, pageSize: Int = 500, timeout: Double = 30
    ) {
        self.urls = urls
        self.startTLS = startTLS
        self.caFile = caFile
        self.tlsVerify = tlsVerify
        self.bindDN = bindDN
        self.password = password
        self.pageSize = pageSize
        self.timeout = timeout
    }

    /// The URLs joined for display and for `sync_runs.directory`.
    public var displayURL: String { urls.joined(separator: " ") }
}

/// Where a bind password is read from: `bind_password_env` or `bind_password_file`.
public enum PasswordSource: Sendable, Equatable {
    /// The name of an environment variable.
    case environment(String)
    /// A file path; refused when readable by group or others.
    case file(String)
}

/// The scope of a search: `base`, `one` (one level) or `sub` (the whole subtree).
public enum SearchScope: String, Sendable, Equatable, CaseIterable {
    case base, one, sub
}
