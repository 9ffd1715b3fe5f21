/// Active Directory primary groups: the membership `member` never lists.
///
/// Every AD user has a primary group, named by the relative id (RID) in its `primaryGroupID`:
/// 513, Domain Users, for almost everyone. The group's `member` attribute does not list its
/// primary members, nor does the user's `memberOf`. The group's RID is its `primaryGroupToken`
/// (a constructed attribute) or, equally, the last sub-authority of its `objectSid`. Users and
/// groups read by one mapping come from one domain (continuation references to other
/// partitions are never followed), so the RID alone names the group.
enum PrimaryGroups {
    /// The RID a group is known by as a primary group: `primaryGroupToken`, else from `objectSid`.
    static func relativeID(ofGroup entry: EntryAttributes) -> UInt32? {
        if let token = entry.first("primarygrouptoken").flatMap({ UInt32($0) }) { return token }
        return entry.bytes("objectsid").first.flatMap(relativeID(fromSID:))
    }

    /// The RID a user's primary group has: its `primaryGroupID`.
    static func primaryGroupID(of user: EntryAttributes) -> UInt32? {
        user.first("primarygroupid").flatMap { UInt32($0) }
    }

    /// The last sub-authority of a binary SID: revision (1 byte), sub-authority count (1),
    /// identifier authority (6, big-endian), then count × 4-byte little-endian sub-authorities.
    /// Nil when the bytes are not a well-formed SID with at least one sub-authority.
    static func relativeID(fromSID bytes: [UInt8]) -> UInt32? {
        guard bytes.count >= 12, bytes[0] == 1 else { return nil }
        let count = Int(bytes[1])
        guard count >= 1, bytes.count == 8 + 4 * count else { return nil }
        return subAuthority(bytes, at: bytes.count - 4)
    }

    /// A SID as text, `S-1-5-21-…-513`; nil when malformed. For messages and tests.
    static func text(ofSID bytes: [UInt8]) -> String? {
        guard relativeID(fromSID: bytes) != nil else { return nil }
        let authority = bytes[2..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let subAuthorities = stride(from: 8, to: bytes.count, by: 4).map { subAuthority(bytes, at: $0) }
        return (["S", "\(bytes[0])", "\(authority)"] + subAuthorities.map(String.init)).joined(separator: "-")
    }

    private static func subAuthority(_ bytes: [UInt8], at start: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { value, offset in value | UInt32(bytes[start + offset]) << (8 * UInt32(offset)) }
    }
}
