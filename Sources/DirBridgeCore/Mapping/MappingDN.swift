/// An RFC 4514 distinguished name that could not be parsed: what is wrong and where.
struct MappingDNError: Error, Equatable {
    /// What is wrong with the DN.
    var message: String
    /// 0-based character offset in the DN text.
    var offset: Int
}

/// DN normalisation for the mapping layer: the one place mapping code compares DNs.
///
/// `normalize` parses an RFC 4514 string and re-serialises it canonically so that two
/// spellings of the same DN compare equal: `CN=Sales Leads+uid=x, OU=Groups,DC=Acme`
/// becomes `cn=sales leads+uid=x,ou=groups,dc=acme`. It
/// delegates to the directory layer's ``DistinguishedName``.
enum MappingDN {
    /// Attribute types lowercased; values unescaped, lowercased, inner whitespace collapsed,
    /// then re-escaped; AVAs of a multi-valued RDN sorted; RDNs joined with `,`.
    /// The empty string is the root DN and normalises to itself.
    static func normalize(_ dn: String) throws(MappingDNError) -> String {
        do {
            return try DistinguishedName.normalize(dn)
        } catch {
            throw MappingDNError(message: error.reason, offset: error.offset - 1)
        }
    }
}
