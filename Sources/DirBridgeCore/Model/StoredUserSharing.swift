/// Lets the users a full plan loads from the store share storage with equal values already in
/// memory: the directory's mapped user with the same external id (its fields, id and DN), and
/// the other stored users' times (the users one apply wrote share its time).
///
/// In a resync most stored users equal their mapped users, and a copy of each value per user
/// held a 100k-user client's state at about 55 MB beside the directory's; shared, the state
/// costs little more than the rows' ids and flags. A loaded user compares equal either way.
///
/// Used by one load at a time, one row after another (``PortalStorage/loadState(clientID:sharing:)``).
public final class StoredUserSharing: @unchecked Sendable {
    private let users: [DirectoryUser]
    private let positions: [String: Int]
    private var times = StringPool()

    public init(snapshot: DirectorySnapshot) {
        users = snapshot.users
        var positions: [String: Int] = [:]
        positions.reserveCapacity(users.count)
        for (position, user) in users.enumerated() { positions[user.mapped.externalID] = position }
        self.positions = positions
    }

    /// Replaces the values of `stored` that equal one already held by that copy.
    func share(_ stored: inout StoredUser) {
        stored.createdAt = times.shared(stored.createdAt)
        stored.updatedAt = times.shared(stored.updatedAt)
        guard let id = stored.user.externalID, let position = positions[id] else { return }
        let mapped = users[position].mapped
        stored.user.externalID = mapped.externalID
        if stored.user.externalDN == mapped.dn { stored.user.externalDN = mapped.dn }
        if stored.user.fields == mapped.fields {
            stored.user.fields = mapped.fields
            return
        }
        for field in PortalField.allCases {
            if let value = mapped.fields[field], stored.user.fields[field] == value { stored.user.fields[field] = value }
        }
    }
}
