import ArgumentParser
import DirBridgeCore

import Foundation

/// The one place the CLI turns engine failures into exit statuses: usage 1, directory 3,
/// store 4, refused 5.
enum ExitStatus {
    /// Bad arguments: exit 1, as for a bad mapping.
    static let usage = ExitCode(FailureKind.usage.exitCode)

    /// The exit code for a failure: usage 1, directory 3, store 4, refused 5.
    static func `for`(_ failure: any DirBridgeFailure) -> ExitCode {
        ExitCode(failure.kind.exitCode)
    }

    /// Runs `body`; a ``DirBridgeFailure`` is printed to stderr and becomes its exit code.
    static func reporting<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let failure as any DirBridgeFailure {
            printError("dirbridge: \(failure.description)")
            throw ExitStatus.for(failure)
        }
    }

    /// Writes one line to standard error.
    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
