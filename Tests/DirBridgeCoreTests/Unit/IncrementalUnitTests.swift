@testable import DirBridgeCore
import Foundation
import Testing

@Suite("Incremental sync, pure parts")
struct IncrementalUnitTests {
    @Test("the cache codec round-trips binary values, empty values and non-ASCII text")
    func codecRoundTrip() throws {
        let entry = EntryAttributes(dn: "cn=Ødegaard\\, Åse,ou=people,dc=example,dc=com", values: [
            "objectguid": [[0x00, 0xFF, 0x80, 0x7F, 0x10, 0x20]],
            "mail": [Array("åse@example.com".utf8)],
            "description": [[], Array(String(repeating: "x", count: 300).utf8)],
        ])
        let encoded = EntryCodec.encode(entry)
        #expect(EntryCodec.decode(Data(encoded)) == entry)
        #expect(EntryCodec.decode(Data(encoded.dropLast())) == nil)
        #expect(EntryCodec.decode(Data(encoded + [0])) == nil)
    }

    @Test("the cache codec writes the DN, the count and the attributes in name order, whatever order they were read in")
    func codecBytesInNameOrder() throws {
        // As the server sent them: not in name order, names in mixed case.
        var builder = EntryAttributes.Builder()
        for (name, values) in [("sn", ["Ng"]), ("Mail", ["ann@example.com"]), ("CN", ["Ann Ng", "Ann"])] {
            #expect(Self.append(name, values.map { Array($0.utf8) }, to: &builder))
        }
        let read = EntryAttributes(dn: "uid=ann", storage: builder.bytes)
        #expect(read.values == ["sn": [Array("Ng".utf8)], "mail": [Array("ann@example.com".utf8)], "cn": [Array("Ann Ng".utf8), Array("Ann".utf8)]])
        func chunk(_ text: String) -> [UInt8] { [UInt8(text.utf8.count)] + Array(text.utf8) }
        let expected = chunk("uid=ann") + [3]
            + chunk("cn") + [2] + chunk("Ann Ng") + chunk("Ann")
            + chunk("mail") + [1] + chunk("ann@example.com")
            + chunk("sn") + [1] + chunk("Ng")
        #expect(EntryCodec.encode(read) == expected)
        // The same entry built from a dictionary: equal, and the same bytes.
        let built = EntryAttributes(dn: "uid=ann", strings: ["SN": ["Ng"], "mail": ["ann@example.com"], "cn": ["Ann Ng", "Ann"]])
        #expect(built == read)
        #expect(EntryCodec.encode(built) == expected)
        #expect(EntryCodec.decode(Data(expected)) == read)
    }

    @Test("an entry's values read in place: present, empty and absent attributes, a name repeated in another case, values replaced")
    func entryValuesInPlace() throws {
        var builder = EntryAttributes.Builder()
        func append(_ name: String, _ values: [[UInt8]]) -> Bool { Self.append(name, values, to: &builder) }
        #expect(append("member", [Array("uid=a".utf8), [], Array("uid=b".utf8)]))
        #expect(append("objectGUID", [[0x00, 0xFF, 0x10]]))
        #expect(append("description", []))
        // The same name in other letters is refused, and nothing of it is written.
        let before = builder.bytes
        #expect(!append("MEMBER", [Array("uid=c".utf8)]))
        #expect(builder.bytes == before)
        var entry = EntryAttributes(dn: "cn=staff", storage: builder.bytes)
        #expect(entry.attributeCount == 3)
        let members = try #require(entry["member"])
        #expect(members.count == 3 && !members.isEmpty)
        #expect(members.map { Array($0) } == [Array("uid=a".utf8), [], Array("uid=b".utf8)])
        #expect(members.first.map { Array($0) } == Array("uid=a".utf8))
        #expect(entry["objectguid"].map { $0.map { Array($0) } } == [[0x00, 0xFF, 0x10]])
        #expect(entry["description"]?.isEmpty == true && entry["description"]?.first == nil)
        #expect(entry["mail"] == nil && entry["objectGUID"] == nil)
        #expect(entry.first("objectGUID") != nil && entry.strings("Member") == ["uid=a", "", "uid=b"] && entry.bytes("mail").isEmpty)
        #expect(entry.containsName { $0.elementsEqual("objectguid".utf8) } && !entry.containsName { $0.contains(UInt8(ascii: ";")) })
        // Replacing an attribute's values, and adding one.
        entry.set("member", to: [Array("uid=c".utf8)])
        entry.set("cn", to: [Array("Staff".utf8)])
        #expect(entry.values == ["member": [Array("uid=c".utf8)], "objectguid": [[0x00, 0xFF, 0x10]], "description": [], "cn": [Array("Staff".utf8)]])
        entry.values["description"] = nil
        #expect(entry.attributeCount == 3 && entry["description"] == nil && entry.first("cn") == "Staff")
    }

    @Test("entries with long and many values, names that prefix others, a 16-byte GUID after other values: read, encoded in name order and decoded alike")
    func entryLongValuesAndNameOrder() throws {
        let members = (0..<300).map { Array("uid=user\($0),ou=people,dc=example,dc=com".utf8) }
        let long = Array(repeating: UInt8(ascii: "x"), count: 20_000)
        let guid: [UInt8] = [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
        var builder = EntryAttributes.Builder()
        // Server order: not name order; "member" before "member;range=0-299", "cnx" after "cn".
        for (name, values) in [("member;range=0-299", members), ("description", [long, []]), ("cnx", [Array("x".utf8)]),
                               ("member", [members[0]]), ("cn", [Array("Staff".utf8)]), ("objectGUID", [guid])] {
            #expect(Self.append(name, values, to: &builder))
        }
        let entry = EntryAttributes(dn: "cn=staff", storage: builder.bytes)
        #expect(entry["member;range=0-299"].map { $0.map { Array($0) } } == members)
        #expect(entry["member;range=0-299"]?.count == 300 && entry["description"]?.first?.count == 20_000)
        #expect(entry["description"].map { $0.map { Array($0) } } == [long, []])
        // The GUID sits after thousands of bytes of other values: read from its own start.
        #expect(Mapping.externalID(entry, attribute: "objectguid") == "76543210-ba98-fedc-0123-456789abcdef")
        #expect(TemplateFilter.uuidText(try #require(entry["objectguid"]?.first)) == "76543210-ba98-fedc-0123-456789abcdef")
        let encoded = EntryCodec.encode(entry)
        // The names in the cache's bytes, in the order the dictionary of earlier builds sorted its keys.
        var names: [String] = []
        encoded.withUnsafeBufferPointer { bytes in
            var position = 0
            _ = LEB128.chunk(bytes, at: &position)
            let count = LEB128.read(bytes, at: &position) ?? 0
            for _ in 0..<count {
                names.append(String(decoding: LEB128.chunk(bytes, at: &position)!, as: UTF8.self))
                for _ in 0..<(LEB128.read(bytes, at: &position) ?? 0) { _ = LEB128.chunk(bytes, at: &position) }
            }
            #expect(position == bytes.count)
        }
        #expect(names == entry.values.keys.sorted())
        #expect(names == ["cn", "cnx", "description", "member", "member;range=0-299", "objectguid"])
        let decoded = try #require(EntryCodec.decode(Data(encoded)))
        #expect(decoded == entry && decoded.values == entry.values)
        #expect(EntryCodec.encode(EntryAttributes(dn: "cn=staff", values: entry.values)) == encoded)
    }

    @Test("entries that differ compare unequal: a changed value, an empty attribute against an absent one, one attribute more; order alone does not count")
    func entryEquality() {
        let base = EntryAttributes(dn: "uid=a", strings: ["cn": ["A"], "mail": ["a@example.com"], "sn": ["Ng"]])
        var reordered = EntryAttributes.Builder()
        for (name, value) in [("sn", "Ng"), ("mail", "a@example.com"), ("cn", "A")] { #expect(Self.append(name, [Array(value.utf8)], to: &reordered)) }
        #expect(EntryAttributes(dn: "uid=a", storage: reordered.bytes) == base)
        var changed = EntryAttributes.Builder()
        for (name, value) in [("sn", "Ng"), ("mail", "b@example.com"), ("cn", "A")] { #expect(Self.append(name, [Array(value.utf8)], to: &changed)) }
        #expect(EntryAttributes(dn: "uid=a", storage: changed.bytes) != base)
        var withEmpty = base
        withEmpty.set("title", to: [])
        #expect(withEmpty != base && base != withEmpty)
        var fewer = base
        fewer.values["sn"] = nil
        #expect(fewer != base && base != fewer)
        var twoValues = base
        twoValues.append("cn", values: [Array("B".utf8)])
        #expect(twoValues.strings("cn") == ["A", "B"] && twoValues != base)
        #expect(EntryAttributes(dn: "uid=b", strings: ["cn": ["A"], "mail": ["a@example.com"], "sn": ["Ng"]]) != base)
    }

    @Test("the cache codec refuses a wrong attribute count, and takes a repeated name's last values as earlier builds did")
    func codecRefusesAndRepeats() throws {
        func chunk(_ text: String) -> [UInt8] { [UInt8(text.utf8.count)] + Array(text.utf8) }
        let one = chunk("uid=a") + [1] + chunk("cn") + [1] + chunk("A")
        #expect(EntryCodec.decode(Data(one))?.values == ["cn": [Array("A".utf8)]])
        #expect(EntryCodec.decode(Data(chunk("uid=a") + [2] + chunk("cn") + [1] + chunk("A"))) == nil)
        #expect(EntryCodec.decode(Data(chunk("uid=a") + [0] + chunk("cn") + [1] + chunk("A"))) == nil)
        let repeated = chunk("uid=a") + [2] + chunk("cn") + [1] + chunk("A") + chunk("cn") + [1] + chunk("B")
        let decoded = try #require(EntryCodec.decode(Data(repeated)))
        #expect(decoded.values == ["cn": [Array("B".utf8)]] && decoded.strings("cn") == ["B"] && decoded.attributeCount == 1)
    }

    @Test("an attribute's values are read within its byte length: a count larger than its values stops there, not in the next attribute")
    func valuesStayWithinTheirAttribute() {
        // "a" says two values but its byte length (2) holds one, "b"; then "c" with its one value "z".
        let storage: [UInt8] = [1, UInt8(ascii: "a"), 2, 2, 1, UInt8(ascii: "b"), 1, UInt8(ascii: "c"), 1, 2, 1, UInt8(ascii: "z")]
        let entry = EntryAttributes(dn: "uid=a", storage: storage)
        #expect(entry["a"].map { $0.map { Array($0) } } == [Array("b".utf8)])
        #expect(entry["c"].map { $0.map { Array($0) } } == [Array("z".utf8)])
    }

    /// Appends as the directory reader does: name and values from buffers that live through the call.
    static func append(_ name: String, _ values: [[UInt8]], to builder: inout EntryAttributes.Builder) -> Bool {
        let joined = values.flatMap { $0 }
        let starts = values.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        return Array(name.utf8).withUnsafeBytes { raw in
            joined.withUnsafeBytes { all in
                builder.append(lowercasing: raw, count: values.count) { index in
                    UnsafeRawBufferPointer(rebasing: all[starts[index]..<starts[index + 1]])
                }
            }
        }
    }

    @Test("BER: a sync request control, and the state and done controls slapd sends")
    func berControls() throws {
        let request = BER.sequence(BER.enumerated(1) + BER.octetString(Array("rid=000,csn=x".utf8)))
        #expect(request == [0x30, 0x12, 0x0A, 0x01, 0x01, 0x04, 0x0D] + Array("rid=000,csn=x".utf8))
        // The syncDone control value slapd sent for "nothing changed": SEQUENCE { BOOLEAN TRUE }.
        var done = BER.Reader([0x30, 0x03, 0x01, 0x01, 0xFF])
        var inner = try done.read(tag: 0x30).reader()
        let next = inner.next()
        let flag = try #require(next)
        #expect(flag.tag == 0x01 && flag.bool)
        // A long-form length.
        let long = BER.octetString(Array(repeating: 0x41, count: 300))
        #expect(Array(long.prefix(4)) == [0x04, 0x82, 0x01, 0x2C])
        var reader = BER.Reader(long)
        let element = reader.next()
        #expect(element?.bytes.count == 300)
        // Truncated input stops instead of reading past the end.
        var truncated = BER.Reader([0x04, 0x05, 0x41])
        let cut = truncated.next()
        #expect(cut == nil)
    }

    @Test("syncUUIDs render like entryUUID")
    func uuidText() {
        let bytes: [UInt8] = [0x73, 0x09, 0xa2, 0xd2, 0x7b, 0xbf, 0x10, 0x41, 0x9e, 0xa8, 0x63, 0xe4, 0x8d, 0xc2, 0xbe, 0xc7]
        #expect(UUIDText.format(bytes) == "7309a2d2-7bbf-1041-9ea8-63e48dc2bec7")
    }

    @Test("389 DS: nsUniqueId in the UUID layout its content sync sends, and the cache key it gives with sync_key nsuniqueid")
    func nsUniqueIDAsSyncUUID() throws {
        // The syncUUID bytes 389 DS sent for an entry whose nsUniqueId is f7932f3f-f08911f1-99afa832-3678b1de.
        let bytes: [UInt8] = [0xF7, 0x93, 0x2F, 0x3F, 0xF0, 0x89, 0x11, 0xF1, 0x99, 0xAF, 0xA8, 0x32, 0x36, 0x78, 0xB1, 0xDE]
        #expect(UUIDText.fromNSUniqueID("F7932F3F-F08911F1-99AFA832-3678B1DE") == UUIDText.format(bytes))
        #expect(UUIDText.fromNSUniqueID("f7932f3f-f08911f1-99afa832") == nil)
        #expect(UUIDText.fromNSUniqueID("not-a-unique-id") == nil)
        let entry = EntryAttributes(dn: "uid=a,ou=people,dc=example,dc=com", strings: [
            "nsUniqueId": ["f7932f3f-f08911f1-99afa832-3678b1de"], "entryUUID": ["2dfe4051-08e9-4398-91ed-be2d202f8c1e"], "uid": ["a"],
        ])
        let mapping = try MappingLoader.load(
            yaml: "client: A\ndirectory: {url: \"ldap://x\"}\nusers:\n  base: ou=people,dc=example,dc=com\n  id: uid\n  fields: {email: mail}\n",
            file: "m.yaml", baseDirectory: "/tmp")
        #expect(DirectoryCacheCollector.key(of: entry, kind: .user, mapping: mapping) == "2dfe4051-08e9-4398-91ed-be2d202f8c1e")
        #expect(DirectoryCacheCollector.key(of: entry, kind: .user, mapping: mapping, syncKey: "nsuniqueid") == UUIDText.format(bytes))
    }

    @Test("generalized time both ways, in UTC")
    func generalizedTime() throws {
        let date = try #require(GeneralizedTime.date("20261123154501Z"))
        #expect(GeneralizedTime.text(date) == "20261123154501Z")
        #expect(GeneralizedTime.text(date.addingTimeInterval(-300)) == "20261123154001Z")
        #expect(GeneralizedTime.date("2026112315Z") == nil)
    }
}
