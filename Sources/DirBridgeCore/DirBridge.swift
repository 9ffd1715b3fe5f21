/// dirbridge keeps a client portal's users in step with a corporate directory.
///
/// The pipeline is visible in the folders: `Directory/` reads LDAP, `Mapping/` turns entries
/// into client users through a mapping file's rules, `Planning/` diffs them against the store
/// and applies the guards, `Store/` writes the portal's SQLite tables, `Reporting/` renders.
public enum DirBridge {
    /// The version written into sync runs and printed by `dirbridge --version`.
    public static let version = "0.1.0"
}
