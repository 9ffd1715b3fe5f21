/// Lets the users a full plan loads from the store share storage with equal values already in
/// memory: the directory's mapped user with the same external id (its fields, id and DN), and
/// the other stored users' times (the users one apply wrote share its time).
///
/// In a resync most stored users equal their mapped users, and a copy of each value per user
/// held a 100k-user client's state at about 55 MB beside the directory's; shared, the state
/// costs little more than the rows' ids and flags.
///
/// A value is replaced only by one with the same bytes, not merely an equal String (Swift
/// compares canonically: "é" precomposed equals "e" and a combining accent): the loaded state
/// is byte for byte the stored one, as a saved plan's fingerprint of the store needs.
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

    /// Replaces the values of `stored` that have the same bytes as one already held.
    func share(_ stored: inout StoredUser) {
        stored.createdAt = time(stored.createdAt)
        stored.updatedAt = time(stored.updatedAt)
        guard let id = stored.user.externalID, let position = positions[id], id.hasSameUTF8(as: users[position].mapped.externalID) else { return }
        stored.user.externalID = users[position].mapped.externalID
        if let dn = stored.user.externalDN, dn.hasSameUTF8(as: users[position].mapped.dn) { stored.user.externalDN = users[position].mapped.dn }
        // Each field with the mapped field's bytes takes its storage; when every field does (or
        // both have none), the whole slot array is the mapped user's.
        var every = true
        for field in PortalField.allCases {
            switch (stored.user.fields[field], users[position].mapped.fields[field]) {
            case (nil, nil): continue
            case let (mine?, value?) where mine.hasSameUTF8(as: value): stored.user.fields[field] = value
            default: every = false
            }
        }
        if every { stored.user.fields = users[position].mapped.fields }
    }

    /// A time shared with the rows before it; only ASCII text is pooled (the pool compares as
    /// Strings do, which for ASCII is byte for byte).
    private func time(_ text: String) -> String {
        if !text.hasSameUTF8(as: lastTime) {
            guard text.utf8.allSatisfy({ $0 < 0x80 }) else { return text }
            lastTime = times.shared(text)
        }
        return lastTime
    }
}
