import Foundation

/// What went wrong reading a file the user named, in their words: `no such file: PATH`.
enum FileReading {
    static func problem(_ path: String, _ error: any Error) -> String {
        var info = stat()
        if stat(path, &info) != 0 {
            return errno == ENOENT ? "no such file: \(path)" : "cannot read \(path): \(String(cString: strerror(errno)))"
        }
        if info.st_mode & S_IFMT == S_IFDIR { return "\(path) is a folder, not a file" }
        if access(path, R_OK) != 0 { return "cannot read \(path): permission denied" }
        return "cannot read \(path): it is not UTF-8 text"
    }
}
