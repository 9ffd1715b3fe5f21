/// A failure talking to the directory: connect, TLS, bind, search, paging or credentials.
///
/// Carries the LDAP result code, libldap's text for it, the server's diagnostic message and
/// the operation that failed (bind as a DN, search of a base with a filter) — never the
/// password. `description` ends with what the administrator can do next.
public struct DirectoryError: DirBridgeFailure, Equatable {
    /// What kind of directory failure this is.
    public enum Code: String, Sendable {
        /// No server answered (every URL tried), or the connection dropped.
        case unreachable
        /// TLS could not be set up or the server's certificate did not verify.
        case tls
        /// The server refused the bind (wrong DN or password, locked account).
        case bind
        /// The bind password could not be read (variable unset, file missing or too open).
        case credentials
        /// A search failed (bad base, bad filter, insufficient access, other result codes).
        case search
        /// The server stopped a search at its size limit or an administrative limit (389 DS's
        /// look-through limit, result 11): the read is incomplete.
        case sizeLimit
        /// The server or the client stopped an operation at a time limit.
        case timeLimit
        /// The server answered with a referral instead of entries.
        case referral
        /// The paged-results exchange broke (missing or bad control, cookie error).
        case paging
        /// The directory settings themselves are unusable (bad URL, unreadable CA file).
        case configuration
    }

    public var code: Code
    /// The LDAP result code, when the failure came from libldap or the server.
    public var resultCode: Int32?
    /// libldap's text for the result code (`ldap_err2string`).
    public var resultText: String?
    /// The server's diagnostic message, when it sent one.
    public var diagnostic: String?
    /// What was being done: "bind as cn=sync,dc=example,dc=com to ldap://…", "search ou=people,… (objectClass=*)".
    public var operation: String
    /// What the administrator can do next.
    public var hint: String

    public var kind: FailureKind { code == .configuration || code == .credentials ? .usage : .directory }

    public init(
        _ code: Code, operation: String, resultCode: Int32? = nil, resultText: String? = nil,
        diagnostic: String? = nil, hint: String
    ) {
        self.code = code
        self.operation = operation
        self.resultCode = resultCode
        self.resultText = resultText
        self.diagnostic = diagnostic
        self.hint = hint
    }

    public var description: String {
        // Credentials and configuration are the mapping's side (exit 1), not the server's (exit 3).
        var text = "\(kind == .usage ? "setup" : "directory") error (\(code.rawValue)): \(operation) failed"
        if let resultCode {
            text += ": LDAP result \(resultCode)"
            if let resultText, !resultText.isEmpty { text += " (\(resultText))" }
        }
        if let diagnostic, !diagnostic.isEmpty { text += "; server says: \(diagnostic)" }
        return text + "\n  next: " + hint
    }
}

extension DirectoryError.Code {
    /// The advice that fits most failures of this kind; call sites refine it when they know more.
    var defaultHint: String {
        switch self {
        case .unreachable:
            "check that the server is up, the URL's host and port, and any firewall; with several URLs every one was tried"
        case .tls:
            "check ca_file names the CA that signed the server's certificate and that the URL's host name is in the certificate; tls_verify: false is for tests only"
        case .bind:
            "check bind_dn and the password in bind_password_env / bind_password_file, and that the account is not locked"
        case .credentials:
            "set the environment variable named by bind_password_env, or point bind_password_file at a file only its owner can read (chmod 600)"
        case .search:
            "check the base DN and filter in the mapping, and that the bind account may read them"
        case .sizeLimit:
            "the server capped the number of entries: lift the size limit for the bind account (OpenLDAP: limits dn.exact=… size=unlimited; 389 DS / FreeIPA: nsSizeLimit: -1 and nsLookThroughLimit: -1 on the account's entry; AD: MaxPageSize) — dirbridge never syncs a partial read"
        case .timeLimit:
            "raise directory.timeout in the mapping, or the server's time limit for the bind account, or narrow the base and filter"
        case .referral:
            "point users.base / groups.base at a naming context this server holds, or list the server holding it in directory.url"
        case .paging:
            "the server's paged-results support misbehaved; try a smaller directory.page_size or check the server's logs"
        case .configuration:
            "fix the directory section of the mapping file"
        }
    }
}
