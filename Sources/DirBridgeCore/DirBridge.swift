import GRDB

/// dirbridge keeps a client portal's users in step with a corporate directory.
///
/// The pipeline is visible in the folders: `Directory/` reads LDAP, `Mapping/` turns entries
/// into client users through a mapping file's rules, `Planning/` diffs them against the store
/// and applies the guards, `Store/` writes the portal's SQLite tables, `Reporting/` renders.
public enum DirBridge {
    /// The version written into sync runs and printed by `dirbridge --version`.
    public static let version = "0.1.0"

    /// The version of the libldap loaded at run time, e.g. "2.5.13"; nil if libldap does not say.
    public static var libldapVersion: String? { LDAPLibraryVersion.current() }

    /// The version of the SQLite loaded at run time, e.g. "3.40.1" (`sqlite3_libversion_number`).
    public static var sqliteVersion: String {
        let number = Int(Database.sqliteLibVersionNumber)
        return "\(number / 1_000_000).\(number / 1000 % 1000).\(number % 1000)"
    }

    /// What `dirbridge --version` prints: `0.1.0 (libldap 2.5.13, SQLite 3.40.1)`.
    ///
    /// The first word is the version alone, so scripts can cut it off.
    public static var versionLine: String {
        "\(version) (libldap \(libldapVersion ?? "unknown"), SQLite \(sqliteVersion))"
    }
}
