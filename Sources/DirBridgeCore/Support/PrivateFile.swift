import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Files that hold personal data (the store, saved plans, HTML reports) are created readable and
/// writable by their owner only (0600); the admin may widen that with chmod and chgrp, and an
/// existing file keeps its mode and group when it is replaced.
public enum PrivateFile {
    /// The mode of a new file: owner read and write.
    public static let newFileMode: mode_t = 0o600

    /// Creates an empty file at `path` with mode 0600 unless a file is already there; true when
    /// this call created it. SQLite treats an empty file as a new database and gives its `-wal`
    /// and `-shm` files the database file's mode.
    @discardableResult
    public static func createEmpty(atPath path: String) throws(PrivateFileError) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, newFileMode)
        if fd < 0 {
            if errno == EEXIST { return false }
            throw PrivateFileError(path: path, operation: "create", code: errno)
        }
        close(fd)
        return true
    }

    /// Writes `data` to `path` through a temporary file in the same folder and an atomic rename,
    /// so a reader sees the old file or the new one, never a part. A new file gets mode 0600;
    /// a file being replaced keeps its permission bits and, where allowed, its group.
    public static func write(_ data: Data, to path: String) throws(PrivateFileError) {
        var existing = stat()
        let replacing = stat(path, &existing) == 0 && (existing.st_mode & S_IFMT) == S_IFREG
        let folder = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        var template = Array(((folder.isEmpty ? "." : folder) + "/.\(name).dirbridge-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw PrivateFileError(path: path, operation: "create a temporary file beside", code: errno) }
        let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var failure: PrivateFileError?
        if replacing {
            if fchmod(fd, existing.st_mode & 0o7777) != 0 {
                failure = PrivateFileError(path: path, operation: "keep the mode of", code: errno)
            }
            _ = fchown(fd, uid_t.max, existing.st_gid)  // keeps the group when the owner may; else the default group
        } else if fchmod(fd, newFileMode) != 0 {
            failure = PrivateFileError(path: path, operation: "set the mode of", code: errno)
        }
        if failure == nil {
            data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                var offset = 0
                while offset < bytes.count {
                    let written = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        failure = PrivateFileError(path: path, operation: "write", code: errno)
                        return
                    }
                    offset += written
                }
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = PrivateFileError(path: path, operation: "flush", code: errno) }
        if close(fd) != 0 && failure == nil { failure = PrivateFileError(path: path, operation: "close", code: errno) }
        if failure == nil && rename(temporary, path) != 0 {
            failure = PrivateFileError(path: path, operation: "replace", code: errno)
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }
}

/// A private file could not be written; says what, where and the system's reason.
public struct PrivateFileError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    public let path: String
    public let operation: String
    public let code: Int32

    public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(code)))" }
    public var errorDescription: String? { description }
}
