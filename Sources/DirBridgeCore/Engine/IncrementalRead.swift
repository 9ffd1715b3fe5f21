import Foundation
import Logging

/// How incremental runs behave: how often they fall back to a full read, and the margin
/// taken on timestamps for clock skew and in-flight writes.
public struct IncrementalOptions: Sendable, Equatable {
    /// A full reconcile is done when the last one is older than this (default 24h).
    public var fullEvery: TimeInterval
    /// High-water reads start this far before the newest timestamp seen.
    public var margin: TimeInterval
    /// Read everything this time, whatever the cache says.
    public var forceFull: Bool
    /// Whether the run can write the cache (an apply): a dry run's full read keeps no entries for it.
    public var writesCache = true

    public init(fullEvery: TimeInterval = 24 * 3600, margin: TimeInterval = 300, forceFull: Bool = false) {
        self.fullEvery = fullEvery
        self.margin = margin
        self.forceFull = forceFull
    }
}

/// What an incremental-capable read produced.
struct IncrementalReadResult {
    /// The patched directory view; nil when nothing changed on either side since the last
    /// applied run (the plan is known to be empty and is not computed).
    var snapshot: DirectorySnapshot?
    /// For an unchanged run: the view the last applied run left (its plan's skipped entries and total).
    var unchanged: UnchangedView?
    /// Entries read from the directory this run.
    var entriesRead: Int
    /// The cache and sync state to write with the apply.
    var cacheUpdate: DirectoryCacheUpdate
    /// How the directory was read this time.
    var method: ReadMethod
    /// Why a full read was done, when it was.
    var fullReason: String?
    /// When ``snapshot`` holds only the users the changes affect: what planning them needs.
    var affected: AffectedRead?
    /// The whole patched view, for a plan that turns out to need every user after all.
    var wholeView: (() throws -> DirectorySnapshot)?
    /// Why a delta was planned for every user instead of the affected ones.
    var planningReason: String?
}

/// A delta that cannot be trusted to patch the cache: the run reads everything instead.
struct FullReadNeeded: Error {
    var reason: String
}

/// Reads the directory for an incremental-capable run: only what changed since the last
/// applied run when the cache allows it, everything otherwise (and at every full reconcile).
///
/// The changes are applied to the cached directory and the whole view is mapped and
/// planned again, so a changed group re-plans its members even though their entries did
/// not change, and a user who left the base or filter is seen as gone.
enum IncrementalReader {
    static func read(
        _ mapping: Mapping, store: any DirectoryCacheStoring, connection: DirectoryConnection, options: IncrementalOptions,
        logger: Logger, progress: ((Int) -> Void)?, shouldStop: () -> Bool
    ) throws -> IncrementalReadResult {
        let client = mapping.client.name
        let scope = scopeFingerprint(mapping)
        let cache = try store.directoryCache(client: client)
        var fullReason: String
        if let cache {
            let lastFull = cache.state.lastFull
            if options.forceFull {
                fullReason = "a full read was asked for"
            } else if cache.state.scope != scope {
                fullReason = "the mapping's bases, filters or attributes changed since the cache was built"
            } else if cache.state.directory != connection.url {
                fullReason = "the directory server changed (\(cache.state.directory ?? "none") → \(connection.url))"
            } else if lastFull.map({ Date().timeIntervalSince($0) >= options.fullEvery }) ?? true {
                fullReason = "full reconcile due (every \(DurationText.text(options.fullEvery)))"
            } else {
                do {
                    switch cache.state.method {
                    case .contentSync:
                        if let result = try contentSyncDelta(mapping, store: store, cache: cache, connection: connection, logger: logger, shouldStop: shouldStop) {
                            return result
                        }
                        fullReason = "the server cannot send the changes since the last cookie (e-syncRefreshRequired)"
                    case .modifyTimestamp, .usnChanged:
                        if let result = try timestampDelta(mapping, store: store, cache: cache, connection: connection, options: options, logger: logger, shouldStop: shouldStop) {
                            return result
                        }
                        fullReason = "another domain controller answered (update sequence numbers are per DC)"
                    default:
                        fullReason = "the cache records no read method"
                    }
                } catch let needed as FullReadNeeded {
                    fullReason = needed.reason
                }
            }
        } else {
            fullReason = "no directory cache yet (first incremental run)"
        }
        logger.info("full directory read", metadata: ["reason": "\(fullReason)"])
        return try fullRead(mapping, connection: connection, scope: scope, reason: fullReason, keepsEntries: options.writesCache, logger: logger,
                            progress: progress, shouldStop: shouldStop)
    }

    /// A full read that also rebuilds the cache, and the starting point of the next delta.
    private static func fullRead(
        _ mapping: Mapping, connection: DirectoryConnection, scope: String, reason: String, keepsEntries: Bool, logger: Logger,
        progress: ((Int) -> Void)?, shouldStop: () -> Bool
    ) throws -> IncrementalReadResult {
        var state = SyncState()
        state.scope = scope
        state.directory = connection.url
        state.lastFull = Date()
        // Cookies are taken before the read: a change made while reading is sent again next time.
        var method = ReadMethod.modifyTimestamp
        let capabilities = try connection.capabilities()
        if capabilities.controls.contains(DirectoryConnection.syncRequestOID) {
            let cookies = try connection.currentCookies(for: [mapping.users.base] + (mapping.groups.map { [$0.base] } ?? []))
            state.usersCookie = cookies[mapping.users.base]
            state.groupsCookie = mapping.groups.flatMap { cookies[$0.base] }
            if state.usersCookie != nil, mapping.groups == nil || state.groupsCookie != nil {
                method = .contentSync
            } else if let initial = try initialCookies(mapping, connection: connection, dialect389: capabilities.isDirectoryServer389,
                                                       logger: logger, shouldStop: shouldStop) {
                (state.usersCookie, state.groupsCookie, state.syncKey) = initial
                method = .contentSync
            } else {
                (state.usersCookie, state.groupsCookie) = (nil, nil)
            }
        }
        // Active Directory: the DC's update sequence, taken before the read like the cookies.
        if method == .modifyTimestamp, let mark = try connection.updateSequenceMark() {
            method = .usnChanged
            state.usnHighwater = mark.usn
            state.usnServer = mark.server
        }
        let started = Date()
        let collector = DirectoryCacheCollector(mapping: mapping, syncKey: state.syncKey, keepsEntries: keepsEntries)
        if keepsEntries && collector.spool == nil {
            logger.notice("""
                no temporary file can be made in \(CacheRowSpool.directory): the directory cache's entries are kept in memory \
                until the apply writes them; set TMPDIR to a writable directory with room (about 400 bytes per entry)
                """)
        }
        let snapshot = try DirectorySnapshotReader.read(
            mapping, connection: connection, logger: logger, progress: progress, collector: collector, shouldStop: shouldStop)
        if method == .contentSync && !collector.everyEntryHasUUID {
            // Content sync names entries by entryUUID; an entry without one (an ACL hides it)
            // could never be matched, and a present phase would take it for gone.
            method = .modifyTimestamp
        }
        state.method = method
        if method == .modifyTimestamp {
            // The server's own clock where entries carry modifyTimestamp; ours otherwise.
            let fallback = GeneralizedTime.text(started)
            state.usersHighwater = collector.newestUser ?? fallback
            state.groupsHighwater = collector.newestGroup ?? fallback
        }
        var update = DirectoryCacheUpdate(client: mapping.client.name, replaceAll: true, state: state)
        try collector.finish()
        update.encodedUpserts = collector.upserts
        update.spooledUpserts = collector.spool
        // cachedUsers is counted by the store as it writes the rows (a full read replaces the cache).
        return IncrementalReadResult(snapshot: snapshot, entriesRead: snapshot.entriesRead, cacheUpdate: update, method: .full, fullReason: reason)
    }

    /// Cookies for "now" from a server that keeps no `contextCSN` (389 DS): an initial refresh of
    /// the users' and the groups' searches (same bases and filters: 389 DS ties a cookie to its bind
    /// DN, base and filter), asking for the keys only. The entries also tell what the server's sync
    /// UUIDs are: entryUUID, or nsUniqueId (389 DS's default). Nil when that cannot be told (no
    /// entries, or UUIDs that are neither): the run then reads by modifyTimestamp.
    ///
    /// A server that lists the control but refuses the refresh (syncprov not on this database:
    /// result 12; an unpaged refresh over a size limit) is read by modifyTimestamp too: the
    /// initial refresh is an optimisation, never a reason for the full read to fail.
    private static func initialCookies(
        _ mapping: Mapping, connection: DirectoryConnection, dialect389: Bool, logger: Logger, shouldStop: () -> Bool
    ) throws -> (users: String, groups: String?, syncKey: String?)? {
        do {
            return try initialRefresh(mapping, connection: connection, dialect389: dialect389, logger: logger, shouldStop: shouldStop)
        } catch let error as DirectoryError {
            logger.info("content sync: the initial refresh failed; incremental runs read by modifyTimestamp",
                        metadata: ["error": "\(error.description)"])
            return nil
        }
    }

    private static func initialRefresh(
        _ mapping: Mapping, connection: DirectoryConnection, dialect389: Bool, logger: Logger, shouldStop: () -> Bool
    ) throws -> (users: String, groups: String?, syncKey: String?)? {
        let keys = ["entryUUID", "nsUniqueId"]
        let usersRequest = SearchRequest(base: mapping.users.base, scope: mapping.users.scope, filter: mapping.users.filter, attributes: keys)
        guard case .refreshed(let users) = try connection.refresh(usersRequest, cookie: nil, dialect389: dialect389, shouldStop: shouldStop),
              let usersCookie = users.cookie else { return nil }
        var groups: ContentRefresh?
        if let request = mapping.groupsSearch(attributes: keys) {
            guard case .refreshed(let refreshed) = try connection.refresh(request, cookie: nil, dialect389: dialect389, shouldStop: shouldStop),
                  refreshed.cookie != nil else { return nil }
            groups = refreshed
        }
        var found = Set<String>()
        for (uuid, entry) in users.changed + (groups?.changed ?? []) {
            if entry.first("entryuuid")?.lowercased() == uuid {
                found.insert("entryuuid")
            } else if entry.first("nsuniqueid").flatMap(UUIDText.fromNSUniqueID) == uuid {
                found.insert("nsuniqueid")
            } else {
                found.insert("unknown")
            }
        }
        guard found.count == 1, let key = found.first, key != "unknown" else {
            logger.info("content sync: cannot tell what the server's sync UUIDs are; incremental runs read by modifyTimestamp",
                        metadata: ["seen": "\(found.sorted())"])
            return nil
        }
        return (usersCookie, groups?.cookie, key == "entryuuid" ? nil : key)
    }

    /// Applies an RFC 4533 refresh of users and groups to the cache; nil when the server
    /// asks for a full refresh.
    private static func contentSyncDelta(
        _ mapping: Mapping, store: any DirectoryCacheStoring, cache: DirectoryCache, connection: DirectoryConnection, logger: Logger, shouldStop: () -> Bool
    ) throws -> IncrementalReadResult? {
        guard let usersCookie = cache.state.usersCookie else { return nil }
        let extra = DirectoryCacheCollector.cacheAttributes
        let usersRequest = mapping.usersSearch(extra: extra)
        let dialect389 = try connection.capabilities().isDirectoryServer389
        guard case .refreshed(let userChanges) = try connection.refresh(usersRequest, cookie: usersCookie, dialect389: dialect389, shouldStop: shouldStop)
        else { return nil }
        var groupChanges: ContentRefresh?
        if let request = mapping.groupsSearch(extra: extra) {
            guard let groupsCookie = cache.state.groupsCookie else { return nil }
            guard case .refreshed(let changes) = try connection.refresh(request, cookie: groupsCookie, dialect389: dialect389, shouldStop: shouldStop)
            else { return nil }
            groupChanges = changes
        }
        var update = DirectoryCacheUpdate(client: mapping.client.name, replaceAll: false, state: cache.state)
        update.state.cachedUsers = nil  // Set by finish() or unchangedShortcut(), which know the patch.
        update.state.usersCookie = userChanges.cookie ?? usersCookie
        if let groupChanges { update.state.groupsCookie = groupChanges.cookie ?? cache.state.groupsCookie }
        update.state.lastIncremental = Date()
        let read = userChanges.changed.count + (groupChanges?.changed.count ?? 0)
        let quiet = [userChanges, groupChanges].compactMap { $0 }.allSatisfy { $0.changed.isEmpty && $0.deleted.isEmpty && !$0.usedPresentPhase }
        if quiet, let result = try unchangedShortcut(mapping, store: store, cache: cache, update: update, method: .contentSync, entriesRead: read, logger: logger) {
            return result
        }
        if let groupChanges, !(groupChanges.changed.isEmpty && groupChanges.deleted.isEmpty && !groupChanges.usedPresentPhase) {
            try requireNoMemberOf(mapping)
        }
        var delta = CacheDelta(groupsBefore: try store.cachedEntries(client: mapping.client.name, kind: .group))
        try delta.patchUsers(with: userChanges, store: store, mapping: mapping, update: &update)
        if let groupChanges { try delta.patchGroups(with: groupChanges, store: store, mapping: mapping, update: &update) }
        logger.debug("content sync", metadata: [
            "users changed": "\(userChanges.changed.count)", "users gone": "\(delta.goneUsers.count)",
            "groups changed": "\(groupChanges?.changed.count ?? 0)", "present phase": "\(userChanges.usedPresentPhase)",
        ])
        return try finish(mapping, store: store, cache: cache, delta: delta, update: update, method: .contentSync,
                          entriesRead: read, references: userChanges.references + (groupChanges?.references ?? 0), connection: connection, logger: logger)
    }

    /// Users' `memberOf` is a back-link (AD) or computed (OpenLDAP dynlist): a group change
    /// does not change the member entries, so their cached `memberOf` would be stale.
    private static func requireNoMemberOf(_ mapping: Mapping) throws {
        if mapping.groups?.members.contains("memberof") == true {
            throw FullReadNeeded(reason: "a group changed and memberships come from users' memberOf: every user is read again")
        }
    }

    /// A cached entry that comes back under another DN was renamed or moved: groups that list it
    /// by DN may still name the old one (AD links follow the object, but the group's uSNChanged
    /// does not move; without refint OpenLDAP keeps the old DN), so the run reads everything.
    static func checkNotRenamed(_ cached: EntryAttributes?, _ entry: EntryAttributes) throws {
        guard let cached, cached.dn != entry.dn,
              (try? DistinguishedName.normalize(cached.dn)) != (try? DistinguishedName.normalize(entry.dn))
        else { return }
        throw FullReadNeeded(reason: "\(cached.dn) was renamed or moved to \(entry.dn); group member lists may name the old DN")
    }

    /// Reads entries changed since the high-water marks (minus the margin), or on Active Directory
    /// since the DC's update sequence number at the last read: those still in the base and filter
    /// replace their cached copy, those that fell out of the filter leave. Deletions and moves out
    /// of the base are seen at the next full reconcile. Nil when another DC answers (a full read).
    private static func timestampDelta(
        _ mapping: Mapping, store: any DirectoryCacheStoring, cache: DirectoryCache, connection: DirectoryConnection, options: IncrementalOptions,
        logger: Logger, shouldStop: () -> Bool
    ) throws -> IncrementalReadResult? {
        var update = DirectoryCacheUpdate(client: mapping.client.name, replaceAll: false, state: cache.state)
        update.state.cachedUsers = nil  // Set by finish() or unchangedShortcut(), which know the patch.
        let method = cache.state.method ?? .modifyTimestamp
        var sinceUSN: Int64?
        if method == .usnChanged {
            // Taken before the searches: a change made while reading is read again next time.
            guard let mark = try connection.updateSequenceMark(), mark.server == cache.state.usnServer,
                  let last = cache.state.usnHighwater else { return nil }
            sinceUSN = last + 1
            update.state.usnHighwater = mark.usn
        }
        var delta = CacheDelta(groupsBefore: try store.cachedEntries(client: mapping.client.name, kind: .group))
        var read = 0
        var references = 0
        func readChanges(kind: EntryKind, search: SearchRequest) throws {
            let highwater = kind == .user ? \SyncState.usersHighwater : \SyncState.groupsHighwater
            let mark = cache.state[keyPath: highwater].flatMap(GeneralizedTime.date) ?? Date.distantPast
            let since = GeneralizedTime.text(mark.addingTimeInterval(-options.margin))
            var newest = cache.state[keyPath: highwater] ?? since
            let recent = sinceUSN.map { "(uSNChanged>=\($0))" } ?? "(modifyTimestamp>=\(since))"
            var stats = try connection.search(search.narrowed(to: recent)) { page in
                if shouldStop() { throw SyncStopped() }
                var keyed: [(String, EntryAttributes)] = []
                for entry in page {
                    if let stamp = entry.first("modifytimestamp"), stamp > newest { newest = stamp }
                    guard let key = DirectoryCacheCollector.key(of: entry, kind: kind, mapping: mapping, syncKey: cache.state.syncKey) else { continue }
                    keyed.append((key, entry))
                }
                try delta.patch(kind: kind, changed: keyed, gone: [], store: store, mapping: mapping, update: &update)
            }
            read += stats.entries
            references += stats.references
            let keyAttributes = kind == .user ? ["entryUUID", "nsUniqueId", mapping.users.id] : ["entryUUID", "nsUniqueId", "objectGUID"]
            stats = try connection.search(search.leaving(recent, attributes: keyAttributes)) { page in
                let keys = page.compactMap { DirectoryCacheCollector.key(of: $0, kind: kind, mapping: mapping, syncKey: cache.state.syncKey) }
                try delta.patch(kind: kind, changed: [], gone: Set(keys), store: store, mapping: mapping, update: &update)
            }
            read += stats.entries
            references += stats.references
            update.state[keyPath: highwater] = newest
        }
        let extra = DirectoryCacheCollector.cacheAttributes
        try readChanges(kind: .user, search: mapping.usersSearch(extra: extra))
        if let groupsSearch = mapping.groupsSearch(extra: extra) {
            let before = update.encodedUpserts.count + update.deletions.count
            try readChanges(kind: .group, search: groupsSearch)
            if update.encodedUpserts.count + update.deletions.count > before { try requireNoMemberOf(mapping) }
        }
        update.state.lastIncremental = Date()
        return try finish(mapping, store: store, cache: cache, delta: delta, update: update, method: method,
                          entriesRead: read, references: references, connection: connection, logger: logger)
    }

    /// The patched view, or, when neither the directory nor the store changed since the last
    /// applied run (and the mapping file is the same), the knowledge that the plan is empty.
    /// Where it can, the view holds only the users the changes affect (``AffectedPlanning``).
    private static func finish(
        _ mapping: Mapping, store: any DirectoryCacheStoring, cache: DirectoryCache, delta: CacheDelta, update: DirectoryCacheUpdate,
        method: ReadMethod, entriesRead: Int, references: Int, connection: DirectoryConnection, logger: Logger
    ) throws -> IncrementalReadResult {
        if update.encodedUpserts.isEmpty, update.deletions.isEmpty,
           let result = try unchangedShortcut(mapping, store: store, cache: cache, update: update, method: method, entriesRead: entriesRead, logger: logger)
        {
            return result
        }
        var update = update
        update.state.cachedUsers = cache.state.cachedUsers.map { delta.cachedUsers(before: $0, after: update) }
        let whole = { () throws -> DirectorySnapshot in
            var users = try cache.entries().users
            delta.apply(to: &users)
            return try build(mapping, users: users, groups: delta.groups, entriesRead: entriesRead, references: references,
                             connection: connection, logger: logger)
        }
        switch try AffectedPlanning.prepare(mapping, store: store, state: cache.state, delta: delta, entriesRead: entriesRead,
                                            references: references, logger: logger) {
        case .affected(let affected):
            return IncrementalReadResult(snapshot: affected.snapshot, entriesRead: entriesRead, cacheUpdate: update, method: method,
                                         fullReason: nil, affected: affected, wholeView: whole)
        case .everyone(let reason):
            logger.debug("planning every user", metadata: ["reason": "\(reason)"])
            return IncrementalReadResult(snapshot: try whole(), entriesRead: entriesRead, cacheUpdate: update, method: method,
                                         fullReason: nil, planningReason: reason)
        }
    }

    /// The result of a run whose directory read changed nothing, when the store has not moved
    /// since the last applied run either (its change counter) and the mapping file is the same.
    private static func unchangedShortcut(
        _ mapping: Mapping, store: any DirectoryCacheStoring, cache: DirectoryCache, update: DirectoryCacheUpdate, method: ReadMethod,
        entriesRead: Int, logger: Logger
    ) throws -> IncrementalReadResult? {
        // With `nested: server` the server resolves nesting through groups that may lie outside
        // groups.base, whose changes no delta shows: always plan.
        guard mapping.groups?.nestedResolution != .server, cache.state.storeCounter != nil else { return nil }
        let counter = try store.changeCounter(client: mapping.client.name)
        guard let view = cache.state.unchangedView(mappingHash: mapping.sourceHash, counter: counter) else { return nil }
        logger.debug("nothing changed since the last applied run: planning skipped")
        var update = update
        update.expectedCounter = counter
        update.state.cachedUsers = cache.state.cachedUsers  // Nothing changed in the cache.
        return IncrementalReadResult(snapshot: nil, unchanged: view, entriesRead: entriesRead, cacheUpdate: update, method: method, fullReason: nil)
    }

    /// Maps and evaluates the whole (patched) cached directory; with `nested: server`, the server
    /// resolves nesting again, as in a full read.
    static func build(
        _ mapping: Mapping, users: [String: EntryAttributes], groups: [String: EntryAttributes], entriesRead: Int,
        references: Int, connection: DirectoryConnection, logger: Logger
    ) throws -> DirectorySnapshot {
        var index = GroupIndex(mapping: mapping, groups: groups.values)
        try index.resolveInChain(mapping, connection: connection)
        var builder = SnapshotBuilder(mapping: mapping, index: index)
        for entry in users.values { builder.add(user: entry) }
        return builder.finish(entriesRead: entriesRead, references: references, logger: logger)
    }

    /// What the cache depends on: bases, scopes, filters, attributes and the id. A change
    /// forces a full read.
    static func scopeFingerprint(_ mapping: Mapping) -> String {
        var parts = [mapping.users.base, mapping.users.scope.rawValue, mapping.users.filter, mapping.users.id,
                     mapping.attributesToRead.joined(separator: ",")]
        if let groups = mapping.groups {
            parts += [groups.base, groups.scope.rawValue, groups.filter, mapping.groupAttributesToRead.joined(separator: ",")]
        }
        // v2: the cache rows carry external id, DN and email (store migration v4).
        return "v2|" + parts.joined(separator: "|")
    }
}
