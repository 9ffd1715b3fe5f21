import Foundation
import PostgresNIO

extension PostgresStore {
    public func apply(
        _ changes: ChangeSet, run: SyncRunRecord, within lease: StoreLease?, extra: DirectoryCacheUpdate?,
        creating newClient: (spec: ClientSpec, editor: String)?
    ) throws -> Int64 {
        try write(changes, run: run, lease: lease, extra: extra, newClient: newClient, readingState: false) { _ -> Never? in nil }.get()
    }

    public func apply<Objection: Error>(
        _ changes: ChangeSet, run: SyncRunRecord, within lease: StoreLease?,
        creating newClient: (spec: ClientSpec, editor: String)?, unless objection: (ClientState) -> Objection?
    ) throws -> Result<Int64, Objection> {
        try write(changes, run: run, lease: lease, extra: nil, newClient: newClient, readingState: true, unless: objection)
    }

    /// The one writer of change sets, in one transaction: the lease checked (and its row
    /// locked until the commit), the client created if asked, the state checked if asked, the
    /// changes, the run, the directory cache. Anything thrown rolls all of it back.
    private func write<Objection: Error>(
        _ changes: ChangeSet, run: SyncRunRecord, lease: StoreLease?, extra: DirectoryCacheUpdate?, newClient: (spec: ClientSpec, editor: String)?,
        readingState: Bool, unless objection: (ClientState) -> Objection?
    ) throws -> Result<Int64, Objection> {
        if let runClient = run.clientID, runClient != changes.clientID {
            throw StoreError(.invalidChange, "the sync run is for client \(runClient), the changes for client \(changes.clientID)")
        }
        do {
            return try session.transaction { db -> Result<Int64, Objection> in
                if let lease { try Self.verify(lease, db: db) }
                var changes = changes
                var extra = extra
                if let newClient {
                    changes.clientID = try Self.ensureClient(newClient.spec, editor: newClient.editor, db: db).id
                    if extra != nil {
                        // The client's first writes are this transaction's own.
                        extra?.countingClientID = changes.clientID
                        extra?.expectedCounter = try Self.counter(clientID: changes.clientID, db: db)
                    }
                }
                // Writers of one client queue here: the state checked below stays the state written to.
                try db.execute("SELECT id FROM clients WHERE id = $1 FOR UPDATE", PostgresBindings([changes.clientID]))
                // The client's change counter, locked until the commit. Every write to the client's
                // users and groups bumps it from a trigger, so a portal edit committing meanwhile
                // waits for this apply: the counter read here, and the edit log emptied below, hold
                // no edit this apply has not seen (under READ COMMITTED, one could slip in between).
                // The state the objection judges, share-locked first (a portal statement locks its
                // rows before its trigger asks for the counter, so this order waits rather than
                // deadlocks): a portal edit already under way on these rows (say, disabling the other
                // Global Admin) cannot commit unseen beside this one.
                let state = readingState ? try Self.readState(clientID: changes.clientID, db: db, locking: true) : nil
                try Self.lockCounter(clientID: changes.clientID, db: db)
                let counterBefore = try extra?.countingClientID.map { try Self.counter(clientID: $0, db: db) }
                if let state, let objected = objection(state) {
                    // Thrown, not returned: the transaction rolls back (a client created above included).
                    throw ObjectedWrite(value: objected)
                }
                var writer = try PostgresChangeSetWriter(db: db, changes: changes, now: Date())
                var runRecord = run
                runRecord.clientID = changes.clientID
                let runID = try Self.insertRun(runRecord, db: db)
                try writer.write(runID: runID)
                if let extra {
                    try Self.write(extra, db: db, counterBefore: counterBefore)
                } else {
                    // The edit log serves incremental runs only: a client without one keeps no log.
                    try db.execute("""
                        DELETE FROM store_touches WHERE client_id = $1 AND NOT EXISTS (
                            SELECT 1 FROM sync_state s JOIN clients c ON dirbridge_fold(c.name) = dirbridge_fold(s.client) WHERE c.id = $1)
                        """, PostgresBindings([changes.clientID]))
                }
                let summary = writer.counts.merging(run.summary) { _, given in given }
                try db.execute("UPDATE sync_runs SET finished_at = $1, summary = $2::jsonb WHERE id = $3",
                               PostgresBindings([run.finishedAt ?? Date(), ChangesJSON.counts(summary), runID]))
                return .success(runID)
            }
        } catch let objected as ObjectedWrite<Objection> {
            return .failure(objected.value)
        } catch let error as LeaseError {
            throw error
        } catch {
            throw Self.storeError(error)
        }
    }
}

/// An objection raised inside the write transaction, carried out of it so that it rolls back.
private struct ObjectedWrite<Value: Error>: Error {
    let value: Value
}

/// Writes one change set inside an open PostgreSQL transaction: users and history rows in
/// multi-row inserts, each user batch under a savepoint so that a batch breaking a rule is
/// redone row by row and the error names the user.
private struct PostgresChangeSetWriter {
    let db: PostgresSession.Statements
    let changes: ChangeSet
    let now: Date
    /// User group ids by name folded as the unique index on `dirbridge_fold(name)` folds it (ASCII letters only).
    var groupIDs: [String: Int64] = [:]
    var groupNames: [Int64: (name: String, isDefault: Bool)] = [:]
    var defaultGroupID: Int64?
    var counts: [String: Int] = [:]
    var runID: Int64?

    init(db: PostgresSession.Statements, changes: ChangeSet, now: Date) throws {
        self.db = db
        self.changes = changes
        self.now = now
        guard try db.row("SELECT id FROM clients WHERE id = $1", PostgresBindings([changes.clientID])) != nil else {
            throw StoreError(.unknownClient, "no client with id \(changes.clientID) in the portal store")
        }
        for row in try db.rows("SELECT id, name, is_default FROM user_groups WHERE client_id = $1", PostgresBindings([changes.clientID])) {
            let (id, name, isDefault) = (try row.int("id"), try row.text("name"), try row.flag("is_default"))
            groupIDs[ChangeSetRules.nocaseKey(name)] = id
            groupNames[id] = (name, isDefault)
            if isDefault { defaultGroupID = id }
        }
    }

    mutating func write(runID: Int64) throws {
        self.runID = runID
        for group in changes.groupCreations { try Self.context("user group \(group.name)") { try create(group) } }
        for rename in changes.groupRenames { try Self.context("user group \(rename.userGroupID)") { try self.rename(rename) } }
        for start in stride(from: 0, to: changes.userCreations.count, by: Self.userBatch) {
            try createUsers(changes.userCreations[start..<min(start + Self.userBatch, changes.userCreations.count)])
        }
        for update in changes.userUpdates { try Self.context("client user \(update.userID)") { try self.update(update) } }
        for invitation in changes.invitations {
            try Self.context("invitation of client user \(invitation.userID)") { try invite(invitation) }
        }
        try Self.context("history of run \(runID)") { try flushHistory() }
        try Self.context("invitations of run \(runID)") { try flushInvitations() }
    }

    private static func context<Result>(_ what: String, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch {
            throw PostgresStore.storeError(error, context: what)
        }
    }

    // MARK: user groups

    private mutating func create(_ group: NewUserGroup) throws {
        guard let id = try db.row("""
            INSERT INTO user_groups (client_id, name, is_default, source, external_id, created_at)
            VALUES ($1, $2, false, $3, $4, $5) RETURNING id
            """, PostgresBindings([changes.clientID, group.name, group.source.rawValue, group.externalID, now]))?.int("id")
        else { throw StoreError(.postgres, "inserting user group \(group.name) returned no id") }
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
        if current.isDefault { throw StoreError(.invariantViolation, "the \(defaultUserGroupName) cannot be renamed") }
        try db.execute("UPDATE user_groups SET name = $1 WHERE id = $2", PostgresBindings([rename.newName, rename.userGroupID]))
        groupIDs[ChangeSetRules.nocaseKey(current.name)] = nil
        groupIDs[ChangeSetRules.nocaseKey(rename.newName)] = rename.userGroupID
        groupNames[rename.userGroupID] = (rename.newName, false)
        try history(entity: "user_group", id: rename.userGroupID, action: .groupRenamed,
                    fields: [("name", .text(current.name), .text(rename.newName))], reason: rename.reason)
    }

    private func groupID(named name: String?) throws -> Int64 {
        guard let name else {
            guard let defaultGroupID else { throw StoreError(.unknownUserGroup, "the client has no \(defaultUserGroupName)") }
            return defaultGroupID
        }
        guard let id = groupIDs[ChangeSetRules.nocaseKey(name)] else {
            throw StoreError(.unknownUserGroup, "no user group named \(name) in client \(changes.clientID)")
        }
        return id
    }

    // MARK: client users

    /// The `client_users` columns a creation writes: the catalogue's attributes.
    private static let createdAttributes = UserAttribute.allCases
    private static let valuesPerUser = createdAttributes.count + 3
    /// Users per INSERT: 500 rows of 21 values stay far below PostgreSQL's 65,535 parameters.
    private static let userBatch = 500

    private static func insertUsersSQL(rows: Int) -> String {
        """
        INSERT INTO client_users (client_id, \(createdAttributes.map(\.column).joined(separator: ", ")), created_at, updated_at)
        VALUES \(valuesList(rows: rows, columns: valuesPerUser)) RETURNING id, email
        """
    }

    private static let fullUserBatchSQL = insertUsersSQL(rows: userBatch)

    private mutating func createUsers(_ users: ArraySlice<NewClientUser>) throws {
        var batch: [(user: NewClientUser, groupID: Int64)] = []
        batch.reserveCapacity(users.count)
        for user in users {
            batch.append((user, try Self.context("client user \(user.email)") { try groupID(named: user.userGroupName) }))
        }
        try db.execute("SAVEPOINT user_batch")
        let ids: [Int64]
        do {
            ids = try insertUsers(batch)
        } catch {
            // A deadlock, a lock timeout or a cancel is not a row's fault: the apply fails as it is.
            if let state = (error as? PSQLError)?.serverInfo?[.sqlState], ["40", "55", "57"].contains(String(state.prefix(2))) {
                throw error
            }
            // The batch broke a rule: redo it row by row, so that the error names the user.
            try db.execute("ROLLBACK TO SAVEPOINT user_batch")
            guard batch.count > 1 else {
                throw PostgresStore.storeError(error, context: "client user \(batch[0].user.email)")
            }
            for entry in batch {
                let id = try Self.context("client user \(entry.user.email)") { try insertUsers([entry])[0] }
                try finishCreation(entry.user, groupID: entry.groupID, userID: id)
            }
            try db.execute("RELEASE SAVEPOINT user_batch")
            return
        }
        try db.execute("RELEASE SAVEPOINT user_batch")
        for (entry, id) in zip(batch, ids) {
            try Self.context("client user \(entry.user.email)") { try finishCreation(entry.user, groupID: entry.groupID, userID: id) }
        }
    }

    /// One INSERT of `batch`; the new rows' ids in the batch's order (matched by email).
    private func insertUsers(_ batch: [(user: NewClientUser, groupID: Int64)]) throws -> [Int64] {
        var binds = PostgresBindings(capacity: batch.count * Self.valuesPerUser)
        for (user, groupID) in batch {
            binds.append(changes.clientID)
            for attribute in Self.createdAttributes {
                if attribute == .userGroup { binds.append(groupID) } else { Self.bind(user[attribute], to: &binds) }
            }
            binds.append(now)
            binds.append(now)
        }
        let rows = try db.rows(batch.count == Self.userBatch ? Self.fullUserBatchSQL : Self.insertUsersSQL(rows: batch.count), binds)
        var idByEmail: [String: Int64] = [:]
        for row in rows { idByEmail[try row.text("email")] = try row.int("id") }
        return try batch.map { entry in
            guard let id = idByEmail[entry.user.email] else {
                throw StoreError(.invalidChange, "inserting \(batch.count) client users returned no id for \(entry.user.email)")
            }
            return id
        }
    }

    private static func bind(_ value: FieldValue?, to binds: inout PostgresBindings) {
        switch value {
        case nil: binds.appendNull()
        case .text(let text)?: binds.append(text)
        case .flag(let flag)?: binds.append(flag)
        }
    }

    private mutating func finishCreation(_ user: NewClientUser, groupID: Int64, userID: Int64) throws {
        if user.invite { try insertInvitation(userID: userID, email: user.email) }
        try history(entity: "user", id: userID, action: .created,
                    fields: ChangeSetRules.createdFields(user, groupName: groupNames[groupID]?.name ?? ""), reason: user.reason)
    }

    private mutating func update(_ update: ClientUserUpdate) throws {
        let planned = try ChangeSetRules.update(update, groupID: groupID(named:), groupName: { groupNames[$0]?.name })
        var assignments: [String] = []
        var binds = PostgresBindings()
        for (column, value) in planned.columns {
            switch value {
            case .null:
                assignments.append("\(column) = NULL")
                continue
            case .value(let new): Self.bind(new, to: &binds)
            case .userGroup(let id): binds.append(id)
            }
            assignments.append("\(column) = $\(binds.count)")
        }
        binds.append(now)
        assignments.append("updated_at = $\(binds.count)")
        binds.append(update.userID)
        binds.append(changes.clientID)
        // Column names come from the catalogue (`UserAttribute.column`) only; every value is bound.
        let changed = try db.execute(
            "UPDATE client_users SET \(assignments.joined(separator: ", ")) WHERE id = $\(binds.count - 1) AND client_id = $\(binds.count)", binds)
        guard changed == 1 else { throw StoreError(.unknownUser, "no such client user in client \(changes.clientID)") }
        try history(entity: "user", id: update.userID, action: update.action, fields: planned.history, reason: update.reason)
    }

    private mutating func invite(_ invitation: InvitationRequest) throws {
        guard let email = try db.row("SELECT email FROM client_users WHERE id = $1 AND client_id = $2",
                                     PostgresBindings([invitation.userID, changes.clientID]))?.text("email")
        else { throw StoreError(.unknownUser, "no such client user in client \(changes.clientID)") }
        try insertInvitation(userID: invitation.userID, email: email)
        try history(entity: "user", id: invitation.userID, action: .invited, fields: [], reason: invitation.reason)
    }

    /// Invitations wait here and go 1,000 at a time in one multi-row insert (one statement per
    /// invited user cost a round trip each).
    private var pendingInvitations: [(userID: Int64, email: String)] = []

    private mutating func insertInvitation(userID: Int64, email: String) throws {
        pendingInvitations.append((userID, email))
        if pendingInvitations.count == 1_000 { try flushInvitations() }
    }

    private mutating func flushInvitations() throws {
        guard !pendingInvitations.isEmpty else { return }
        var binds = PostgresBindings(capacity: pendingInvitations.count * 4)
        for invitation in pendingInvitations {
            binds.append(changes.clientID)
            binds.append(invitation.userID)
            binds.append(invitation.email)
            binds.append(now)
        }
        try db.execute("INSERT INTO invitations (client_id, user_id, email, created_at, sent_at) VALUES "
                       + valuesList(rows: pendingInvitations.count, columns: 4, constants: ["NULL"]), binds)
        pendingInvitations.removeAll(keepingCapacity: true)
    }

    // MARK: history

    private struct PendingHistory {
        let entity: String
        let entityID: Int64
        let action: String
        let changes: String
        let reason: String?
    }

    private var pendingHistory: [PendingHistory] = []
    /// History rows per INSERT (9 values each).
    private static let historyBatch = 1000

    private static func insertHistorySQL(rows: Int) -> String {
        "INSERT INTO history (client_id, entity, entity_id, action, changes, editor, run_id, at, reason) VALUES "
            + valuesList(rows: rows, columns: 9, casts: [4: "::jsonb"])
    }

    private static let fullHistoryBatchSQL = insertHistorySQL(rows: historyBatch)

    private mutating func history(entity: String, id: Int64, action: HistoryAction, fields: [ChangesJSON.Entry], reason: String?) throws {
        pendingHistory.append(PendingHistory(entity: entity, entityID: id, action: action.rawValue, changes: ChangesJSON.object(fields), reason: reason))
        counts[action.rawValue, default: 0] += 1
        if pendingHistory.count == Self.historyBatch { try flushHistory() }
    }

    private mutating func flushHistory() throws {
        guard !pendingHistory.isEmpty else { return }
        var binds = PostgresBindings(capacity: pendingHistory.count * 9)
        for row in pendingHistory {
            binds.append(changes.clientID)
            binds.append(row.entity)
            binds.append(row.entityID)
            binds.append(row.action)
            binds.append(row.changes)
            binds.append(changes.editor)
            binds.append(runID)
            binds.append(now)
            binds.append(row.reason)
        }
        try db.execute(pendingHistory.count == Self.historyBatch ? Self.fullHistoryBatchSQL : Self.insertHistorySQL(rows: pendingHistory.count), binds)
        pendingHistory.removeAll(keepingCapacity: true)
    }
}
