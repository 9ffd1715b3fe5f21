@testable import DirBridgeCore
import Foundation
import Testing

@Suite("The directory cache's rows kept in a temporary file")
struct CacheRowSpoolTests {
    /// The row's columns, byte for byte (Swift's String equality is canonical: NFC equals NFD).
    private func columns(_ row: CacheRow) -> [[UInt8]?] {
        [[row.kind == .user ? 1 : 0], Array(row.key.utf8), row.entry, row.externalID.map { Array($0.utf8) },
         row.dn.map { Array($0.utf8) }, row.email.map { Array($0.utf8) }]
    }

    private func row(_ kind: EntryKind, key: String, entry: [UInt8], externalID: String? = nil, dn: String? = nil,
                     email: String? = nil) -> CacheRow {
        var row = CacheRow(kind: kind, key: key, encodedEntry: entry)
        (row.externalID, row.dn, row.email) = (externalID, dn, email)
        return row
    }

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("spool-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("rows come back in order and byte for byte, across buffer flushes and batch ends")
    func roundTrip() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let spool = try #require(CacheRowSpool(directory: directory.path))
        // Unlinked at once: the directory holds nothing while the spool is open.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)

        let entry = EntryCodec.encode(EntryAttributes(dn: "uid=a,ou=people,dc=example,dc=com", values: ["mail": [Array("a@example.com".utf8)]]))
        var rows: [CacheRow] = [
            row(.group, key: "dn:cn=staff,ou=groups,dc=example,dc=com", entry: entry),
            row(.user, key: "2dfe4051-08e9-4398-91ed-be2d202f8c1e", entry: entry, externalID: "2dfe4051-08e9-4398-91ed-be2d202f8c1e",
                dn: "uid=a,ou=people,dc=example,dc=com", email: "a@example.com"),
            row(.user, key: "e1", entry: [], externalID: "E-0001", dn: nil, email: nil),
            // NFC in the key, NFD in the DN and email: each keeps its own bytes.
            row(.user, key: "\u{00C5}se", entry: [0, 0xFF, 0x80], externalID: nil, dn: "cn=A\u{030A}se", email: "a\u{030A}se@example.com"),
            row(.user, key: "", entry: entry, externalID: "", dn: "", email: ""),
            // Larger than the 1 MB buffer on its own.
            row(.user, key: "big", entry: Array(repeating: 0x41, count: 1_500_000), externalID: "big", dn: "uid=big", email: "big@example.com"),
        ]
        for index in 0..<20_000 {
            rows.append(row(.user, key: "key-\(index)", entry: Array(entry.prefix(index % 200)), externalID: index % 3 == 0 ? "key-\(index)" : "id-\(index)",
                            dn: "uid=u\(index),ou=people,dc=example,dc=com", email: index % 7 == 0 ? nil : "u\(index)@example.com"))
        }
        for row in rows { spool.append(row) }
        #expect(spool.count == rows.count)

        var back: [CacheRow] = []
        var sizes: [Int] = []
        try spool.forEachBatch(1_000) { batch in
            sizes.append(batch.count)
            back += batch
        }
        #expect(back.count == rows.count)
        #expect(back.map(columns) == rows.map(columns))
        #expect(sizes.dropLast().allSatisfy { $0 == 1_000 } && sizes.last == rows.count % 1_000)
        // Read again: the same rows (the apply may be retried on the same update).
        var again = 0
        try spool.forEachBatch(7) { again += $0.count }
        #expect(again == rows.count)
    }

    @Test("a batch keeps the last row of each kind and key, in order; keys compare byte for byte")
    func lastOfEachKey() {
        let rows = [row(.user, key: "a", entry: [1]), row(.group, key: "a", entry: [2]), row(.user, key: "b", entry: [3]),
                    row(.user, key: "a", entry: [4]), row(.user, key: "\u{00C5}", entry: [5]), row(.user, key: "A\u{030A}", entry: [6])]
        let kept = CacheRow.lastOfEachKey(rows[...])
        #expect(kept.map(\.entry) == [[2], [3], [4], [5], [6]])
        let unique = Array(rows.prefix(3))[1...]
        #expect(CacheRow.lastOfEachKey(unique).map(\.entry) == [[2], [3]])
    }

    @Test("no spool where no file can be made: the collector keeps the rows in memory; a dry run keeps none")
    func noSpool() throws {
        #expect(CacheRowSpool(directory: "/nonexistent/dirbridge-spool-test") == nil)
        let mapping = try MappingLoader.load(
            yaml: "client: A\ndirectory: {url: \"ldap://x\"}\nusers:\n  base: ou=people,dc=example,dc=com\n  id: uid\n  fields: {email: mail}\n",
            file: "m.yaml", baseDirectory: "/tmp")
        let entry = EntryAttributes(dn: "uid=a,ou=people,dc=example,dc=com", values: [
            "entryuuid": [Array("2dfe4051-08e9-4398-91ed-be2d202f8c1e".utf8)], "uid": [Array("a".utf8)], "mail": [Array("a@example.com".utf8)],
        ])
        let inMemory = DirectoryCacheCollector(mapping: mapping, spool: nil)
        inMemory.keep(user: entry, email: "a@example.com")
        try inMemory.finish()
        #expect(inMemory.upserts.count == 1 && inMemory.upserts.first?.key == "2dfe4051-08e9-4398-91ed-be2d202f8c1e")

        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let spooled = DirectoryCacheCollector(mapping: mapping, spool: CacheRowSpool(directory: directory.path))
        spooled.keep(user: entry, email: "a@example.com")
        try spooled.finish()
        #expect(spooled.upserts.isEmpty)
        var back: [CacheRow] = []
        try #require(spooled.spool).forEachBatch(10) { back += $0 }
        #expect(back.map(columns) == inMemory.upserts.map(columns))

        // A dry run's collector keeps no entry and makes no file, but still finds the high-water mark.
        let dryRun = DirectoryCacheCollector(mapping: mapping, keepsEntries: false, spool: CacheRowSpool(directory: directory.path))
        var stamped = entry
        stamped.values["modifytimestamp"] = [Array("20261206040000Z".utf8)]
        dryRun.keep(user: stamped, email: "a@example.com")
        try dryRun.finish()
        #expect(dryRun.spool == nil && dryRun.upserts.isEmpty)
        #expect(dryRun.newestUser == "20261206040000Z" && dryRun.everyEntryHasUUID)
    }

    @Test("a row cut short is not read")
    func truncated() {
        var bytes: [UInt8] = [1]
        for text in ["key", "entry", "dn:x"] { bytes.append(UInt8(text.utf8.count)); bytes += Array(text.utf8) }
        bytes[0] |= 8  // a DN follows: the key, the entry, the DN
        var position = 0
        let whole = CacheRowSpool.decode(bytes, at: &position)
        #expect(whole?.dn == "dn:x" && position == bytes.count)
        for cut in 0..<bytes.count {
            var at = 0
            #expect(CacheRowSpool.decode(Array(bytes.prefix(cut)), at: &at) == nil)
            #expect(at == 0)
        }
    }
}
