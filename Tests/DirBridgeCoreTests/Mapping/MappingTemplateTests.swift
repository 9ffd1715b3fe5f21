import Testing
@testable import DirBridgeCore

@Suite("Mapping templates")
struct MappingTemplateTests {
    static let person = EntryAttributes(dn: "uid=ada,ou=people,dc=example,dc=com", strings: [
        "mail": ["  Ada.Lovelace@Example.COM "],
        "givenName": ["Ada"],
        "sn": ["Lovelace"],
        "telephoneNumber": ["+1 (555) 010-0100 x1234"],
        "mobile": ["+44 20.7946.0958"],
        "ou": ["Research", "Engines", "Poetry"],
        "manager": ["cn=Charles Babbage\\, FRS,ou=people,dc=example,dc=com"],
        "cn": ["dept-sales"],
        "entryUUID": ["0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"],
    ])

    @Test("each filter renders as documented", arguments: [
        ("givenName", "Ada"),
        ("{givenName} {sn}", "Ada Lovelace"),
        ("{mail | trim}", "Ada.Lovelace@Example.COM"),
        ("{mail | lower | trim}", "ada.lovelace@example.com"),
        ("{sn | upper}", "LOVELACE"),
        ("{ou}", "Research"),
        ("{ou | first}", "Research"),
        ("{ou | last}", "Poetry"),
        (#"{ou | join(", ")}"#, "Research, Engines, Poetry"),
        (#"{ou | join("/")}"#, "Research/Engines/Poetry"),
        ("{ou | join}", "Research, Engines, Poetry"),
        (#"{title | default("Staff")}"#, "Staff"),
        (#"{sn | default("Staff")}"#, "Lovelace"),
        ("{telephoneNumber | extension}", "1234"),
        ("{mobile | extension}", ""),
        ("{telephoneNumber | e164}", "+15550100100"),
        ("{mobile | e164}", "+442079460958"),
        ("{manager | rdn}", "Charles Babbage, FRS"),
        ("{entryUUID | uuid}", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
        (#"{cn | trimprefix("DEPT-")}"#, "sales"),
        (#"{cn | replace("-", " ") | upper}"#, "DEPT SALES"),
        ("{missing}", ""),
        ("{{literal}} {sn}", "{literal} Lovelace"),
        ("Static text", "Static text"),
    ])
    func filters(template: String, expected: String) throws {
        let compiled = try FieldTemplate.compile(template, bareNameIsAttribute: true)
        #expect(compiled.render(Self.person) == expected)
    }

    @Test("a lone value through a filter gives what the list of one gives (the single-value path)")
    func singleValuePathMatchesList() {
        let filters: [TemplateFilter] = [.lower, .upper, .trim, .first, .last, .join(", "), .defaultValue("Staff"), .extension, .e164, .rdn,
                                         .uuid, .replace("-", " "), .replace("", "x"), .trimPrefix("DEPT-")]
        let values = ["", " ", "Ada", "  Ada.Lovelace@Example.COM ", "\u{00A0}Ada\u{3000}", "x\n", "\r\n", "+1 555 0100 x12",
                      "cn=Charles Babbage\\, FRS,ou=people", "dept-Sales", "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", "É\u{301}", "a\u{301} "]
        for filter in filters {
            for value in values {
                #expect(filter.apply(one: value) == (filter.apply([value]).first ?? ""), "\(filter) of \(value.debugDescription)")
            }
        }
    }

    @Test("extension finds the digits after x, ext, ext. and extension", arguments: [
        ("+1 555 0100 x1234", "1234"),
        ("+1 555 0100 ext 77", "77"),
        ("+1 555 0100 Ext. 5", "5"),
        ("555-0100 extension 901", "901"),
        ("+1 555 0100", ""),
    ])
    func phoneExtension(phone: String, expected: String) {
        #expect(TemplateFilter.phoneExtension(phone) == expected)
    }

    @Test("uuid turns a binary objectGUID into text in AD byte order")
    func objectGUID() throws {
        let bytes: [UInt8] = [0x3C, 0x2D, 0x1E, 0x0F, 0x5A, 0x4B, 0x78, 0x69, 0x87, 0x96, 0xA5, 0xB4, 0xC3, 0xD2, 0xE1, 0xF0]
        let entry = EntryAttributes(dn: "cn=x", values: ["objectguid": [bytes]])
        let template = try FieldTemplate.compile("{objectGUID | uuid}", bareNameIsAttribute: true)
        #expect(template.render(entry) == "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
        #expect(Mapping.externalID(entry, attribute: "objectguid") == "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    }

    @Test("a NUL character in a directory value is dropped, with or without filters (PostgreSQL text cannot hold one)")
    func nulCharacters() throws {
        let entry = EntryAttributes(dn: "cn=x", values: ["title": [Array("Head\u{0} of Sales".utf8), Array("Second".utf8)]])
        #expect(try FieldTemplate.compile("title", bareNameIsAttribute: true).render(entry) == "Head of Sales")
        #expect(try FieldTemplate.compile("{title | join(\", \") | lower}", bareNameIsAttribute: true).render(entry) == "head of sales, second")
    }

    @Test("a bare word is an attribute in fields but literal text in a user group name")
    func bareWords() throws {
        let field = try FieldTemplate.compile("sn", bareNameIsAttribute: true)
        let name = try FieldTemplate.compile("Sales", bareNameIsAttribute: false)
        #expect(field.render(Self.person) == "Lovelace")
        #expect(field.attributes == ["sn"])
        #expect(name.render(Self.person) == "Sales")
        #expect(name.isConstant)
    }

    @Test("templates list the lowercased attributes they read")
    func attributesRead() throws {
        let template = try FieldTemplate.compile("{givenName} {SN | upper} {givenName}", bareNameIsAttribute: true)
        #expect(template.attributes == ["givenname", "sn"])
    }

    @Test("malformed templates are rejected with the offending position", arguments: [
        ("{mail | lowercase}", "unknown template filter `lowercase`", 8),
        ("{mail", "unclosed `{`", 0),
        ("{}", "empty placeholder", 1),
        ("x } y", "unmatched `}`", 2),
        ("{mail | join(1)}", "expected a quoted argument", 13),
        ("{mail | default}", "`default` takes one argument", 8),
        ("{mail | lower | uuid}", "`uuid` reads the raw value", 16),
        ("{mail | trim(\"x\")}", "`trim` takes no argument", 8),
    ])
    func malformed(template: String, fragment: String, offset: Int) {
        #expect {
            _ = try FieldTemplate.compile(template, bareNameIsAttribute: true)
        } throws: { error in
            guard let error = error as? TemplateError else { return false }
            return error.message.contains(fragment) && error.offset == offset
        }
    }

    @Test("an unknown filter suggests the closest known one")
    func suggestion() {
        #expect(throws: TemplateError.self) { try FieldTemplate.compile("{mail | lowr}", bareNameIsAttribute: true) }
        do {
            _ = try FieldTemplate.compile("{mail | lowr}", bareNameIsAttribute: true)
        } catch {
            #expect(error.hint == "did you mean `lower`?")
        }
    }
}
