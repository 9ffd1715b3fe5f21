import Foundation

/// The directory cache's rows of a full read, kept in a temporary file until the apply writes
/// them, instead of in memory beside the mapped directory.
///
/// A full read with `--incremental` keeps every entry encoded for the cache (about 300 bytes of
/// attributes per user, its key, DN and email); held in memory they were the largest part of the
/// run's peak (72 MB of 234 MB at 100k users). Rows are appended through a 1 MB buffer to a
/// file created with `mkstemp` (mode 0600, closed on exec) in ``directory`` and unlinked at once: nothing is left
/// behind when the run ends, fails or is killed, and only this process (and root) can reach it.
///
/// Confined to one thread at a time: the mapping thread appends during the read, the applying
/// thread reads after ``finish()``; the hand-over is the read's end.
final class CacheRowSpool: @unchecked Sendable {
    /// Where spools are made: `$TMPDIR`, else `/var/tmp` (kept on disk, unlike a `/tmp` on tmpfs).
    static var directory: String {
        if let dir = ProcessInfo.processInfo.environment["TMPDIR"], !dir.isEmpty { return dir }
        return "/var/tmp"
    }

    private let descriptor: Int32
    /// The directory the file was made in, for messages.
    private let directory: String
    private var buffer: [UInt8] = []
    private static let bufferSize = 1 << 20
    /// The first write that failed, as `strerror` names it; reported by ``finish()``.
    private var failure: String?
    private var written = 0
    /// Rows appended.
    private(set) var count = 0

    /// A spool in `directory`; nil when no file can be made there (the caller keeps rows in memory).
    init?(directory: String = CacheRowSpool.directory) {
        var template = Array((directory.hasSuffix("/") ? directory : directory + "/").utf8CString.dropLast())
        template += Array("dirbridge-cache-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        descriptor = fd
        self.directory = directory
        unlink(template)
        buffer.reserveCapacity(Self.bufferSize)
    }

    deinit { close(descriptor) }

    /// Appends a row: its kind, which optional columns it has, then each value's bytes after
    /// their length (LEB128).
    func append(_ row: CacheRow) {
        count += 1
        var flags: UInt8 = row.kind == .user ? 1 : 0
        if let id = row.externalID { flags |= id.utf8.elementsEqual(row.key.utf8) ? 4 : 2 }
        if row.dn != nil { flags |= 8 }
        if row.email != nil { flags |= 16 }
        buffer.append(flags)
        put(row.key.utf8)
        put(row.entry)
        if flags & 2 != 0, let id = row.externalID { put(id.utf8) }
        if let dn = row.dn { put(dn.utf8) }
        if let email = row.email { put(email.utf8) }
        if buffer.count >= Self.bufferSize { flush() }
    }

    private func put(_ bytes: some Collection<UInt8>) { LEB128.append(bytes, to: &buffer) }

    private func flush() {
        defer { buffer.removeAll(keepingCapacity: true) }
        guard failure == nil else { return }
        buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let result = pwrite(descriptor, raw.baseAddress! + offset, raw.count - offset, off_t(written + offset))
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else {
                    failure = result < 0 ? String(cString: strerror(errno)) : "nothing could be written"
                    return
                }
                offset += result
            }
        }
        written += buffer.count
    }

    /// Writes what is buffered; throws when any write failed (the disk is full, say). Nothing of
    /// the run has been written to the store then.
    func finish() throws(SyncError) {
        flush()
        if let failure {
            throw SyncError(kind: .store, message: """
                cannot keep the directory cache's entries in a temporary file in \(directory): \(failure); \
                free space there, or set TMPDIR to a directory with room (about 400 bytes per entry)
                """)
        }
    }

    /// Reads the rows back in order, `size` at a time. Throws ``SyncError`` when the file cannot
    /// be read back whole.
    func forEachBatch(_ size: Int, _ body: ([CacheRow]) throws -> Void) throws {
        try finish()
        var pending: [UInt8] = []
        var readOffset = 0
        var batch: [CacheRow] = []
        batch.reserveCapacity(size)
        var rows = 0
        var chunk = [UInt8](repeating: 0, count: Self.bufferSize)
        while readOffset < written {
            let got = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress!, min($0.count, written - readOffset), off_t(readOffset)) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw readFailure(got < 0 ? String(cString: strerror(errno)) : "it ended early") }
            readOffset += got
            pending += chunk[0..<got]
            var position = 0
            while let row = Self.decode(pending, at: &position) {
                batch.append(row)
                rows += 1
                if batch.count == size {
                    try body(batch)
                    batch.removeAll(keepingCapacity: true)
                }
            }
            pending.removeSubrange(0..<position)
        }
        guard pending.isEmpty, rows == count else { throw readFailure("it holds \(rows) of \(count) entries") }
        if !batch.isEmpty { try body(batch) }
    }

    private func readFailure(_ detail: String) -> SyncError {
        SyncError(kind: .store, message: """
            cannot read back the directory cache's entries from their temporary file in \(directory): \(detail); \
            nothing was written: run the sync again
            """)
    }

    /// The row at `position`, advancing past it; nil when `bytes` holds only part of it.
    static func decode(_ bytes: [UInt8], at position: inout Int) -> CacheRow? {
        bytes.withUnsafeBufferPointer { bytes in
            var at = position
            func chunk() -> UnsafeBufferPointer<UInt8>? { LEB128.chunk(bytes, at: &at) }
            func text() -> String? { chunk().map { String(decoding: $0, as: UTF8.self) } }
            guard at < bytes.count else { return nil }
            let flags = bytes[at]
            at += 1
            guard let key = text(), let entry = chunk() else { return nil }
            var row = CacheRow(kind: flags & 1 != 0 ? .user : .group, key: key, encodedEntry: Array(entry))
            if flags & 4 != 0 { row.externalID = key }
            if flags & 2 != 0 { guard let id = text() else { return nil }; row.externalID = id }
            if flags & 8 != 0 { guard let dn = text() else { return nil }; row.dn = dn }
            if flags & 16 != 0 { guard let email = text() else { return nil }; row.email = email }
            position = at
            return row
        }
    }
}
