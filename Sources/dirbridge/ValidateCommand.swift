import ArgumentParser
import DirBridgeCore
import Foundation

/// `dirbridge validate MAPPING...`: checks mapping files without touching the directory or the store.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check mapping files; errors name the file, line and column.",
        discussion: "Exits 0 when every file is valid, 1 otherwise. With --json, prints an array of "
            + "{file, line, column, message, hint} objects for editors and CI.")

    @Argument(help: "Mapping files to check.")
    var mappings: [String]

    @Flag(help: "Print the problems as a JSON array.")
    var json = false

    func validate() throws {
        if mappings.isEmpty { throw ValidationError("Name at least one mapping file, e.g. mappings/acme.yaml.") }
    }

    func run() throws {
        var issues: [MappingIssue] = []
        for path in mappings {
            do {
                _ = try MappingLoader.load(path: path)
                if !json { print("\(path): ok") }
            } catch {
                issues += error.issues
                if !json { FileHandle.standardError.write(Data((error.description + "\n").utf8)) }
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(issues.isEmpty ? "[]" : String(decoding: try encoder.encode(issues), as: UTF8.self))
        }
        if !issues.isEmpty { throw ExitCode(FailureKind.usage.exitCode) }
    }
}
