/// Whether a cached directory entry is a user or a group.
public enum EntryKind: String, Sendable { case user, group }

/// Keeps raw entries of a full read for the directory cache, keyed by immutable id, and
/// the newest `modifyTimestamp` seen (the high-water mark, in the server's clock).
final class DirectoryCacheCollector {
    let mapping: Mapping
    /// Attributes read for the cache beside the mapping's: the keys and the timestamp high-water mark.
    static let cacheAttributes = ["entryUUID", "nsUniqueId", "modifyTimestamp", "objectGUID"]
    let extraAttributes = DirectoryCacheCollector.cacheAttributes
    /// Rows kept in memory: every row when no spool could be made.
    private(set) var upserts: [CacheRow] = []
    /// The rows of a full read, in a temporary file (``CacheRowSpool``), or nil.
    let spool: CacheRowSpool?
    private(set) var newestUser: String?
    private(set) var newestGroup: String?

    /// The cache's key attribute (``SyncState/syncKey``): nil for entryUUID, `nsuniqueid` on 389 DS.
    let syncKey: String?

    /// False for a dry run: its cache update is never written, so no entry is kept (the
    /// high-water marks and the keys' check still are).
    let keepsEntries: Bool

    /// `spool` is made only when entries are kept; nil keeps them in memory.
    init(mapping: Mapping, syncKey: String? = nil, keepsEntries: Bool = true, spool: @autoclosure () -> CacheRowSpool? = CacheRowSpool()) {
        self.mapping = mapping
        self.syncKey = syncKey
        self.keepsEntries = keepsEntries
        self.spool = keepsEntries ? spool() : nil
    }

    /// Ends the read: throws when the spool could not keep every row.
    func finish() throws(SyncError) { try spool?.finish() }

    /// False once a kept entry had no `entryUUID` (or no `nsUniqueId` where that keys the cache).
    private(set) var everyEntryHasUUID = true

    /// Keeps a user entry; `email` is its mapped email, lowercased (nil: it maps to no user).
    func keep(user entry: EntryAttributes, email: String?) { keep(entry, kind: .user, email: email, newest: &newestUser) }

    func keep(group entry: EntryAttributes) { keep(entry, kind: .group, email: nil, newest: &newestGroup) }

    private func keep(_ entry: EntryAttributes, kind: EntryKind, email: String?, newest: inout String?) {
        let uuid = Self.syncUUID(of: entry, syncKey: syncKey)
        if uuid?.isEmpty ?? true { everyEntryHasUUID = false }
        guard let key = Self.key(of: entry, uuid: uuid, kind: kind, mapping: mapping) else { return }
        if keepsEntries {
            let row = CacheRow(kind: kind, key: key, entry: entry, mapping: mapping, email: .some(email))
            if let spool { spool.append(row) } else { upserts.append(row) }
        }
        if let stamp = entry.first("modifytimestamp"), stamp > (newest ?? "") { newest = stamp }
    }

    /// The cache key: `entryUUID` where the server has it (content sync names entries by
    /// it), else the user's immutable id, else a group's `objectGUID` (AD: a renamed group stays
    /// one entry), else a group's normalised DN.
    static func key(of entry: EntryAttributes, kind: EntryKind, mapping: Mapping, syncKey: String? = nil) -> String? {
        key(of: entry, uuid: syncUUID(of: entry, syncKey: syncKey), kind: kind, mapping: mapping)
    }

    /// The UUID a content sync names `entry` by: its `entryUUID`, or on 389 DS (`syncKey`
    /// `nsuniqueid`) its `nsUniqueId` in UUID layout.
    static func syncUUID(of entry: EntryAttributes, syncKey: String?) -> String? {
        syncKey == "nsuniqueid" ? entry.first("nsuniqueid").flatMap(UUIDText.fromNSUniqueID) : entry.first("entryuuid")
    }

    private static func key(of entry: EntryAttributes, uuid: String?, kind: EntryKind, mapping: Mapping) -> String? {
        if let uuid, !uuid.isEmpty { return uuid.lowercasedSharingStorage }
        if kind == .group, let guid = entry.bytes("objectguid").first, guid.count == 16 { return "guid:" + TemplateFilter.uuidText(guid) }
        if kind == .user {
            let id = Mapping.externalID(entry, attribute: mapping.users.id)
            return id.isEmpty ? nil : id
        }
        return (try? DistinguishedName.normalize(entry.dn)).map { "dn:" + $0 }
    }
}
