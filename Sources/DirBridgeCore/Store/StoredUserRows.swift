import GRDB
import GRDBSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rows of ``StoredUser/orderedSelection`` copied out of the statement as SQLite returns them,
/// so that a full load makes its Strings on the sharing thread (``StoredUserSharing``), and
/// there mostly makes none: a value with the bytes of the directory's mapped value takes that
/// value's storage without a String of its own ever being made.
///
/// Loading thread: the integers, and each text column's bytes up to its first NUL (GRDB reads a
/// String as `String(cString: sqlite3_column_text(…))`, so these are the bytes it would decode)
/// or NULL. The values equal those of ``StoredUser/init(orderedRow:)`` but for a NULL in a NOT
/// NULL text column, read as "" here (GRDB stops there).
struct StoredUserRows: Sendable {
    private static let fieldCount = PortalField.allCases.count
    /// The first column after the fields: `role`, then the flags, source, external id and DN.
    private static let afterFields = 5 + fieldCount
    /// id, client_id, user_group_id, global_admin, group_manager, has_login, enabled.
    private static let integerColumns: [CInt] = ([0, 1, 2] + (1...4).map { afterFields + $0 }).map { CInt($0) }
    /// created_at, updated_at, the fields in their order, role, source, external_id, external_dn.
    private static let textColumns: [CInt] = ([3, 4] + (0..<fieldCount).map { 5 + $0 }
        + [afterFields, afterFields + 5, afterFields + 6, afterFields + 7]).map { CInt($0) }
    private static let integersPerRow = integerColumns.count
    private static let textsPerRow = textColumns.count

    private(set) var count = 0
    private var integers: [Int64] = []
    /// Per row and text column: where its bytes start in `bytes`, and their count (-1 for NULL).
    private var spans: [(start: Int, count: Int)] = []
    private var bytes: [UInt8] = []

    init(capacity: Int) {
        integers.reserveCapacity(capacity * Self.integersPerRow)
        spans.reserveCapacity(capacity * Self.textsPerRow)
        bytes.reserveCapacity(capacity * 256)
    }

    /// Copies the statement's current row.
    mutating func append(_ statement: SQLiteStatement) {
        for column in Self.integerColumns { integers.append(sqlite3_column_int64(statement, column)) }
        for column in Self.textColumns {
            guard sqlite3_column_type(statement, column) != SQLITE_NULL, let text = sqlite3_column_text(statement, column) else {
                spans.append((bytes.count, -1))
                continue
            }
            let length = strlen(text)
            spans.append((bytes.count, length))
            bytes.append(contentsOf: UnsafeBufferPointer(start: text, count: length))
        }
        count += 1
    }

    /// Calls `body` with each row in order.
    func forEach(_ body: (Row) -> Void) {
        bytes.withUnsafeBufferPointer { all in
            for index in 0..<count {
                body(Row(integers: integers[index * Self.integersPerRow..<(index + 1) * Self.integersPerRow],
                         spans: spans[index * Self.textsPerRow..<(index + 1) * Self.textsPerRow], bytes: all))
            }
        }
    }

    /// One row, read in place.
    struct Row {
        fileprivate let integers: ArraySlice<Int64>
        fileprivate let spans: ArraySlice<(start: Int, count: Int)>
        fileprivate let bytes: UnsafeBufferPointer<UInt8>

        var id: Int64 { integers[integers.startIndex] }
        var clientID: Int64 { integers[integers.startIndex + 1] }
        var userGroupID: Int64 { integers[integers.startIndex + 2] }
        var globalAdmin: Bool { integers[integers.startIndex + 3] != 0 }
        var groupManager: Bool { integers[integers.startIndex + 4] != 0 }
        var hasLogin: Bool { integers[integers.startIndex + 5] != 0 }
        var enabled: Bool { integers[integers.startIndex + 6] != 0 }

        var createdAt: UnsafeBufferPointer<UInt8>? { text(0) }
        var updatedAt: UnsafeBufferPointer<UInt8>? { text(1) }
        func field(_ field: PortalField) -> UnsafeBufferPointer<UInt8>? { text(2 + field.slot) }
        var role: UnsafeBufferPointer<UInt8>? { text(2 + StoredUserRows.fieldCount) }
        var source: UnsafeBufferPointer<UInt8>? { text(3 + StoredUserRows.fieldCount) }
        var externalID: UnsafeBufferPointer<UInt8>? { text(4 + StoredUserRows.fieldCount) }
        var externalDN: UnsafeBufferPointer<UInt8>? { text(5 + StoredUserRows.fieldCount) }

        private func text(_ index: Int) -> UnsafeBufferPointer<UInt8>? {
            let span = spans[spans.startIndex + index]
            return span.count < 0 ? nil : UnsafeBufferPointer(rebasing: bytes[span.start..<span.start + span.count])
        }
    }
}

extension String {
    /// The text of UTF-8 `bytes`, repaired as `String(cString:)` repairs them.
    init(utf8Bytes bytes: UnsafeBufferPointer<UInt8>) {
        self.init(decoding: bytes, as: UTF8.self)
    }
}
