internal import CLDAP

/// The version of the libldap that dirbridge runs with (not the one it was built against).
///
/// `ldap_get_option(NULL, LDAP_OPT_API_INFO, …)` fills an `LDAPAPIInfo` whose
/// `ldapai_vendor_version` encodes 2.5.13 as 20513; its extension list and vendor name are
/// allocated by libldap and freed here (`ldap_memvfree`, `ldap_memfree`).
enum LDAPLibraryVersion {
    /// "2.5.13", or nil when libldap does not answer.
    static func current() -> String? {
        var info = LDAPAPIInfo()
        info.ldapai_info_version = LDAP_API_INFO_VERSION
        guard ldap_get_option(nil, LDAP_OPT_API_INFO, &info) == LDAP_OPT_SUCCESS else { return nil }
        defer {
            if let extensions = info.ldapai_extensions {
                extensions.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 1) { ldap_memvfree($0) }
            }
            if let vendor = info.ldapai_vendor_name { ldap_memfree(vendor) }
        }
        return format(vendorVersion: Int(info.ldapai_vendor_version))
    }

    /// OpenLDAP's vendor version as dotted text: 20513 → "2.5.13".
    static func format(vendorVersion: Int) -> String? {
        guard vendorVersion > 0 else { return nil }
        return "\(vendorVersion / 10000).\(vendorVersion / 100 % 100).\(vendorVersion % 100)"
    }
}
