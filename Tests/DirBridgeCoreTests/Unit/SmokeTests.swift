import Testing
@testable import DirBridgeCore
@Test("the version is set") func versionIsSet() { #expect(!DirBridge.version.isEmpty) }
