import Foundation
import GRDB
@testable import DirBridgeCore

/// A temporary folder for one test's store files, removed when the test ends.
final class TemporaryStore {
    let directory: URL
    let path: String

    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("dirbridge-store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("portal.sqlite").path
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Opens the store and ensures the client `Acme Corp`.
    func openWithClient() throws -> (PortalStore, ClientRecord) {
        let store = try PortalStore(path: path)
        let client = try store.ensureClient(ClientSpec(name: "Acme Corp", membershipEndDate: "2027-12-31"))
        return (store, client)
    }

    /// A connection of its own, to inspect the file with SQL as the portal would.
    func sql() throws -> DatabaseQueue {
        try DatabaseQueue(path: path)
    }

    func count(_ table: String) throws -> Int {
        try sql().read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? -1 }
    }
}

func applyRun(clientID: Int64) -> SyncRunRecord {
    SyncRunRecord(
        clientID: clientID, mapping: "mappings/acme.yaml", directory: "ldaps://ldap.acme.example",
        mode: .apply, status: .succeeded, startedAt: Date(timeIntervalSince1970: 1_795_000_000), entriesRead: 3)
}

/// Parses `history.changes` text into field → [old, new].
func parseChanges(_ text: String) throws -> [String: [Any]] {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return object as? [String: [Any]] ?? [:]
}
