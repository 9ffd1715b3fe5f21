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
    public func apply(_ changes: ChangeSet, run: SyncRunRecord) throws(StoreError) -> Int64 {
        do {
            return try write(changes, run: run, lease: nil, extra: nil, readingState: false) { _ -> Never? in nil }.get()
        } catch {
            throw StoreError.from(error)
        }
    }

    /// ``apply(_:run:)`` under a lease, with `extra` written in the same transaction (the
    /// incremental sync's directory cache and cookie). A lost lease writes nothing.
    ///
    /// With `creating`, the client (and its Default User Group) is created in the same
    /// transaction, and the change set and run are bound to it: a first apply that fails
    /// leaves no empty client behind.
    func apply(
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
                var writer = try ChangeSetWriter(db: db, changes: changes, now: Date())
                var runRecord = run
                runRecord.clientID = changes.clientID
                let runID = try Self.insertRun(runRecord, db: db)
                try writer.write(runID: runID)
                try extra?.write(db, counterBefore: counterBefore)
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
        let rows = try Row.fetchCursor(
            db, sql: "SELECT id, name, is_default FROM user_groups WHERE client_id = ?", arguments: [changes.clientID])
        while let row = try rows.next() {
            let id: Int64 = row[0]
            let name: String = row[1]
            let isDefault: Bool = row[2]
            groupIDs[Self.nocaseKey(name)] = id
            groupNames[id] = (name, isDefault)
            if isDefault { defaultGroupID = id }
        }
    }

    /// SQLite's NOCASE collation folds ASCII letters only; the store's unique indexes use it,
    /// so name lookups here do the same.
    static func nocaseKey(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map { scalar in
            (65...90).contains(scalar.value) ? Unicode.Scalar(scalar.value + 32)! : scalar
        }))
    }

    mutating func write(runID: Int64) throws {
        self.runID = runID
        for group in changes.groupCreations { try Self.context("user group \(group.name)") { try create(group) } }
        for rename in changes.groupRenames { try Self.context("user group \(rename.userGroupID)") { try self.rename(rename) } }
        for user in changes.userCreations { try Self.context("client user \(user.email)") { try create(user) } }
        for update in changes.userUpdates { try Self.context("client user \(update.userID)") { try self.update(update) } }
        for invitation in changes.invitations {
            try Self.context("invitation of client user \(invitation.userID)") { try invite(invitation) }
        }
    }

    private static func context(_ what: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            throw StoreError.from(error, context: what)
        }
    }

    // MARK: user groups

    private mutating func create(_ group: NewUserGroup) throws {
        try db.cachedStatement(sql: """
            INSERT INTO user_groups (client_id, name, is_default, source, external_id, created_at)
            VALUES (?, ?, 0, ?, ?, ?)
            """).execute(arguments: [changes.clientID, group.name, group.source.rawValue, group.externalID, now])
        let id = db.lastInsertedRowID
        groupIDs[Self.nocaseKey(group.name)] = id
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
            throw StoreError(.invariantViolation, "the \(StoreSchema.defaultUserGroupName) cannot be renamed")
        }
        try db.cachedStatement(sql: "UPDATE user_groups SET name = ? WHERE id = ?")
            .execute(arguments: [rename.newName, rename.userGroupID])
        groupIDs[Self.nocaseKey(current.name)] = nil
        groupIDs[Self.nocaseKey(rename.newName)] = rename.userGroupID
        groupNames[rename.userGroupID] = (rename.newName, false)
        try history(entity: "user_group", id: rename.userGroupID, action: .groupRenamed,
                    fields: [("name", .text(current.name), .text(rename.newName))], reason: rename.reason)
    }

    private func groupID(named name: String?) throws -> Int64 {
        guard let name else {
            guard let defaultGroupID else {
                throw StoreError(.unknownUserGroup, "the client has no \(StoreSchema.defaultUserGroupName)")
            }
            return defaultGroupID
        }
        guard let id = groupIDs[Self.nocaseKey(name)] else {
            throw StoreError(.unknownUserGroup, "no user group named \(name) in client \(changes.clientID)")
        }
        return id
    }

    // MARK: client users

    private mutating func create(_ user: NewClientUser) throws {
        let groupID = try groupID(named: user.userGroupName)
        try db.cachedStatement(sql: """
            INSERT INTO client_users (client_id, email, first_name, last_name, title, cell_phone, office_phone,
                                      extension, location, role, user_group_id, global_admin, group_manager,
                                      has_login, enabled, source, external_id, external_dn, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                changes.clientID, user.email, user.firstName, user.lastName, user.title, user.cellPhone,
                user.officePhone, user.extension, user.location, user.role, groupID, user.globalAdmin,
                user.groupManager, user.hasLogin, user.enabled, user.source.rawValue, user.externalID,
                user.externalDN, now, now,
            ])
        let userID = db.lastInsertedRowID
        if user.invite { try insertInvitation(userID: userID, email: user.email) }
        // Built in key order, so the JSON needs no sort: one history row per created user.
        var fields: [ChangesJSON.Entry] = []
        fields.reserveCapacity(18)
        func add(_ field: String, _ value: String?) {
            if let value { fields.append((field, .null, .text(value))) }
        }
        add("cell_phone", user.cellPhone)
        add("email", user.email)
        fields.append(("enabled", .null, .flag(user.enabled)))
        add("extension", user.extension)
        add("external_dn", user.externalDN)
        add("external_id", user.externalID)
        add("first_name", user.firstName)
        fields.append(("global_admin", .null, .flag(user.globalAdmin)))
        fields.append(("group_manager", .null, .flag(user.groupManager)))
        fields.append(("has_login", .null, .flag(user.hasLogin)))
        if user.invite { fields.append(("invited", .null, .flag(true))) }
        add("last_name", user.lastName)
        add("location", user.location)
        add("office_phone", user.officePhone)
        add("role", user.role)
        add("source", user.source.rawValue)
        add("title", user.title)
        add("user_group", groupNames[groupID]?.name ?? "")
        try history(entity: "user", id: userID, action: .created, fields: fields, reason: user.reason)
    }

    private static let booleanFields: Set<String> = ["global_admin", "group_manager", "has_login", "enabled"]
    private static let requiredTextFields: Set<String> = ["email", "role", "source"]

    private static func flag(_ value: String?, field: String) throws -> Bool? {
        switch value?.lowercased() {
        case nil: return nil
        case "1", "true": return true
        case "0", "false": return false
        case let other?: throw StoreError(.invalidChange, "\(field) takes 1 or 0, not \(other)")
        }
    }

    private mutating func update(_ update: ClientUserUpdate) throws {
        guard !update.fields.isEmpty else {
            throw StoreError(.invalidChange, "an update with no changed field")
        }
        var assignments: [String] = []
        var arguments = StatementArguments()
        var fields: [ChangesJSON.Entry] = []
        for name in update.fields.keys.sorted() {
            let change = update.fields[name]!
            guard ClientUserUpdate.updatableFields.contains(name) else {
                throw StoreError(.invalidChange, "\(name) is not a client user field dirbridge updates")
            }
            if name == "user_group" {
                assignments.append("user_group_id = ?")
                guard let newName = change.new else {
                    throw StoreError(.invalidChange, "a client user must keep a user group")
                }
                let newID = try groupID(named: newName)
                _ = arguments.append(contentsOf: [newID])
                fields.append((name, PortalStore.text(change.old), .text(groupNames[newID]?.name ?? newName)))
            } else if Self.booleanFields.contains(name) {
                guard let new = try Self.flag(change.new, field: name) else {
                    throw StoreError(.invalidChange, "\(name) cannot be null")
                }
                assignments.append("\(name) = ?")
                _ = arguments.append(contentsOf: [new])
                fields.append((name, try Self.flag(change.old, field: name).map { .flag($0) } ?? .null, .flag(new)))
            } else {
                if change.new == nil && Self.requiredTextFields.contains(name) {
                    throw StoreError(.invalidChange, "\(name) cannot be null")
                }
                if name == "source", let new = change.new, RecordSource(rawValue: new) == nil {
                    throw StoreError(.invalidChange, "source is directory or portal, not \(new)")
                }
                assignments.append("\(name) = ?")
                _ = arguments.append(contentsOf: [change.new])
                fields.append((name, PortalStore.text(change.old), PortalStore.text(change.new)))
            }
        }
        assignments.append("updated_at = ?")
        _ = arguments.append(contentsOf: [now, update.userID, changes.clientID])
        // Column names come from `updatableFields` only; every value is bound.
        try db.cachedStatement(sql: "UPDATE client_users SET \(assignments.joined(separator: ", ")) WHERE id = ? AND client_id = ?")
            .execute(arguments: arguments)
        guard db.changesCount == 1 else {
            throw StoreError(.unknownUser, "no such client user in client \(changes.clientID)")
        }
        try history(entity: "user", id: update.userID, action: update.action, fields: fields, reason: update.reason)
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
        try PortalStore.insertHistory(
            db: db, clientID: changes.clientID, entity: entity, entityID: id, action: action,
            changes: ChangesJSON.object(fields), editor: changes.editor, runID: runID, at: now, reason: reason)
        counts[action.rawValue, default: 0] += 1
    }
}
