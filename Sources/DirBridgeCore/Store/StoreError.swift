import GRDB

/// A failure of the portal store: it could not be opened, read or written, or a write
/// broke one of the portal's rules.
///
/// Every store failure exits with status 4. `description` says what happened and, where
/// there is one, what to do about it.
public struct StoreError: DirBridgeFailure, Equatable {
    /// What kind of store failure this is, for callers that react to some of them.
    public enum Code: String, Sendable, Equatable {
        /// The store file does not exist (read-only views never create one).
        case missingStore
        /// The file could not be opened as an SQLite database.
        case cannotOpen
        /// The store was migrated by a newer dirbridge than this one.
        case newerSchema
        /// A write broke a portal rule (Global Admin, Group Manager, user group ownership).
        case invariantViolation
        /// A write would duplicate a unique value (email, user group name, external id).
        case duplicate
        /// The client named or referenced does not exist.
        case unknownClient
        /// A change names a client user that does not exist in the client.
        case unknownUser
        /// A change names a user group that does not exist in the client.
        case unknownUserGroup
        /// A change is malformed (an unknown field, a bad boolean value).
        case invalidChange
        /// Any other SQLite failure.
        case sqlite
        /// Any other PostgreSQL failure.
        case postgres
    }

    /// What kind of store failure this is.
    public var code: Code
    /// The text shown to the person running dirbridge.
    public var message: String

    /// Creates a store error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var kind: FailureKind { .store }
    public var description: String { message }
}

extension StoreError {
    /// Turns a GRDB/SQLite error into a store error, prefixing `context` (what was being
    /// written) to the message.
    static func from(_ error: any Error, context: String? = nil) -> StoreError {
        if let storeError = error as? StoreError { return storeError }
        let prefix = context.map { "\($0): " } ?? ""
        guard let databaseError = error as? DatabaseError else {
            return StoreError(.sqlite, "\(prefix)\(error)")
        }
        let detail = databaseError.message ?? "\(databaseError.resultCode)"
        switch databaseError.extendedResultCode {
        case .SQLITE_CONSTRAINT_TRIGGER:
            return StoreError(.invariantViolation, "\(prefix)\(detail)")
        case .SQLITE_CONSTRAINT_UNIQUE, .SQLITE_CONSTRAINT_PRIMARYKEY:
            return StoreError(.duplicate, "\(prefix)already exists (\(detail))")
        default:
            return StoreError(.sqlite, "\(prefix)\(detail)")
        }
    }
}

/// Runs `body`, turning any error it throws into a ``StoreError``.
func storeOperation<T>(_ context: String? = nil, _ body: () throws -> T) throws(StoreError) -> T {
    do {
        return try body()
    } catch {
        throw StoreError.from(error, context: context)
    }
}
