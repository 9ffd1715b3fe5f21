import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bind password held in memory only as long as a bind needs it.
///
/// Its `description` is redacted, so interpolating it into a log line, an error or a plan
/// never reveals it.
public struct BindPassword: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }

    /// Reads the password from where `source` says.
    ///
    /// A file must be readable by its owner only: a file readable by group or others is
    /// refused. One trailing newline (as `echo` writes) is removed.
    public static func read(
        from source: PasswordSource,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(DirectoryError) -> BindPassword {
        switch source {
        case .environment(let name):
            guard let value = environment[name], !value.isEmpty else {
                throw DirectoryError(
                    .credentials, operation: "read the bind password from $\(name)",
                    hint: "export \(name) before running dirbridge (the variable is unset or empty)")
            }
            return BindPassword(Array(value.utf8))
        case .file(let path):
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw DirectoryError(
                    .credentials, operation: "read the bind password file \(path)",
                    diagnostic: String(cString: strerror(errno)),
                    hint: "create the file with the password on one line and chmod 600 it")
            }
            if info.st_mode & 0o077 != 0 {
                let mode = String(info.st_mode & 0o777, radix: 8)
                throw DirectoryError(
                    .credentials, operation: "read the bind password file \(path)",
                    diagnostic: "mode \(mode) lets group or others read it",
                    hint: "chmod 600 \(path) (dirbridge refuses a password file others can read)")
            }
            guard let file = fopen(path, "rb") else {
                throw DirectoryError(
                    .credentials, operation: "read the bind password file \(path)",
                    diagnostic: String(cString: strerror(errno)),
                    hint: "make the file readable by the user running dirbridge")
            }
            defer { fclose(file) }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = fread(&buffer, 1, buffer.count, file)
                if count <= 0 { break }
                bytes.append(contentsOf: buffer[0..<count])
            }
            if bytes.last == 0x0A { bytes.removeLast() }
            if bytes.last == 0x0D { bytes.removeLast() }
            guard !bytes.isEmpty else {
                throw DirectoryError(
                    .credentials, operation: "read the bind password file \(path)",
                    diagnostic: "the file is empty", hint: "put the bind password in \(path)")
            }
            return BindPassword(bytes)
        }
    }
}
