import ArgumentParser
import DirBridgeCore

struct DirBridgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dirbridge", version: DirBridge.version, subcommands: [ValidateCommand.self])
}
DirBridgeCommand.main()
