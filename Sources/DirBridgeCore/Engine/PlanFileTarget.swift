import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The rules for where a saved plan (`--plan-out`) or an HTML report (`--report`) may be written:
/// never over the mapping or plan being used (not even with `--overwrite`), and over an existing file
/// only when it is a dirbridge plan or report, unless `--overwrite` (not `--force`, which overrides guards and is recorded in a saved plan).
public struct PlanFileTarget: Sendable {
    public enum Kind: String, Sendable {
        case plan, report

        var option: String { self == .plan ? "--plan-out" : "--report" }
    }

    public let path: String
    public let kind: Kind

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    /// Throws a usage error when writing this target would destroy something it must not:
    /// one of `inputs` (the mapping, or the plan being applied), the other target, or a file
    /// that is not a dirbridge plan or report (unless `overwrite`).
    public func check(inputs: [String], others: [PlanFileTarget] = [], overwrite: Bool) throws(PlanError) {
        for input in inputs where Self.sameFile(path, input) {
            throw PlanError(kind: .usage, message: "\(kind.option) \(path) is the file being read (\(input)); write the \(kind) to another file")
        }
        for other in others where Self.sameFile(path, other.path) || path == other.path {
            throw PlanError(kind: .usage, message: "\(kind.option) and \(other.kind.option) name the same file \(path); give each its own file")
        }
        guard !overwrite, FileManager.default.fileExists(atPath: path) else { return }
        guard Self.isDirbridgeFile(at: path) else {
            throw PlanError(kind: .usage, message: "\(path) exists and is not a dirbridge plan or report; "
                + "choose another file for \(kind.option), or add --overwrite to replace it")
        }
    }

    /// Whether `path` holds a saved dirbridge plan (JSON whose `format` is the plan format) or a
    /// dirbridge HTML report.
    public static func isDirbridgeFile(at path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        struct Head: Decodable { let format: String }
        if let head = try? JSONDecoder().decode(Head.self, from: data), head.format == PlanDocument.formatName {
            return true
        }
        let start = String(decoding: data.prefix(4096), as: UTF8.self)
        return start.hasPrefix("<!DOCTYPE html>") && start.contains("<title>dirbridge plan for ")
    }

    /// Whether both paths name the same existing file (same device and inode, so links and
    /// `./` spellings count).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var first = stat(), second = stat()
        guard stat(a, &first) == 0, stat(b, &second) == 0 else { return false }
        return first.st_dev == second.st_dev && first.st_ino == second.st_ino
    }
}
