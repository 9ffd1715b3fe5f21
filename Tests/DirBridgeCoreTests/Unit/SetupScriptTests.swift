import Foundation
import Testing

@Suite("scripts/setup")
struct SetupScriptTests {
    @Test("installs sqlite3, which scripts/demo runs")
    func installsSQLite3() throws {
        let setup = try String(contentsOf: repositoryRoot.appendingPathComponent("scripts/setup"), encoding: .utf8)
        let packages = try #require(setup.split(separator: "\n").first { $0.hasPrefix("pkgs=(") })
            .dropFirst("pkgs=(".count).dropLast().split(separator: " ").map(String.init)
        #expect(packages.contains("sqlite3"))
        let demo = try String(contentsOf: repositoryRoot.appendingPathComponent("scripts/demo"), encoding: .utf8)
        #expect(demo.contains("sqlite3 "))
    }
}
