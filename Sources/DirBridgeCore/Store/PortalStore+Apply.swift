import Foundation
import GRDB

extension PortalStore {
    /// Applies a change set in one write transaction and returns the sync run's id.
    ///
    /// The `sync_runs` row is inserted first (its id goes into every history row), then user
    /// group creations and renames, user creations, user updates and invitations, each with
    /// one `history` row, and finally the run's `finished_at` and `summary` (the counts of
    /// history actions written, overridden by any count in `run.summary`). If anything
    /// throws, nothing is left behind, not even the run row.
    /// ``apply(_:run:)`` under a lease, with `extra` written in the same transaction (the
    /// incremental sync's directory cache and cookie). A lost lease writes nothing.
    ///
    /// With `creating`, the client (and its Default User Group) is created in the same
    /// transaction, and the change set and run are bound to it: a first apply that fails
    /// leaves no empty client behind.
    public func apply(
        _ changes: ChangeSet, run: SyncRunRecord, within lease: StoreLease?, extra: DirectoryCacheUpdate? = nil,
        creating newClient: (spec: ClientSpec, editor: String)? = nil
    ) throws -> Int64 {
        try write(changes, run: run, lease: lease, extra: extra, newClient: newClient, readingState: false) { _ -> Never? in nil }.get()
    }

    /// Applies a change set like ``apply(_:run:)``, but first reads the client's state inside
    /// the same write transaction and asks `objection` about it: when it objects, nothing is
    /// written and its objection is returned. No other writer can slip in between the check
    /// and the apply. With a `lease`, a lost lease throws ``LeaseError`` and writes nothing.
    public func apply<Objection: Error>(
        _ changes: ChangeSet, run: SyncRunRecord, within lease: StoreLease? = nil,
        creating newClient: (spec: ClientSpec, editor: String)? = nil, unless objection: (ClientState) -> Objection?
    ) throws -> Result<Int64, Objection> {
        try write(changes, run: run, lease: lease, extra: nil, newClient: newClient, readingState: true, unless: objection)
    }

    /// The one writer of change sets: lease check, optional state check, the changes, the run.
    private func write<Objection: Error>(
        _ changes: ChangeSet, run: SyncRunRecord, lease: StoreLease?, extra: DirectoryCacheUpdate?,
        newClient: (spec: ClientSpec, editor: String)? = nil, readingState: Bool,
        unless objection: (ClientState) -> Objection?
    ) throws -> Result<Int64, Objection> {
        if let runClient = run.clientID, runClient != changes.clientID {
            throw StoreError(.invalidChange, "the sync run is for client \(runClient), the changes for client \(changes.clientID)")
        }
        // A large apply's own page cache, back to the default once it committed or rolled back.
        let rows = changes.userCreations.count + changes.userUpdates.count
            + (extra.map { $0.encodedUpserts.count + ($0.spooledUpserts?.count ?? 0) } ?? 0)
        let pageCache = PageCache.kilobytes(forRows: rows)
        defer {
            if pageCache > PageCache.defaultKilobytes {
                try? pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA cache_size = -\(PageCache.defaultKilobytes)") }
            }
        }
        do {
            return try pool.write { db -> Result<Int64, Objection> in
                try lease?.verify(db)
                var changes = changes
                var extra = extra
                if let newClient {
                    let record = try Self.ensureClient(newClient.spec, editor: newClient.editor, db: db)
                    changes.clientID = record.id
                    if extra != nil {
                        // The client's first writes are this transaction's own.
                        extra?.countingClientID = record.id
                        extra?.expectedCounter = try DirectoryCacheUpdate.counter(db, clientID: record.id)
                    }
                }
                let counterBefore = try extra?.countingClientID.map { try DirectoryCacheUpdate.counter(db, clientID: $0) }
                if readingState, let objected = objection(try Self.readState(clientID: changes.clientID, db: db)) {
                    // Thrown, not returned: the transaction rolls back (a client created above included).
                    throw Objected(value: objected)
                }
                if pageCache > PageCache.defaultKilobytes { try db.execute(sql: "PRAGMA cache_size = -\(pageCache)") }
                var writer = try ChangeSetWriter(db: db, changes: changes, now: Date())
                var runRecord = run
                runRecord.clientID = changes.clientID
                let runID = try Self.insertRun(runRecord, db: db)
                try writer.write(runID: runID)
                if let extra {
                    try extra.write(db, counterBefore: counterBefore)
                } else {
                    // The edit log serves incremental runs only: a client without one keeps no log.
                    try db.execute(sql: """
                        DELETE FROM store_touches WHERE client_id = ?1 AND NOT EXISTS (
                            SELECT 1 FROM sync_state s JOIN clients c ON c.name = s.client COLLATE NOCASE WHERE c.id = ?1)
                        """, arguments: [changes.clientID])
                }
                let summary = writer.counts.merging(run.summary) { _, given in given }
                try db.execute(
                    sql: "UPDATE sync_runs SET finished_at = ?, summary = ? WHERE id = ?",
                    arguments: [StoreTime.text(run.finishedAt ?? Date()), ChangesJSON.counts(summary), runID])
                return .success(runID)
            }
        } catch let objected as Objected {
            guard let value = objected.value as? Objection else { throw StoreError.from(objected.value) }
            return .failure(value)
        } catch let error as LeaseError {
            throw error
        } catch {
            throw StoreError.from(error)
        }
    }
}

/// An objection raised inside the write transaction, carried out of it so that it rolls back.
private struct Objected: Error {
    let value: any Error
}

/// Writes one change set inside an open transaction, with cached statements.
private struct ChangeSetWriter {
    let db: Database
    let changes: ChangeSet
    let now: String
    /// User group ids by SQLite NOCASE key of their name.
    var groupIDs: [String: Int64] = [:]
    var groupNames: [Int64: (name: String, isDefault: Bool)] = [:]
    var defaultGroupID: Int64?
    var counts: [String: Int] = [:]
    var runID: Int64?

    init(db: Database, changes: ChangeSet, now: Date) throws {
        self.db = db
        self.changes = changes
        self.now = StoreTime.text(now)
        guard try Int64.fetchOne(db, sql: "SELECT id FROM clients WHERE id = ?", arguments: [changes.clientID]) != nil
        else {
            throw StoreError(.unknownClient, "no client with id \(changes.clientID) in the portal store")
        }
        for group in try StoredUserGroup.filter(StoredUserGroup.Columns.clientID == changes.clientID).fetchAll(db) {
            groupIDs[ChangeSetRules.nocaseKey(group.name)] = group.id
            groupNames[group.id] = (group.name, group.isDefault)
            if group.isDefault { defaultGroupID = group.id }
        }
    }

    mutating func write(runID: Int64) throws {
        self.runID = runID
        for group in changes.groupCreations { try Self.context("user group \(group.name)") { try create(group) } }
        for rename in changes.groupRenames { try Self.context("user group \(rename.userGroupID)") { try self.rename(rename) } }
        // The user groups' history rows keep their place before the created users' (written per chunk).
        try Self.context("history of run \(runID)") { try flushHistory() }
        try createUsers()
        for update in changes.userUpdates { try Self.context("client user \(update.userID)") { try self.update(update) } }
        for invitation in changes.invitations {
            try Self.context("invitation of client user \(invitation.userID)") { try invite(invitation) }
        }
        try Self.context("history of run \(runID)") { try flushHistory() }
    }

    /// Runs `body`, naming `what` in its error; `what` is built only on an error (a first sync
    /// calls this for every created user).
    private static func context<Result>(_ what: @autoclosure () -> String, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch {
            throw StoreError.from(error, context: what())
        }
    }

    // MARK: user groups

    private mutating func create(_ group: NewUserGroup) throws {
        try db.cachedStatement(sql: """
            INSERT INTO user_groups (client_id, name, is_default, source, external_id, created_at)
            VALUES (?, ?, 0, ?, ?, ?)
            """).execute(arguments: [changes.clientID, group.name, group.source.rawValue, group.externalID, now])
        let id = db.lastInsertedRowID
        groupIDs[ChangeSetRules.nocaseKey(group.name)] = id
        groupNames[id] = (group.name, false)
        var fields: [ChangesJSON.Entry] = [("name", .null, .text(group.name)), ("source", .null, .text(group.source.rawValue))]
        if let externalID = group.externalID { fields.append(("external_id", .null, .text(externalID))) }
        try history(entity: "user_group", id: id, action: .groupCreated, fields: fields, reason: group.reason)
    }

    private mutating func rename(_ rename: UserGroupRename) throws {
        guard let current = groupNames[rename.userGroupID] else {
            throw StoreError(.unknownUserGroup, "no such user group in client \(changes.clientID)")
        }
        if current.isDefault {
            throw StoreError(.invariantViolation, "the \(defaultUserGroupName) cannot be renamed")
        }
        try db.cachedStatement(sql: "UPDATE user_groups SET name = ? WHERE id = ?")
            .execute(arguments: [rename.newName, rename.userGroupID])
        groupIDs[ChangeSetRules.nocaseKey(current.name)] = nil
        groupIDs[ChangeSetRules.nocaseKey(rename.newName)] = rename.userGroupID
        groupNames[rename.userGroupID] = (rename.newName, false)
        exactGroupIDs = [:]
        try history(entity: "user_group", id: rename.userGroupID, action: .groupRenamed,
                    fields: [("name", .text(current.name), .text(rename.newName))], reason: rename.reason)
    }

    /// Ids by the exact names looked up: folding every creation's group name cost 2% of a first sync.
    private var exactGroupIDs: [String: Int64] = [:]

    private mutating func groupID(named name: String?) throws -> Int64 {
        guard let name else {
            guard let defaultGroupID else {
                throw StoreError(.unknownUserGroup, "the client has no \(defaultUserGroupName)")
            }
            return defaultGroupID
        }
        if let id = exactGroupIDs[name] { return id }
        guard let id = groupIDs[ChangeSetRules.nocaseKey(name)] else {
            throw StoreError(.unknownUserGroup, "no user group named \(name) in client \(changes.clientID)")
        }
        exactGroupIDs[name] = id
        return id
    }

    // MARK: client users

    /// The `client_users` columns a creation writes, in the order of ``insertUsersSQL(rows:)``'s values.
    private static let createdAttributes = UserAttribute.allCases
    /// Bound values per created user: its attributes. The client (`?1`) and the time (`?2`, for
    /// created_at and updated_at) are bound once per statement: every row names the same ones.
    private static let valuesPerUser = createdAttributes.count
    /// Users created per statement; 32 rows stay below SQLite's oldest limit of 999 variables.
    private static let userBatch = 32

    /// The statement of a full batch, built once; a last, shorter batch builds its own. Its
    /// cached statement is bound through `BoundValues` (after `setUncheckedArguments` binds the
    /// client and time): GRDB's own record of its arguments then holds those two only.
    private static let fullUserBatchSQL = insertUsersSQL(rows: userBatch)

    private static func insertUsersSQL(rows: Int) -> String {
        let values = (0..<rows).map { row in
            "(?1, " + (0..<valuesPerUser).map { "?\(3 + row * valuesPerUser + $0)" }.joined(separator: ", ") + ", ?2, ?2)"
        }
        return """
            INSERT INTO client_users (client_id, \(createdAttributes.map(\.column).joined(separator: ", ")), created_at, updated_at)
            VALUES \(values.joined(separator: ", "))
            """
    }

    /// Creations prepared per chunk on a second thread while this one inserts the previous chunk;
    /// a multiple of `userBatch`, so statements hold the same rows as without chunks.
    private static let chunk = 32 * userBatch

    /// Inserts every created user, `userBatch` per statement, each with its invitation and
    /// history row.
    ///
    /// The bound values and history JSON of one chunk of users are built on another thread
    /// while SQLite inserts the chunk before it: on two cores a first sync's write stage is
    /// otherwise this thread alone, with the other core idle. The preparation reads only the
    /// change set and the user groups' ids and names, resolved here first (so an unknown user
    /// group is reported before a duplicate that an earlier batch would meet: either way nothing
    /// is written).
    private mutating func createUsers() throws {
        let users = changes.userCreations
        guard !users.isEmpty else { return }
        var groups: [Int64] = []
        groups.reserveCapacity(users.count)
        for index in users.indices {
            groups.append(try Self.context("client user \(users[index].email)") { try self.groupID(named: users[index].userGroupName) })
        }
        let names = groupNames.mapValues { $0.name }
        let groupIDs = groups
        let prepare: @Sendable (Range<Int>) -> PreparedUsers = { range in
            PreparedUsers(users: users[range], groupIDs: groupIDs[range], groupNames: names)
        }
        let ranges = stride(from: 0, to: users.count, by: Self.chunk).map { $0..<min($0 + Self.chunk, users.count) }
        let bulk = users.count >= BulkCreationTriggers.minimumCreations ? try BulkCreationTriggers.suspend(db) : nil
        do {
            var next = Background(ranges[0], prepare)
            for (index, range) in ranges.enumerated() {
                let prepared = next.value()
                if index + 1 < ranges.count { next = Background(ranges[index + 1], prepare) }
                try insert(users[range], prepared)
            }
        } catch {
            // A row inserted before the failure may break a rule: the per-row trigger would have stopped there first.
            if let bulk, db.isInsideTransaction, let broken = try? bulk.brokenRule(db) { throw broken }
            throw error
        }
        try bulk?.finish(db)
    }

    /// Inserts one prepared chunk: `userBatch` rows per statement, then the chunk's invitations,
    /// then its history rows, `historyBatch` per statement.
    ///
    /// The rows of one INSERT get consecutive ids (AUTOINCREMENT, and nothing else writes in
    /// this transaction), so the last inserted id gives every row's. When a row breaks a
    /// constraint or a trigger's rule, SQLite undoes the whole statement and the transaction
    /// stays open: the batch is then inserted row by row, so that the error names the user.
    private mutating func insert(_ users: ArraySlice<NewClientUser>, _ prepared: PreparedUsers) throws {
        let base = users.startIndex
        var ids: [Int64] = []
        ids.reserveCapacity(users.count)
        try prepared.values.withBinder { binder in
            for start in stride(from: 0, to: users.count, by: Self.userBatch) {
                let rows = start..<min(start + Self.userBatch, users.count)
                do {
                    let firstID = try insertUsers(rows, of: prepared, binder)
                    ids.append(contentsOf: firstID..<firstID + Int64(rows.count))
                } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT && rows.count > 1 && db.isInsideTransaction {
                    for row in rows {
                        ids.append(try Self.context("client user \(users[base + row].email)") { try insertUsers(row..<row + 1, of: prepared, binder) })
                    }
                } catch {
                    let first = users[base + rows.lowerBound].email, last = users[base + rows.upperBound - 1].email
                    throw StoreError.from(error, context: rows.count == 1 ? "client user \(first)" : "client users \(first) to \(last)")
                }
            }
            for (offset, id) in ids.enumerated() where users[base + offset].invite {
                try Self.context("invitation of client user \(users[base + offset].email)") {
                    try insertInvitation(userID: id, email: users[base + offset].email)
                }
            }
            try Self.context("history of client users \(users[base].email) to \(users[users.endIndex - 1].email)") {
                try insertCreationHistory(ids, of: prepared, binder)
            }
        }
    }

    /// One INSERT of the users at `rows` (offsets in the chunk); returns the first row's id.
    private func insertUsers(_ rows: Range<Int>, of prepared: PreparedUsers, _ binder: BoundValues.Binder) throws -> Int64 {
        let statement = try db.cachedStatement(sql: rows.count == Self.userBatch ? Self.fullUserBatchSQL : Self.insertUsersSQL(rows: rows.count))
        statement.setUncheckedArguments([changes.clientID, now])
        try binder.execute(statement) {
            for (position, row) in rows.enumerated() {
                try binder.bind(prepared.userValues(row), to: statement, from: CInt(3 + position * Self.valuesPerUser))
            }
        }
        guard db.changesCount == rows.count else {
            throw StoreError(.invalidChange, "inserting \(rows.count) client users wrote \(db.changesCount) rows")
        }
        return db.lastInsertedRowID - Int64(rows.count - 1)
    }

    /// The `created` history rows of one chunk's users, whose ids are `ids`, in their order.
    private mutating func insertCreationHistory(_ ids: [Int64], of prepared: PreparedUsers, _ binder: BoundValues.Binder) throws {
        for start in stride(from: 0, to: ids.count, by: Self.historyBatch) {
            let rows = start..<min(start + Self.historyBatch, ids.count)
            let statement = try db.cachedStatement(sql: rows.count == Self.historyBatch ? Self.fullHistoryBatchSQL : Self.insertHistorySQL(rows: rows.count))
            statement.setUncheckedArguments([changes.clientID, changes.editor, runID, now])
            try binder.execute(statement) {
                for (position, row) in rows.enumerated() {
                    let first = CInt(5 + position * 5)
                    try binder.bind(PreparedUsers.entity, to: statement, at: first)
                    try binder.bind(integer: ids[row], to: statement, at: first + 1)
                    try binder.bind(PreparedUsers.action, to: statement, at: first + 2)
                    try binder.bind(prepared.changes(row), to: statement, at: first + 3)
                    try binder.bind(prepared.reason(row), to: statement, at: first + 4)
                }
            }
        }
        counts[HistoryAction.created.rawValue, default: 0] += ids.count
    }

    /// One chunk of creations as the statements bind them, packed on the preparing thread: the
    /// history row's entity and action, then per user its `client_users` values, its `created`
    /// history JSON (every set attribute, the user group by name) and its reason.
    private struct PreparedUsers: Sendable {
        let values: BoundValues
        static let entity = 0, action = 1
        private static let perUser = ChangeSetWriter.valuesPerUser + 2

        init(users: ArraySlice<NewClientUser>, groupIDs: ArraySlice<Int64>, groupNames: [Int64: String]) {
            var values = BoundValues(values: 2 + users.count * Self.perUser, bytes: users.count * 640)
            values.append("user")
            values.append(HistoryAction.created.rawValue)
            for (user, groupID) in zip(users, groupIDs) {
                for attribute in ChangeSetWriter.createdAttributes {
                    if attribute == .userGroup { values.append(groupID) } else { values.append(user[attribute]) }
                }
                let fields = ChangeSetRules.createdFields(user, groupName: groupNames[groupID] ?? "")
                values.appendText { ChangesJSON.append(object: fields, to: &$0) }
                values.append(user.reason)
            }
            self.values = values
        }

        /// The `client_users` values of the user at `row` (an offset in the chunk).
        func userValues(_ row: Int) -> Range<Int> { 2 + row * Self.perUser..<2 + row * Self.perUser + ChangeSetWriter.valuesPerUser }
        func changes(_ row: Int) -> Int { 2 + row * Self.perUser + ChangeSetWriter.valuesPerUser }
        func reason(_ row: Int) -> Int { changes(row) + 1 }
    }

    private static func databaseValue(_ value: FieldValue?) -> DatabaseValue {
        switch value {
        case nil: .null
        case .text(let text)?: text.databaseValue
        case .flag(let flag)?: flag.databaseValue
        }
    }

    private mutating func update(_ update: ClientUserUpdate) throws {
        let names = groupNames
        let planned = try ChangeSetRules.update(update, groupID: { try self.groupID(named: $0) }, groupName: { names[$0]?.name })
        var assignments: [String] = []
        var arguments = StatementArguments()
        for (column, value) in planned.columns {
            switch value {
            case .null:
                assignments.append("\(column) = NULL")
                continue
            case .value(let new): _ = arguments.append(contentsOf: [Self.databaseValue(new)])
            case .userGroup(let id): _ = arguments.append(contentsOf: [id])
            }
            assignments.append("\(column) = ?")
        }
        assignments.append("updated_at = ?")
        _ = arguments.append(contentsOf: [now, update.userID, changes.clientID])
        // Column names come from the catalogue (`UserAttribute.column`) only; every value is bound.
        try db.cachedStatement(sql: "UPDATE client_users SET \(assignments.joined(separator: ", ")) WHERE id = ? AND client_id = ?")
            .execute(arguments: arguments)
        guard db.changesCount == 1 else {
            throw StoreError(.unknownUser, "no such client user in client \(changes.clientID)")
        }
        try history(entity: "user", id: update.userID, action: update.action, fields: planned.history, reason: update.reason)
    }

    private mutating func invite(_ invitation: InvitationRequest) throws {
        guard let email = try String.fetchOne(
            db, sql: "SELECT email FROM client_users WHERE id = ? AND client_id = ?",
            arguments: [invitation.userID, changes.clientID])
        else {
            throw StoreError(.unknownUser, "no such client user in client \(changes.clientID)")
        }
        try insertInvitation(userID: invitation.userID, email: email)
        try history(entity: "user", id: invitation.userID, action: .invited, fields: [], reason: invitation.reason)
    }

    private func insertInvitation(userID: Int64, email: String) throws {
        try db.cachedStatement(sql: """
            INSERT INTO invitations (client_id, user_id, email, created_at, sent_at) VALUES (?, ?, ?, ?, NULL)
            """).execute(arguments: [changes.clientID, userID, email, now])
    }

    private mutating func history(
        entity: String, id: Int64, action: HistoryAction,
        fields: [ChangesJSON.Entry], reason: String?
    ) throws {
        try history(entity: entity, id: id, action: action, changes: ChangesJSON.object(fields), reason: reason)
    }

    private mutating func history(entity: String, id: Int64, action: HistoryAction, changes: String, reason: String?) throws {
        pendingHistory.append(PendingHistory(entity: entity, entityID: id, action: action.rawValue, changes: changes, reason: reason))
        counts[action.rawValue, default: 0] += 1
        if pendingHistory.count == Self.historyBatch { try flushHistory() }
    }

    /// History rows wait here and go in `historyBatch` at a time, through one multi-row
    /// insert: one statement per row cost a first sync of 100k users about a second
    /// (statement set-up and the AUTOINCREMENT counter are per statement, not per row).
    /// They keep their order; ``write(runID:)`` flushes the rest before it returns.
    private var pendingHistory: [PendingHistory] = []
    private static let historyBatch = 64
    /// `?1`…`?4` (client, editor, run, time) are bound once per statement; each row binds its
    /// entity, entity id, action, changes and reason.
    private static func insertHistorySQL(rows: Int) -> String {
        "INSERT INTO history (client_id, entity, entity_id, action, changes, editor, run_id, at, reason) VALUES "
            + (0..<rows).map { row in
                let first = 5 + row * 5
                return "(?1, ?\(first), ?\(first + 1), ?\(first + 2), ?\(first + 3), ?2, ?3, ?4, ?\(first + 4))"
            }.joined(separator: ", ")
    }
    /// Bound by ``flushHistory()`` through GRDB, and for created users through `BoundValues`:
    /// every use starts with `setUncheckedArguments`, which resets the statement and its bindings.
    private static let fullHistoryBatchSQL = insertHistorySQL(rows: historyBatch)

    private struct PendingHistory {
        let entity: String
        let entityID: Int64
        let action: String
        let changes: String
        let reason: String?
    }

    private mutating func flushHistory() throws {
        guard !pendingHistory.isEmpty else { return }
        let rows = pendingHistory.count
        let statement = try db.cachedStatement(sql: rows == Self.historyBatch ? Self.fullHistoryBatchSQL : Self.insertHistorySQL(rows: rows))
        var values: [DatabaseValue] = [changes.clientID.databaseValue, changes.editor.databaseValue, runID.databaseValue, now.databaseValue]
        values.reserveCapacity(4 + rows * 5)
        for row in pendingHistory {
            values += [row.entity.databaseValue, row.entityID.databaseValue, row.action.databaseValue, row.changes.databaseValue,
                       row.reason.databaseValue]
        }
        statement.setUncheckedArguments(StatementArguments(values))
        try statement.execute()
        pendingHistory.removeAll(keepingCapacity: true)
    }
}
