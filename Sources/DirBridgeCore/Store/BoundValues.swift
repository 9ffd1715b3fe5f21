import GRDB
import GRDBSQLite

/// Statement values packed on a preparing thread (integers, NULLs, and texts as spans of one
/// byte buffer) and bound on the writing thread without making anything.
///
/// GRDB binds a `String` with `SQLITE_TRANSIENT`: Swift makes a C string of it (an allocation
/// and a copy for every short string), SQLite copies it again, and clearing the bindings frees
/// both; the arguments array is retained and released value by value. A first sync binds about
/// 25 values per created user on the one thread SQLite writes on. Here the texts are bound with
/// `SQLITE_STATIC`, pointing into the buffer, which ``withBinder(_:)`` keeps alive and in
/// place; ``Binder/execute(_:binding:)`` clears the bindings after each statement.
///
/// A text binds as GRDB binds it: its bytes up to the first NUL (GRDB passes a C string).
struct BoundValues: Sendable {
    enum Value: Sendable {
        case null
        case integer(Int64)
        case text(start: Int32, count: Int32)
    }

    private var values: [Value] = []
    /// Starts with one byte, so that the buffer always has an address: an empty text binds as
    /// empty text, not as NULL (SQLite takes a null pointer for NULL).
    private var bytes: [UInt8] = [0]

    init(values: Int, bytes: Int) {
        self.values.reserveCapacity(values)
        self.bytes.reserveCapacity(bytes + 1)
    }

    mutating func appendNull() { values.append(.null) }

    mutating func append(_ integer: Int64) { values.append(.integer(integer)) }

    mutating func append(_ text: String?) {
        guard var text else { return appendNull() }
        appendText { bytes in
            text.withUTF8 { utf8 in
                let end = utf8.firstIndex(of: 0) ?? utf8.endIndex
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[..<end]))
            }
        }
    }

    /// A portal field's value: text, a flag as 0 or 1 (as GRDB binds a Bool), or NULL.
    mutating func append(_ value: FieldValue?) {
        switch value {
        case nil: appendNull()
        case .text(let text)?: append(text)
        case .flag(let flag)?: append(flag ? 1 : 0)
        }
    }

    /// A text written straight into the buffer by `write` (which must not write a NUL).
    mutating func appendText(_ write: (inout [UInt8]) -> Void) {
        let start = bytes.count
        write(&bytes)
        precondition(bytes.count <= Int32.max, "more than 2 GB of values in one batch")
        values.append(.text(start: Int32(start), count: Int32(bytes.count - start)))
    }

    /// Calls `body` with a binder whose texts stay valid until it returns.
    func withBinder<Result>(_ body: (Binder) throws -> Result) rethrows -> Result {
        try bytes.withUnsafeBufferPointer { buffer in
            try values.withUnsafeBufferPointer { values in
                try body(Binder(values: values, base: UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)))
            }
        }
    }

    struct Binder {
        fileprivate let values: UnsafeBufferPointer<Value>
        fileprivate let base: UnsafePointer<CChar>

        /// Binds the value at `index` to the statement's parameter `parameter` (1-based).
        func bind(_ index: Int, to statement: Statement, at parameter: CInt) throws {
            let code: CInt = switch values[index] {
            case .null: sqlite3_bind_null(statement.sqliteStatement, parameter)
            case .integer(let integer): sqlite3_bind_int64(statement.sqliteStatement, parameter, integer)
            case .text(let start, let count):
                sqlite3_bind_text(statement.sqliteStatement, parameter, base + Int(start), count, nil /* SQLITE_STATIC */)
            }
            try check(code, parameter, statement)
        }

        private func check(_ code: CInt, _ parameter: CInt, _ statement: Statement) throws {
            guard code == SQLITE_OK else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "cannot bind parameter \(parameter)", sql: statement.sql)
            }
        }

        /// Binds an integer that is not among the values (a row's id, known only once written).
        func bind(integer: Int64, to statement: Statement, at parameter: CInt) throws {
            try check(sqlite3_bind_int64(statement.sqliteStatement, parameter, integer), parameter, statement)
        }

        /// Binds the values at `indices` to consecutive parameters from `parameter` on.
        func bind(_ indices: Range<Int>, to statement: Statement, from parameter: CInt) throws {
            for (offset, index) in indices.enumerated() {
                try bind(index, to: statement, at: parameter + CInt(offset))
            }
        }

        /// Runs `bind` (this binder's binds to `statement`), then executes the statement; clears
        /// every binding afterwards, also when a bind or the statement fails: none may point into
        /// the buffer once ``BoundValues/withBinder(_:)`` returns.
        ///
        /// The statement must have had `setUncheckedArguments` first (it resets it and binds the
        /// parameters the rows share): GRDB then executes with the bindings as they are.
        func execute(_ statement: Statement, binding bind: () throws -> Void) throws {
            defer { sqlite3_clear_bindings(statement.sqliteStatement) }
            try bind()
            try statement.execute()
        }
    }
}
