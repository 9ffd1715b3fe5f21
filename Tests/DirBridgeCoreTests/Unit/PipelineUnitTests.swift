import Foundation
import GRDB
import Testing
@testable import DirBridgeCore

/// The pieces that spread a sync over two cores, without a server: their order and results
/// must be those of the plain loop they replace.
@Suite("Pipeline helpers")
struct PipelineUnitTests {
    @Test("concurrentMap gives map's result, in order, for short and long arrays and uneven chunks")
    func concurrentMapKeepsOrder() {
        for count in [0, 1, 99, 100, 201, 10_007] {
            let items = Array(0..<count)
            #expect(items.concurrentMap(minimumChunk: 100) { $0 * 3 + 1 } == items.map { $0 * 3 + 1 })
        }
    }

    @Test("PageMapper maps pages in the order they are submitted, and finish waits for the last")
    func pageMapperKeepsOrder() {
        let mapper = PageMapper([String]()) { seen, page in
            for entry in page { seen.append(entry.dn) }
        }
        var expected: [String] = []
        for page in 0..<50 {
            let entries = (0..<20).map { EntryAttributes(dn: "uid=u\(page)-\($0)", values: [:]) }
            expected += entries.map(\.dn)
            mapper.submit(entries)
        }
        #expect(mapper.finish() == expected)
    }

    @Test("each portal field's slot is its position in allCases")
    func fieldSlots() {
        for (offset, field) in PortalField.allCases.enumerated() {
            #expect(field.slot == offset, "\(field)")
        }
    }

    @Test("a user read by position equals the same row read by name")
    func orderedRowMatchesNamedRow() throws {
        let temp = try TemporaryStore()
        let (store, client) = try temp.openWithClient()
        _ = try store.apply(
            ChangeSet(clientID: client.id, userCreations: [
                NewClientUser(email: "a@acme.example", fields: [.firstName: "Ann", .lastName: "Lee", .title: "CTO", .cellPhone: "1",
                                                                .officePhone: "2", .extension: "3", .location: "Oslo"],
                              role: "Admin", globalAdmin: true, hasLogin: true, externalID: "ext-a", externalDN: "uid=a,dc=x"),
                NewClientUser(email: "b@acme.example", enabled: false, source: .portal),
            ]),
            run: applyRun(clientID: client.id))
        let byName = try temp.sql().read { db in try StoredUser.fetchAll(db, sql: "SELECT * FROM client_users ORDER BY id") }
        let byPosition = try store.loadState(clientID: client.id).users
        #expect(byPosition.count == 2)
        #expect(byPosition == byName)
    }
}
