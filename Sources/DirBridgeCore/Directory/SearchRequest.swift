/// A search to run: where, how deep, which entries, which attributes.
public struct SearchRequest: Sendable, Equatable {
    public var base: String
    public var scope: SearchScope
    public var filter: String
    /// Attributes to return; nil asks for all user attributes.
    public var attributes: [String]?

    public init(base: String, scope: SearchScope = .sub, filter: String = "(objectClass=*)", attributes: [String]? = nil) {
        self.base = base
        self.scope = scope
        self.filter = filter
        self.attributes = attributes
    }

    /// The same search for the entries that also match `clause`.
    public func narrowed(to clause: String) -> SearchRequest {
        var request = self
        request.filter = "(&\(Self.parenthesized(filter))\(clause))"
        return request
    }

    /// The entries under the same base and scope that match `clause` but not this filter: those that left it.
    public func leaving(_ clause: String, attributes: [String]) -> SearchRequest {
        SearchRequest(base: base, scope: scope, filter: "(&(!\(Self.parenthesized(filter)))\(clause))", attributes: attributes)
    }

    /// A filter in parentheses (a mapping may write `objectClass=user`).
    static func parenthesized(_ filter: String) -> String { filter.hasPrefix("(") ? filter : "(\(filter))" }

    /// The `ldapsearch` command that asks the same question, for logs and for admins.
    public func ldapsearchEquivalent(url: String, bindDN: String?, pageSize: Int) -> String {
        var parts = ["ldapsearch", "-H", url, "-x"]
        if let bindDN { parts += ["-D", shellQuote(bindDN), "-W"] }
        parts += ["-E", "pr=\(pageSize)/noprompt", "-b", shellQuote(base), "-s", scope.rawValue, shellQuote(filter)]
        parts += (attributes ?? []).map(shellQuote)
        return parts.joined(separator: " ")
    }
}

private func shellQuote(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// What a finished paged search saw.
public struct SearchStatistics: Sendable, Equatable {
    /// Entries handed to the caller.
    public var entries = 0
    /// Search continuation references skipped (never followed: Active Directory returns them at a domain root; the run counts them).
    public var references = 0
    /// Pages the server sent.
    public var pages = 0
    public init() {}
}
