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
    /// The last row's time: rows in id order mostly have their neighbour's (one apply's).
    private var lastTime = ""

    public init(snapshot: DirectorySnapshot) {
        users = snapshot.users
        var positions: [String: Int] = [:]
        positions.reserveCapacity(users.count)
        for (position, user) in users.enumerated() { positions[user.mapped.externalID] = position }
        self.positions = positions
    }

    /// Replaces the values of `stored` that equal one already held by that copy.
    func share(_ stored: inout StoredUser) {
        stored.createdAt = time(stored.createdAt)
        stored.updatedAt = time(stored.updatedAt)
        guard let id = stored.user.externalID, let position = positions[id] else { return }
        stored.user.externalID = users[position].mapped.externalID
        if stored.user.externalDN == users[position].mapped.dn { stored.user.externalDN = users[position].mapped.dn }
        if stored.user.fields == users[position].mapped.fields {
            stored.user.fields = users[position].mapped.fields
            return
        }
        for field in PortalField.allCases {
            if let value = users[position].mapped.fields[field], stored.user.fields[field] == value { stored.user.fields[field] = value }
        }
    }

    private func time(_ text: String) -> String {
        if text != lastTime { lastTime = times.shared(text) }
        return lastTime
    }
}
