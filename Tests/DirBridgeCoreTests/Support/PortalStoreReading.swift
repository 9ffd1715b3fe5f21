import Foundation
import GRDB
import PostgresNIO
@testable import DirBridgeCore

/// A test fixture with a portal store (an SQLite file or a PostgreSQL database), read with
/// SQL as the portal and admins' reports do.
///
/// The SQL of a test that runs on both stores is written for both: `?` placeholders (numbered
/// for PostgreSQL here), flags tested as `enabled` / `NOT enabled`, names compared with
/// `lower(…)`, JSON and times read through `CAST(… AS TEXT)`.
protocol PortalStoreReading {
    var storePath: String { get }
}

extension PortalStoreReading {
    /// The SQLite file, for tests that only run on SQLite.
    func database() throws -> DatabaseQueue { try testDatabase(storePath) }

    var isPostgres: Bool { isPostgresLocation(storePath) }

    func rows(_ sql: String, _ arguments: [(any DatabaseValueConvertible)?] = []) throws -> [TestRow] {
        if isPostgres {
            let store = try PostgresStore(url: storePath, migrating: false)
            do {
                return try store.session.exclusive { db in
                    try db.rows(numberedPlaceholders(sql), postgresBindings(arguments)).map(TestRow.init)
                }
            } catch let error as PSQLError {
                throw TestSQLError(message: "\(error.serverInfo?[.message] ?? "\(error.code)") in: \(sql)", unique: false)
            }
        }
        return try database().read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments.map { $0?.databaseValue ?? .null })).map(TestRow.init)
        }
    }

    /// Runs a write, as the portal or an admin's script would; a refusal is a ``TestSQLError``
    /// with the database's message.
    func execute(_ sql: String, _ arguments: [(any DatabaseValueConvertible)?] = []) throws {
        if isPostgres {
            let store = try PostgresStore(url: storePath, migrating: false)
            do {
                try store.session.exclusive { db in _ = try db.execute(numberedPlaceholders(sql), postgresBindings(arguments)) }
            } catch let error as PSQLError {
                throw TestSQLError(message: error.serverInfo?[.message] ?? "\(error.code)", unique: error.serverInfo?[.sqlState] == "23505")
            }
            return
        }
        do {
            try database().write { db in try db.execute(sql: sql, arguments: StatementArguments(arguments.map { $0?.databaseValue ?? .null })) }
        } catch let error as DatabaseError {
            throw TestSQLError(message: error.message ?? "\(error)", unique: error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE)
        }
    }

    func value<T: TestColumnValue>(_ sql: String, _ arguments: [(any DatabaseValueConvertible)?] = []) throws -> T? {
        guard let row = try rows(sql, arguments).first, let first = row.values.first else { return nil }
        return T(first)
    }

    func int(_ sql: String, _ arguments: [(any DatabaseValueConvertible)?] = []) throws -> Int {
        try value(sql, arguments) ?? -1
    }

    /// The store's view of one user: group name, role, flags, enabled, DN, id.
    func user(_ email: String) throws -> TestRow? {
        try rows("""
            SELECT u.*, g.name AS group_name FROM client_users u JOIN user_groups g ON g.id = u.user_group_id
            WHERE lower(u.email) = lower(?)
            """, [email]).first
    }
}

/// An SQLite store opened as a test reads it: waiting (up to 30 s) while dirbridge writes or
/// checkpoints, as the portal would, rather than failing at once with "database is locked".
func testDatabase(_ path: String) throws -> DatabaseQueue {
    var configuration = Configuration()
    configuration.busyMode = .timeout(30)
    return try DatabaseQueue(path: path, configuration: configuration)
}

/// A write refused by the database (a trigger's rule, a unique index).
struct TestSQLError: Error {
    var message: String
    /// A unique index refused it.
    var unique: Bool
}

/// `?` placeholders numbered `$1, $2, …` for PostgreSQL (the tests' SQL has no `?` in literals).
private func numberedPlaceholders(_ sql: String) -> String {
    var number = 0
    return sql.reduce(into: "") { result, character in
        if character == "?" {
            number += 1
            result += "$\(number)"
        } else {
            result.append(character)
        }
    }
}

private func postgresBindings(_ arguments: [(any DatabaseValueConvertible)?]) -> PostgresBindings {
    var bindings = PostgresBindings()
    for argument in arguments {
        switch argument?.databaseValue.storage {
        case .int64(let value)?: bindings.append(value)
        case .double(let value)?: bindings.append(value)
        case .string(let value)?: bindings.append(value)
        case .blob(let value)?: bindings.append([UInt8](value))
        case .null?, nil: bindings.appendNull()
        }
    }
    return bindings
}

/// A value read from either store: flags as 1 or 0, times as the SQLite store's text.
enum TestValue: Equatable, Sendable, CustomStringConvertible {
    case null, int(Int64), double(Double), text(String), bytes([UInt8])

    var description: String {
        switch self {
        case .null: "NULL"
        case .int(let value): "\(value)"
        case .double(let value): "\(value)"
        case .text(let value): "'\(value)'"
        case .bytes(let value): "<\(value.count) bytes>"
        }
    }
}

/// A row read from either store, by column name.
struct TestRow: CustomStringConvertible {
    let columns: [String]
    let values: [TestValue]

    init(_ row: Row) {
        columns = Array(row.columnNames)
        values = row.databaseValues.map { value in
            switch value.storage {
            case .null: .null
            case .int64(let number): .int(number)
            case .double(let number): .double(number)
            case .string(let text): .text(text)
            case .blob(let data): .bytes([UInt8](data))
            }
        }
    }

    init(_ row: PostgresStoreRow) {
        var columns: [String] = []
        var values: [TestValue] = []
        for cell in row.row {
            columns.append(cell.columnName)
            values.append(Self.value(cell))
        }
        (self.columns, self.values) = (columns, values)
    }

    private static func value(_ cell: PostgresCell) -> TestValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .bool: return (try? cell.decode(Bool.self)).map { .int($0 ? 1 : 0) } ?? .null
        case .int2, .int4, .int8: return (try? cell.decode(Int64.self)).map { .int($0) } ?? .null
        case .float4, .float8: return (try? cell.decode(Double.self)).map { .double($0) } ?? .null
        case .timestamptz, .timestamp: return (try? cell.decode(Date.self)).map { .text(StoreTime.text($0)) } ?? .null
        case .bytea: return (try? cell.decode(ByteBuffer.self)).map { .bytes(Array($0.readableBytesView)) } ?? .null
        default: return (try? cell.decode(String.self)).map { .text($0) } ?? .text("<\(cell.dataType)>")
        }
    }

    func value(_ column: String) -> TestValue {
        columns.firstIndex(of: column).map { values[$0] } ?? .null
    }

    subscript<T: TestColumnValue>(_ column: String) -> T {
        guard let value = T(value(column)) else { fatalError("column \(column) of \(self) is not a \(T.self)") }
        return value
    }

    subscript<T: TestColumnValue>(_ column: String) -> T? { T(value(column)) }

    var description: String {
        "[" + zip(columns, values).map { "\($0):\($1)" }.joined(separator: " ") + "]"
    }
}

/// A Swift type a ``TestValue`` reads as.
protocol TestColumnValue {
    init?(_ value: TestValue)
}

extension String: TestColumnValue {
    init?(_ value: TestValue) {
        switch value {
        case .text(let text): self = text
        case .int(let number): self = String(number)
        default: return nil
        }
    }
}

extension Int64: TestColumnValue {
    init?(_ value: TestValue) {
        guard case .int(let number) = value else { return nil }
        self = number
    }
}

extension Int32: TestColumnValue {
    init?(_ value: TestValue) {
        guard case .int(let number) = value else { return nil }
        self = Int32(number)
    }
}

extension Int: TestColumnValue {
    init?(_ value: TestValue) {
        guard case .int(let number) = value else { return nil }
        self = Int(number)
    }
}

extension Bool: TestColumnValue {
    init?(_ value: TestValue) {
        guard case .int(let number) = value else { return nil }
        self = number != 0
    }
}

extension Double: TestColumnValue {
    init?(_ value: TestValue) {
        switch value {
        case .double(let number): self = number
        case .int(let number): self = Double(number)
        default: return nil
        }
    }
}
