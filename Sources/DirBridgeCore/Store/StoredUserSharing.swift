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
    /// Positions in `users` by the hash of their external id's UTF-8 bytes (-1 where two ids
    /// share a hash: those users are not shared). A hit is confirmed byte for byte.
    ///
    /// Built on another thread while the store's first rows are read (hashing 100k ids took
    /// about 30 ms of the run's own thread before the load began); taken by the first use.
    private var positions: [Int: Int] = [:]
    private var indexing: Background<[Int: Int]>?
    private var times = StringPool()
    /// The last row's time: rows in id order mostly have their neighbour's (one apply's).
    private var lastTime = ""

    public init(snapshot: DirectorySnapshot) {
        users = snapshot.users
        indexing = Background(users) { users in
            var positions: [Int: Int] = [:]
            positions.reserveCapacity(users.count)
            for position in users.indices {
                let hash = Self.hash(users[position].mapped.externalID)
                positions[hash] = positions[hash] == nil ? position : -1
            }
            return positions
        }
    }

    /// Waits for the index of external ids once, at the first use (uses follow one another).
    /// A load whose rows arrive on an event loop calls it first, on its own thread, so that the
    /// loop never waits for it.
    func indexed() {
        guard let job = indexing else { return }
        positions = job.value()
        indexing = nil
    }

    private static func hash(_ text: String) -> Int {
        var hasher = Hasher()
        text.hashUTF8(into: &hasher)
        return hasher.finalize()
    }

    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        return hasher.finalize()
    }

    /// The directory user whose external id has these bytes.
    private func position(of id: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let position = positions[Self.hash(id)], position >= 0,
              users[position].mapped.externalID.hasSameUTF8(asBytes: UnsafeRawBufferPointer(id))
        else { return nil }
        return position
    }

    /// Replaces the values of `stored` that have the same bytes as one already held.
    func share(_ stored: inout StoredUser) {
        indexed()
        stored.createdAt = time(stored.createdAt)
        stored.updatedAt = time(stored.updatedAt)
        guard let id = stored.user.externalID,
              let position = id.utf8.withContiguousStorageIfAvailable({ position(of: $0) }) ?? Array(id.utf8).withUnsafeBufferPointer({ position(of: $0) })
        else { return }
        let mapped = users[position].mapped
        stored.user.externalID = mapped.externalID
        if let dn = stored.user.externalDN, dn.hasSameUTF8(as: mapped.dn) { stored.user.externalDN = mapped.dn }
        let mine = stored.user.fields
        stored.user.fields = Self.fields(sharing: mapped.fields) { field, value in
            switch (mine[field], value) {
            case (nil, nil): nil
            case let (mine?, value?) where mine.hasSameUTF8(as: value): nil
            case let (mine, _): .some(mine)
            }
        }
    }

    /// Appends the users of `rows` to `loaded`, each value made into a String only when no equal
    /// one is held: the same users as ``StoredUser/init(orderedRow:)`` followed by ``share(_:)``
    /// would give. (The load reserves room for the client's users first; a reservation per
    /// chunk here would grow the array to the exact size each time, copying it every chunk.)
    func append(_ rows: StoredUserRows, to loaded: inout [StoredUser]) {
        indexed()
        rows.forEach { row in
            let mapped = row.externalID.flatMap { position(of: $0) }.map { users[$0].mapped }
            // An unmatched row shares nothing: every field it has differs from none.
            let fields = Self.fields(sharing: mapped?.fields ?? PortalFieldValues()) { field, value in
                switch (row.field(field), value) {
                case (nil, nil): nil
                case let (mine?, value?) where value.hasSameUTF8(asBytes: UnsafeRawBufferPointer(mine)): nil
                case let (mine, _): .some(mine.map(String.init(utf8Bytes:)))
                }
            }
            let externalDN: String? = row.externalDN.map { dn in
                if let mapped, mapped.dn.hasSameUTF8(asBytes: UnsafeRawBufferPointer(dn)) { return mapped.dn }
                return String(utf8Bytes: dn)
            }
            let source = row.source.map(String.init(utf8Bytes:)) ?? ""
            let user = PortalUser(
                email: fields[.email] ?? "", fields: fields, role: row.role.map(String.init(utf8Bytes:)) ?? "", globalAdmin: row.globalAdmin,
                groupManager: row.groupManager, hasLogin: row.hasLogin, enabled: row.enabled, source: RecordSource(rawValue: source) ?? .portal,
                externalID: mapped?.externalID ?? row.externalID.map(String.init(utf8Bytes:)), externalDN: externalDN)
            loaded.append(StoredUser(id: row.id, clientID: row.clientID, userGroupID: row.userGroupID, user: user,
                                     createdAt: time(row.createdAt), updatedAt: time(row.updatedAt)))
        }
    }

    /// A loaded user's fields sharing `mapped`'s storage: `mapped` itself (its whole slot array)
    /// but where `own` gives the loaded value, for a field whose bytes differ (`own` returns nil
    /// for a field with the mapped value's bytes, or with no value on either side).
    private static func fields(sharing mapped: PortalFieldValues, own: (PortalField, String?) -> String??) -> PortalFieldValues {
        var fields = mapped
        for field in PortalField.allCases {
            if let value = own(field, mapped[field]) { fields[field] = value }
        }
        return fields
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

    /// ``time(_:)`` of a column's bytes, made into a String only when they are not the last row's.
    private func time(_ bytes: UnsafeBufferPointer<UInt8>?) -> String {
        guard let bytes else { return "" }
        return lastTime.hasSameUTF8(asBytes: UnsafeRawBufferPointer(bytes)) ? lastTime : time(String(utf8Bytes: bytes))
    }
}
