import Foundation
import GRDB
@testable import DirBridgeCore

/// One test's store, removed when the test ends: an SQLite file in a temporary folder, or a
/// new database on the test PostgreSQL server (``TestPostgres``).
final class TemporaryStore: PortalStoreReading {
    let directory: URL
    let kind: StoreKind
    /// The SQLite file's path or the PostgreSQL URL.
    let path: String
    var storePath: String { path }

    init(_ kind: StoreKind = .sqlite) throws {
        self.kind = kind
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("dirbridge-store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = try kind.newLocation(in: directory, label: "store")
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Opens (and on first use creates) the store.
    func open() throws -> any PortalStorage {
        try openPortalStorage(path)
    }

    /// Opens the store and ensures the client `Acme Corp`.
    func openWithClient() throws -> (any PortalStorage, ClientRecord) {
        let store = try open()
        let client = try store.ensureClient(ClientSpec(name: "Acme Corp", membershipEndDate: "2027-12-31"))
        return (store, client)
    }

    /// A connection of its own to the SQLite file, to inspect it as the portal would.
    func sql() throws -> DatabaseQueue {
        try testDatabase(path)
    }

    func count(_ table: String) throws -> Int {
        try int("SELECT COUNT(*) FROM \(table)")
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

/// Parses a JSON object of counts (`sync_runs.summary`).
func parseCounts(_ text: String) throws -> [String: Int] {
    try JSONDecoder().decode([String: Int].self, from: Data(text.utf8))
}
