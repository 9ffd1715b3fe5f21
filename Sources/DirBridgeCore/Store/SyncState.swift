import Foundation

/// What an incremental-capable run keeps about a client between runs: how the directory
/// was last read, from where, the cookies or high-water marks to read on from, and what lets
/// a run that finds nothing changed skip planning.
///
/// Stored in `sync_state` as one row per key (the coding keys below), each value text; a
/// missing key is nil. Written only in the transaction of an apply, with the directory cache.
public struct SyncState: Sendable, Equatable, Codable {
    /// The mapping's bases, filters and attributes the cache was built for (see `scopeFingerprint`).
    public var scope: String?
    /// The directory URL the cache was read from.
    public var directory: String?
    /// How the next incremental run reads: content sync, timestamps or update sequence numbers.
    public var method: ReadMethod?
    public var lastFull: Date?
    public var lastIncremental: Date?
    /// RFC 4533 cookies of the users' and the groups' searches.
    public var usersCookie: String?
    public var groupsCookie: String?
    /// What the server's content-sync UUIDs are, and so what keys the cache: `nsuniqueid` on
    /// 389 DS (its content sync names entries by nsUniqueId), nil for entryUUID (OpenLDAP).
    public var syncKey: String?
    /// The newest `modifyTimestamp` seen (GeneralizedTime, the server's clock).
    public var usersHighwater: String?
    public var groupsHighwater: String?
    /// Active Directory: the DC's `highestCommittedUSN` at the last read, and which DC.
    public var usnHighwater: Int64?
    public var usnServer: String?
    /// The shortcut's three conditions: the mapping text, the store's change counter and the
    /// view the last applied plan left (nil: the next run plans).
    public var mappingHash: String?
    public var storeCounter: Int64?
    public var unchangedView: UnchangedView?
    /// What the last applied plan saw of the whole directory view, repeatable or not: its
    /// total and skipped entries (what a plan of the affected users only builds on).
    public var plannedView: UnchangedView?
    /// How many user entries the directory cache holds after the apply that wrote this state,
    /// so a scheduled run need not count them (a scan of the cache: a fifth of a run after 100
    /// changes at 100k). Set by a full reconcile and kept exact by every patch; nil when not
    /// known (a state written before it was kept): the run then counts.
    public var cachedUsers: Int?

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case scope, directory, method
        case lastFull = "last_full", lastIncremental = "last_incremental"
        case usersCookie = "users.cookie", groupsCookie = "groups.cookie", syncKey = "sync_key"
        case usersHighwater = "users.highwater", groupsHighwater = "groups.highwater"
        case usnHighwater = "usn.highwater", usnServer = "usn.server"
        case mappingHash = "mapping_hash", storeCounter = "store_counter", unchangedView = "unchanged_view"
        case plannedView = "planned_view", cachedUsers = "cached_users"
    }

    /// The result of a run whose read found nothing changed, when the store has not moved
    /// since the last applied run either (`counter`) and the mapping text is the same: the
    /// plan is known to be empty. The one place that decides the "nothing changed" shortcut.
    func unchangedView(mappingHash: String, counter: Int64) -> UnchangedView? {
        // Mappings built in code have no hash: no shortcut.
        guard !mappingHash.isEmpty, self.mappingHash == mappingHash, storeCounter == counter else { return nil }
        return unchangedView
    }

    /// Records what the next run's shortcut compares: the mapping text, and the applied plan's
    /// view when repeating it is safe (nil: the next run plans).
    mutating func recordShortcut(mappingHash: String, view: UnchangedView?, planned: UnchangedView) {
        self.mappingHash = mappingHash
        unchangedView = view
        plannedView = planned
    }

    // MARK: rows

    /// The state from `sync_state` rows; keys it does not know are ignored, unreadable values are nil.
    init(rows: [String: String]) {
        func text(_ key: CodingKeys) -> String? { rows[key.rawValue].flatMap { $0.isEmpty ? nil : $0 } }
        scope = text(.scope)
        directory = text(.directory)
        method = text(.method).flatMap(ReadMethod.init(rawValue:))
        lastFull = text(.lastFull).flatMap(StoreTime.date)
        lastIncremental = text(.lastIncremental).flatMap(StoreTime.date)
        usersCookie = text(.usersCookie)
        groupsCookie = text(.groupsCookie)
        syncKey = text(.syncKey)
        usersHighwater = text(.usersHighwater)
        groupsHighwater = text(.groupsHighwater)
        usnHighwater = text(.usnHighwater).flatMap { Int64($0) }
        usnServer = text(.usnServer)
        mappingHash = text(.mappingHash)
        storeCounter = text(.storeCounter).flatMap { Int64($0) }
        unchangedView = text(.unchangedView).flatMap { try? JSONDecoder().decode(UnchangedView.self, from: Data($0.utf8)) }
        plannedView = text(.plannedView).flatMap { try? JSONDecoder().decode(UnchangedView.self, from: Data($0.utf8)) }
        cachedUsers = text(.cachedUsers).flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil }
    }

    /// The `sync_state` rows of this state: one per set value.
    var rows: [String: String] {
        var rows: [String: String] = [:]
        func put(_ key: CodingKeys, _ value: String?) { if let value { rows[key.rawValue] = value } }
        put(.scope, scope)
        put(.directory, directory)
        put(.method, method?.rawValue)
        put(.lastFull, lastFull.map(StoreTime.text))
        put(.lastIncremental, lastIncremental.map(StoreTime.text))
        put(.usersCookie, usersCookie)
        put(.groupsCookie, groupsCookie)
        put(.syncKey, syncKey)
        put(.usersHighwater, usersHighwater)
        put(.groupsHighwater, groupsHighwater)
        put(.usnHighwater, usnHighwater.map { String($0) })
        put(.usnServer, usnServer)
        put(.mappingHash, mappingHash)
        put(.storeCounter, storeCounter.map { String($0) })
        put(.unchangedView, unchangedView.flatMap { try? JSONEncoder().encode($0) }.map { String(decoding: $0, as: UTF8.self) })
        put(.plannedView, plannedView.flatMap { try? JSONEncoder().encode($0) }.map { String(decoding: $0, as: UTF8.self) })
        put(.cachedUsers, cachedUsers.map { String($0) })
        return rows
    }
}

/// How an incremental-capable run read the directory.
public enum ReadMethod: String, Sendable, Codable {
    /// Everything, paged (a full reconcile).
    case full
    /// RFC 4533 content synchronisation (refreshOnly) from the cookie kept in `sync_state`.
    case contentSync = "content-sync"
    /// Entries whose `modifyTimestamp` is at or after the high-water mark (minus the margin).
    case modifyTimestamp = "modify-timestamp"
    /// Active Directory: entries whose `uSNChanged` is past the DC's `highestCommittedUSN` at the last read.
    case usnChanged = "usn-changed"
}

/// What an applied plan leaves for the next run to repeat when nothing changed: its skipped
/// entries and the number of directory users it considered.
public struct UnchangedView: Codable, Sendable, Equatable {
    var total: Int
    var skipped: [SkippedEntry]
}
