import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO

/// One PostgreSQL connection, used by one caller at a time: statements run one after the
/// other and a transaction holds the connection until it commits or rolls back.
///
/// The store's API is synchronous, as on SQLite: each statement waits for its result on the
/// calling thread, while postgres-nio's event loop does the I/O (never on that loop).
final class PostgresSession: Sendable {
    private let connection: PostgresConnection
    private let lock = NIOLock()
    private let logger: Logger
    let address: PostgresAddress

    init(_ address: PostgresAddress) throws(StoreError) {
        self.address = address
        var logger = Logger(label: "dirbridge.postgres")
        logger.logLevel = .critical
        self.logger = logger
        let configuration = try address.configuration()
        do {
            connection = try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: 1, logger: logger
            ).wait()
        } catch {
            throw StoreError(.cannotOpen, "cannot connect to the portal store \(address.display): \(Self.describe(error))"
                             + Self.advice(error, address: address))
        }
        for (name, value) in PostgresAddress.sessionSettings {
            _ = try? exclusive { try $0.execute("SET \(name) = '\(value)'") }
        }
    }

    deinit {
        try? connection.close().wait()
    }

    /// Runs `body` with the connection to itself; other callers wait.
    func exclusive<T>(_ body: (Statements) throws -> T) throws -> T {
        try lock.withLock { try body(Statements(connection: connection, logger: logger)) }
    }

    /// Runs `body` in one transaction (committed when it returns, rolled back when it throws).
    func transaction<T>(_ isolation: String = "READ COMMITTED", _ body: (Statements) throws -> T) throws -> T {
        try exclusive { statements in
            try statements.execute("BEGIN ISOLATION LEVEL \(isolation)")
            do {
                let result = try body(statements)
                try statements.execute("COMMIT")
                return result
            } catch {
                _ = try? statements.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// The statements of one exclusive use of the connection.
    struct Statements {
        let connection: PostgresConnection
        let logger: Logger

        /// Runs a statement; returns the rows it changed.
        @discardableResult
        func execute(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) throws -> Int {
            try connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).wait().metadata.rows ?? 0
        }

        /// Runs several statements without parameters (a migration's DDL), one by one: the
        /// extended protocol takes one statement at a time.
        func executeScript(_ sql: String) throws {
            for statement in Self.split(sql) { try execute(statement) }
        }

        /// The statements of a script: split at `;` outside quotes and `$$` bodies.
        static func split(_ sql: String) -> [String] {
            var statements: [String] = []
            var current = ""
            var (inQuote, inBody) = (false, false)
            var previous: Character = " "
            for character in sql {
                if character == "'" && !inBody { inQuote.toggle() }
                if character == "$" && previous == "$" && !inQuote { inBody.toggle() }
                if character == ";" && !inQuote && !inBody {
                    let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                    if !statement.isEmpty { statements.append(statement) }
                    current = ""
                } else {
                    current.append(character)
                }
                previous = character == "$" && previous == "$" ? " " : character
            }
            let last = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if !last.isEmpty { statements.append(last) }
            return statements
        }

        /// Runs a query and returns its rows.
        func rows(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) throws -> [PostgresStoreRow] {
            try connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).wait().rows.map(PostgresStoreRow.init)
        }

        /// The first row of a query, if any.
        func row(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) throws -> PostgresStoreRow? {
            try rows(sql, binds).first
        }

        /// Runs a query and makes a value of each row as it arrives, instead of collecting the
        /// rows first: a 100k-user client's rows, held at once, cost a no-op resync 100 MB.
        func values<Value>(_ sql: String, _ binds: PostgresBindings = PostgresBindings(), _ make: @escaping @Sendable (PostgresStoreRow) throws -> Value) throws -> [Value] {
            let collected = Collected<Value>()
            // The rows come one after another on the connection's event loop; wait() returns after the last.
            _ = try connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger) { row in
                collected.values.append(try make(PostgresStoreRow(row)))
            }.wait()
            return collected.values
        }
    }

    /// The values a row callback appends, read once the query has finished.
    private final class Collected<Value>: @unchecked Sendable {
        var values: [Value] = []
    }

    /// The server's own words for a failure (postgres-nio's description hides them).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo {
            return [info[.message], info[.detail].map { "(\($0))" }].compactMap { $0 }.joined(separator: " ")
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    private static func advice(_ error: any Error, address: PostgresAddress) -> String {
        guard let error = error as? PSQLError else { return "" }
        switch error.serverInfo?[.sqlState] {
        case "28P01", "28000":
            return ". Check the user and the password (store.password_env, store.password_file, PGPASSWORD or ~/.pgpass)"
        case "3D000":
            return ". Create the database first (createdb \(address.database)) or fix the URL"
        default:
            break
        }
        if error.code == .authMechanismRequiresPassword {
            return ". The server asks for a password: set store.password_env, store.password_file, PGPASSWORD or ~/.pgpass"
        }
        if error.code == .sslUnsupported {
            return ". The server does not offer TLS: use sslmode=prefer or disable, or turn ssl on in postgresql.conf"
        }
        return ". Check that the server runs and accepts TCP connections from this host (listen_addresses, pg_hba.conf)"
    }
}

/// One row of a PostgreSQL result, read by column name.
struct PostgresStoreRow {
    let row: PostgresRandomAccessRow

    init(_ row: PostgresRow) { self.row = row.makeRandomAccess() }

    func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try row[column].decode(T.self, context: .default)
    }

    subscript(_ column: String) -> String { get throws { try decode(column) } }
    func text(_ column: String) throws -> String { try decode(column) }
    func optionalText(_ column: String) throws -> String? { try decode(column) }
    func int(_ column: String) throws -> Int64 { try decode(column) }
    func optionalInt(_ column: String) throws -> Int64? { try decode(column) }
    func flag(_ column: String) throws -> Bool { try decode(column) }
}

extension PostgresBindings {
    /// Bindings from a list of values (nil binds NULL).
    init(_ values: [(any PostgresDynamicTypeEncodable)?]) {
        self.init(capacity: values.count)
        for value in values {
            if let value { append(value) } else { appendNull() }
        }
    }

    /// Appends any encodable value, NULL for nil.
    mutating func append(any value: (any PostgresDynamicTypeEncodable)?) {
        if let value { append(value) } else { appendNull() }
    }
}

/// The VALUES list of a multi-row insert: `rows` tuples of `columns` numbered placeholders,
/// `($1, $2, …), ($n+1, …)`. `casts` puts a cast after a column's placeholder (by its index
/// from 0, say `[4: "::jsonb"]`); `constants` are SQL written after the placeholders of every row.
func valuesList(rows: Int, columns: Int, casts: [Int: String] = [:], constants: [String] = []) -> String {
    var text = ""
    text.reserveCapacity(rows * columns * 7)
    for row in 0..<rows {
        text += row == 0 ? "(" : ", ("
        for column in 0..<columns {
            if column > 0 { text += ", " }
            text += "$\(row * columns + column + 1)" + (casts[column] ?? "")
        }
        for constant in constants { text += ", " + constant }
        text += ")"
    }
    return text
}
