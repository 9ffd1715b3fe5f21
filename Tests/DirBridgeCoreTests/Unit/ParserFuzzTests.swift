import Foundation
import Testing
@testable import DirBridgeCore

/// A small, seeded PRNG (SplitMix64): the same seed gives the same mutants on every machine,
/// so a failure names an input that can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Mutates text the way bad input arrives: bytes flipped, inserted or dropped, slices
/// duplicated or cut, lines swapped or re-indented, and the characters each grammar gives
/// meaning to (`{ } ( ) \ , + = : | - #` …) dropped in anywhere. The result is always a String
/// (invalid UTF-8 is replaced, as reading a file does).
struct Mutator {
    var random: SeededGenerator

    static let tokens = [
        "{", "}", "{{", "}}", "(", ")", "\\", "\\2c", "\\x", ",", "+", "=", ":", ";", "|", "| ", "&", "!", "*", "~=", ">=",
        "#", "\"", "'", "[", "]", "- ", "  ", "\t", "\n", "\r\n", "\n  - ", ": ", "{mail | lower}", "{sn | }", "| uuid",
        "\u{0}", "\u{FEFF}", "é", "Ø", "😀", "\u{301}", "%", "1.2.840.113556.1.4.1941", ":dn:", "#04", "&&", "---", "...",
        "*", "!!str ", "&anchor ", "*anchor", "<<: ", "? ", "%YAML 1.2\n", "0x", "-1", "999999999999999999999", "100%", "1e9",
    ]

    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    mutating func mutate(_ text: String, rounds: Int? = nil) -> String {
        var bytes = Array(text.utf8)
        let count = rounds ?? Int.random(in: 1...4, using: &random)
        for _ in 0..<count { mutateOnce(&bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private mutating func position(_ bytes: [UInt8]) -> Int { Int.random(in: 0...bytes.count, using: &random) }

    private mutating func mutateOnce(_ bytes: inout [UInt8]) {
        switch Int.random(in: 0..<9, using: &random) {
        case 0 where !bytes.isEmpty:   // replace a byte with any byte
            bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
        case 1 where !bytes.isEmpty:   // drop a run of bytes
            let start = Int.random(in: 0..<bytes.count, using: &random)
            let end = min(bytes.count, start + Int.random(in: 1...16, using: &random))
            bytes.removeSubrange(start..<end)
        case 2 where !bytes.isEmpty:   // duplicate a slice somewhere else
            let start = Int.random(in: 0..<bytes.count, using: &random)
            let end = min(bytes.count, start + Int.random(in: 1...64, using: &random))
            let slice = Array(bytes[start..<end])
            bytes.insert(contentsOf: slice, at: position(bytes))
        case 3:                        // a meaningful token anywhere
            let token = Self.tokens[Int.random(in: 0..<Self.tokens.count, using: &random)]
            bytes.insert(contentsOf: Array(token.utf8), at: position(bytes))
        case 4:                        // swap two lines
            var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            guard lines.count > 1 else { return }
            let a = Int.random(in: 0..<lines.count, using: &random), b = Int.random(in: 0..<lines.count, using: &random)
            lines.swapAt(a, b)
            bytes = Array(lines.joined(separator: [0x0A]))
        case 5:                        // re-indent or drop a line
            var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            guard !lines.isEmpty else { return }
            let index = Int.random(in: 0..<lines.count, using: &random)
            switch Int.random(in: 0..<3, using: &random) {
            case 0: lines[index].insert(contentsOf: Array(repeating: 0x20, count: Int.random(in: 1...6, using: &random)), at: 0)
            case 1: lines[index].removeFirst(min(lines[index].count, Int.random(in: 1...4, using: &random)))
            default: lines.remove(at: index)
            }
            bytes = Array(lines.joined(separator: [0x0A]))
        case 6:                        // cut the input short
            bytes.removeLast(Int.random(in: 0...bytes.count, using: &random))
        case 7:                        // a long run of one byte (deep nesting, long values)
            let byte = [UInt8(ascii: "("), UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "\\"), UInt8(ascii: "a"), UInt8(ascii: " ")]
                .randomElement(using: &random)!
            bytes.insert(contentsOf: Array(repeating: byte, count: Int.random(in: 1...300, using: &random)), at: position(bytes))
        default:                       // a random printable ASCII character
            bytes.insert(UInt8.random(in: 0x20...0x7E, using: &random), at: position(bytes))
        }
    }
}

/// Seeded mutation tests of every parser that takes outside input: whatever comes in gives a
/// value or a typed error, never a trap. A trap ends the test process, which fails the suite;
/// the mutant of a failed expectation is printed so it can be replayed.
@Suite("Parsers never crash on mutated input (seeded fuzzing)")
struct ParserFuzzTests {
    /// `DIRBRIDGE_FUZZ_SCALE=50` runs 50 times the rounds and `DIRBRIDGE_FUZZ_SEED` shifts the
    /// seeds, for a longer hunt by hand; the suite runs the fixed seeds and counts.
    static let scale = Int(ProcessInfo.processInfo.environment["DIRBRIDGE_FUZZ_SCALE"] ?? "").map { max(1, $0) } ?? 1
    static let seedShift = UInt64(ProcessInfo.processInfo.environment["DIRBRIDGE_FUZZ_SEED"] ?? "") ?? 0

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let repository = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The shipped mappings, the test mappings and the broken-mapping fixtures.
    static func mappingCorpus() throws -> [(name: String, text: String)] {
        let folders = [repository.appendingPathComponent("mappings"), fixtures.appendingPathComponent("mappings"),
                       fixtures.appendingPathComponent("broken-mappings")]
        var corpus: [(String, String)] = []
        for folder in folders {
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where name.hasSuffix(".yaml") {
                corpus.append((name, try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)))
            }
        }
        return corpus
    }

    @Test("mapping YAML: 2,000 mutants of the shipped and broken mappings load or give positioned errors")
    func mappings() throws {
        let corpus = try Self.mappingCorpus()
        #expect(corpus.count >= 30)
        var mutator = Mutator(seed: 0x6D61_7070 &+ Self.seedShift)
        var loaded = 0, rejected = 0
        let environment = ["DIRBRIDGE_BIND_PASSWORD": "x", "AD_BIND_PASSWORD": "x", "LDAP_BIND_PASSWORD": "x", "IPA_BIND_PASSWORD": "x"]
        for round in 0..<(2_000 * Self.scale) {
            let seed = corpus[round % corpus.count]
            let text = mutator.mutate(seed.text)
            do {
                _ = try MappingLoader.load(yaml: text, file: "fuzz.yaml", baseDirectory: "/nonexistent", environment: environment)
                loaded += 1
            } catch {
                rejected += 1
                // YAML breaks lines at LF, CR and CRLF: count them as it does.
                let lines = text.unicodeScalars.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r" }.count
                #expect(!error.issues.isEmpty, "mutant \(round) of \(seed.name): an error without issues\n\(text)")
                for issue in error.issues {
                    #expect(issue.line >= 0 && issue.line <= lines + 1 && issue.column >= 0,
                            "mutant \(round) of \(seed.name): \(issue) points outside the file (\(lines) lines)\n\(text.debugDescription)")
                    #expect(!issue.message.isEmpty)
                }
            }
        }
        // Both outcomes occur: the mutator neither breaks everything nor nothing.
        #expect(loaded > 0 && rejected > 0, "loaded \(loaded), rejected \(rejected)")
    }

    static let filterSeeds = [
        "(objectClass=inetOrgPerson)", "(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
        "(|(mail=*@example.com)(uid=a*b*c))", "(memberOf:1.2.840.113556.1.4.1941:=cn=Admins,ou=groups,dc=example,dc=com)",
        "(cn=Ødegaard\\2c Åse)", "(uidNumber>=1000)", "(sn~=smith)", "(cn:dn:=people)", "departmentNumber=47",
        "(&(objectClass=user)(objectCategory=person)(mail=*))", "(nsAccountLock=TRUE)", "(pwdAccountLockedTime=*)",
    ]

    @Test("LDAP filters: 5,000 mutants parse and evaluate, or fail at a character inside the filter")
    func filters() {
        var mutator = Mutator(seed: 0x6669_6C74 &+ Self.seedShift)
        let entry = EntryAttributes(dn: "uid=a,ou=people,dc=example,dc=com", strings: [
            "objectclass": ["top", "person", "inetOrgPerson"], "mail": ["a@example.com"], "cn": ["Ødegaard, Åse", "people"],
            "uidnumber": ["1000"], "sn": ["Smith"], "useraccountcontrol": ["514"], "uid": ["abc"],
        ])
        var parsed = 0
        for round in 0..<(5_000 * Self.scale) {
            let text = mutator.mutate(Self.filterSeeds[round % Self.filterSeeds.count])
            do {
                let filter = try LDAPFilter.parse(text)
                _ = filter.matches(entry)
                parsed += 1
            } catch {
                #expect(error.offset >= 0 && error.offset <= text.utf8.count + 1, "mutant \(round): \(error) for \(text.debugDescription)")
            }
            do { try LDAPFilter.checkServerSyntax(text) } catch {
                #expect(error.offset >= 0 && error.offset <= text.utf8.count + 1, "mutant \(round): \(error) for \(text.debugDescription)")
            }
        }
        #expect(parsed > 0)
    }

    static let dnSeeds = [
        "uid=u0001,ou=people,dc=example,dc=com", "CN=Ødegaard\\, Åse,OU=Staff,DC=ad,DC=example,DC=com",
        "cn=a+uid=b,dc=x", "cn=\\#hash\\2c comma,dc=x", "cn=#04024869,dc=x", "cn=  spaced   out ,dc=x", "cn=\"quoted\",dc=x",
        "", "2.5.4.3=oid,dc=x", "cn=x\\00y,dc=x",
    ]

    @Test("DNs: 5,000 mutants parse to a canonical form that is a fixed point, or give a typed error")
    func distinguishedNames() {
        var mutator = Mutator(seed: 0x646E_6E6E &+ Self.seedShift)
        var parsed = 0
        for round in 0..<(5_000 * Self.scale) {
            let text = mutator.mutate(Self.dnSeeds[round % Self.dnSeeds.count])
            guard let dn = try? DistinguishedName(text) else {
                #expect(DistinguishedName.canonical(text) == nil || DistinguishedName.isCanonical(text), "mutant \(round): \(text.debugDescription)")
                continue
            }
            parsed += 1
            // The canonical text parses again to itself.
            let again = try? DistinguishedName(dn.normalized)
            #expect(again?.normalized == dn.normalized, "mutant \(round): \(text.debugDescription) → \(dn.normalized.debugDescription)")
            // The fast path agrees with the parser: text it calls canonical is its own normal form.
            if DistinguishedName.isCanonical(text) {
                #expect(dn.normalized == text, "mutant \(round): isCanonical(\(text.debugDescription)) but normalises to \(dn.normalized.debugDescription)")
            }
        }
        #expect(parsed > 0)
    }

    static let templateSeeds = [
        "{givenName} {sn}", "{mail | lower | trim}", "{telephoneNumber | extension}", "{objectGUID | uuid}", "{{literal}} {sn}",
        "{manager | rdn}", "{mobile | e164}", "Static text", "{cn | upper}", "{department | default:Unknown}",
    ]

    @Test("templates: 5,000 mutants compile and render, or fail at a character inside the template")
    func templates() {
        var mutator = Mutator(seed: 0x7465_6D70 &+ Self.seedShift)
        let entry = EntryAttributes(dn: "cn=Åse,ou=people,dc=example,dc=com", strings: [
            "givenname": ["Åse"], "sn": ["Ødegaard"], "mail": [" A@Example.com "], "telephonenumber": ["+1 555 0100 x12"],
            "manager": ["cn=Boss\\, Big,ou=people,dc=example,dc=com"], "mobile": ["+1 (555) 010-0200"], "cn": ["Åse"],
        ])
        var compiled = 0
        for round in 0..<(5_000 * Self.scale) {
            let text = mutator.mutate(Self.templateSeeds[round % Self.templateSeeds.count])
            for bare in [true, false] {
                do {
                    let template = try FieldTemplate.compile(text, bareNameIsAttribute: bare)
                    _ = template.render(entry)
                    compiled += 1
                } catch {
                    #expect(error.offset >= 0 && error.offset <= text.count + 1, "mutant \(round): \(error) for \(text.debugDescription)")
                }
            }
        }
        #expect(compiled > 0)
    }

    @Test("saved plans: 1,500 mutants of a real plan file decode to an unedited plan, or give a typed error")
    func planFiles() throws {
        var world = try World(maxDisable: "100%")
        let folder = try makeTemporaryDirectory("plan-fuzz")
        let mappingFile = folder.appendingPathComponent("acme.yaml")
        try "client: Acme\n".write(to: mappingFile, atomically: true, encoding: .utf8)
        world.mapping.file = mappingFile.path
        world.stored(1, "a@acme.example", ga: true, title: "Boss")
        world.stored(2, "gone@acme.example")
        let plan = world.plan([world.directoryUser(1, "a@acme.example", title: "CEO", ga: true), world.directoryUser(5, "n@acme.example")])
        let outcome = SyncOutcome(plan: plan, runID: 1, applied: false, stateFingerprint: StoreFingerprint(plan: plan, state: world.state))
        let document = try PlanDocument(outcome: outcome, request: SyncRequest(mapping: world.mapping, storePath: "/tmp/acme.sqlite"))
        let original = try document.fileText()
        let path = folder.appendingPathComponent("plan.json").path
        try Data(original.utf8).write(to: URL(fileURLWithPath: path))
        #expect(try PlanDocument.read(path: path) == document)

        var mutator = Mutator(seed: 0x706C_616E &+ Self.seedShift)
        var refused = 0
        for round in 0..<(1_500 * Self.scale) {
            let text = mutator.mutate(original)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            do {
                let read = try PlanDocument.read(path: path)
                // What decodes is exactly what was hashed: an edit never slips through.
                #expect(read.sha256 == read.computedHash(), "mutant \(round)\n\(text)")
            } catch {
                if error.kind == .refused { refused += 1 }
                #expect(!error.description.isEmpty)
            }
        }
        // Some mutants still decode but changed the content: those are refused as edited.
        #expect(refused > 0)
    }
}
