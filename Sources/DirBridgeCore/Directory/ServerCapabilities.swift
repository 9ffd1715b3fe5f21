internal import CLDAP

/// What a directory server says of itself in its root DSE: the capabilities and controls it offers.
///
/// Read once per sync where a feature depends on the server, e.g. Active Directory's in-chain
/// matching rule, which OpenLDAP does not know and answers with "success, 0 entries".
public struct ServerCapabilities: Sendable, Equatable {
    /// `supportedCapabilities` OIDs (Active Directory and AD LDS publish them; OpenLDAP does not).
    public var capabilities: Set<String>
    /// `supportedControl` OIDs.
    public var controls: Set<String>
    /// `vendorName` (389 DS: "389 Project"; OpenLDAP and Active Directory publish none).
    public var vendorName: String?

    /// `LDAP_CAP_ACTIVE_DIRECTORY_OID` (Windows AD, Samba AD DC) and `LDAP_CAP_ACTIVE_DIRECTORY_ADAM_OID` (AD LDS).
    static let activeDirectoryOIDs: Set<String> = ["1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1851"]

    public init(capabilities: Set<String>, controls: Set<String>, vendorName: String? = nil) {
        self.capabilities = capabilities
        self.controls = controls
        self.vendorName = vendorName
    }

    /// Active Directory (or Samba's AD DC, or AD LDS): offers range retrieval and the in-chain rule.
    public var isActiveDirectory: Bool { !capabilities.isDisjoint(with: Self.activeDirectoryOIDs) }

    /// 389 Directory Server (and so FreeIPA / Red Hat IdM), whose content sync differs from
    /// RFC 4533 as OpenLDAP implements it (see ``DirectoryConnection/refresh(_:cookie:dialect389:shouldStop:)``).
    public var isDirectoryServer389: Bool { vendorName?.hasPrefix("389") == true }
}

extension DirectoryConnection {
    /// Reads the root DSE's `supportedCapabilities`, `supportedControl` and `vendorName`.
    public func capabilities() throws -> ServerCapabilities {
        let root = try readEntry("", attributes: ["supportedCapabilities", "supportedControl", "vendorName"])
        return ServerCapabilities(capabilities: Set(root?.strings("supportedcapabilities") ?? []),
                                  controls: Set(root?.strings("supportedcontrol") ?? []),
                                  vendorName: root?.strings("vendorname").first)
    }

    /// One entry by DN (a base-scope search, answered unpaged): the root DSE (`""`), a naming context.
    func readEntry(_ dn: String, attributes: [String]) throws -> DirectoryEntry? {
        var found: DirectoryEntry?
        try search(SearchRequest(base: dn, scope: .base, filter: "(objectClass=*)", attributes: attributes)) { page in
            found = page.first ?? found
        }
        return found
    }
}

extension DirectoryError {
    /// The server refused a filter's matching rule or extensible match (it does not implement it):
    /// inappropriate matching, unwilling to perform, a protocol error, or an unavailable critical extension.
    public var isUnsupportedFeature: Bool {
        guard let resultCode else { return false }
        return [LDAP_INAPPROPRIATE_MATCHING, LDAP_UNWILLING_TO_PERFORM, LDAP_PROTOCOL_ERROR, LDAP_UNAVAILABLE_CRITICAL_EXTENSION]
            .contains(resultCode)
    }
}
