/// Where an Active Directory domain controller's update sequence stands: its `highestCommittedUSN`
/// and which DC it is (`dsServiceName`), from the root DSE.
///
/// Every write on a DC takes the next update sequence number (USN) and stamps the changed entry's
/// `uSNChanged` with it, so `(uSNChanged>=N+1)` finds everything changed since the DC stood at N,
/// without clock skew. USNs are per DC: a mark is only good against the DC that gave it, which is
/// why the server's identity travels with it (a load-balanced name can reach another DC).
public struct UpdateSequenceMark: Sendable, Equatable {
    /// `highestCommittedUSN`: every change up to this one is visible.
    public var usn: Int64
    /// `dsServiceName`: the DC's NTDS Settings DN.
    public var server: String
}

extension DirectoryConnection {
    /// The DC's current mark; nil when the root DSE has no `highestCommittedUSN` (not Active Directory).
    public func updateSequenceMark() throws -> UpdateSequenceMark? {
        guard let root = try readEntry("", attributes: ["highestCommittedUSN", "dsServiceName"]),
              let usn = root.first("highestcommittedusn").flatMap({ Int64($0) })
        else { return nil }
        return UpdateSequenceMark(usn: usn, server: root.first("dsservicename") ?? "")
    }
}
