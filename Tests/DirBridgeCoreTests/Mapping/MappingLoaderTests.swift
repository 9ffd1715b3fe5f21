import Foundation
import Testing
@testable import DirBridgeCore

@Suite("Mapping loader")
struct MappingLoaderTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var brokenMappings: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("broken-mappings")
    }

    static func load(_ yaml: String, environment: [String: String] = [:]) throws(MappingErrors) -> Mapping {
        try MappingLoader.load(yaml: yaml, file: "test.yaml", baseDirectory: "/srv/mappings", environment: environment)
    }

    static let minimal = """
        client: Acme
        directory:
          url: ldap://ldap.acme.example
        users:
          base: ou=people,dc=acme,dc=example
          id: entryUUID
          fields:
            email: mail
        """

    @Test("every shipped example mapping is valid", arguments: ["openldap", "active-directory", "freeipa", "389ds", "demo"])
    func shippedExamples(name: String) throws {
        let path = Self.repository.appendingPathComponent("mappings/\(name).yaml").path
        let mapping = try MappingLoader.load(path: path, environment: [:])
        #expect(mapping.users.fields[.email] != nil)
        #expect(!mapping.rules.isEmpty)
        #expect(mapping.storePath?.hasPrefix(Self.repository.appendingPathComponent("mappings").path) == true)
    }

    @Test("the demo mapping reads as the demo company expects")
    func demo() throws {
        let path = Self.repository.appendingPathComponent("mappings/demo.yaml").path
        let mapping = try MappingLoader.load(path: path, environment: [:])
        #expect(mapping.client.name == "Example Corp")
        #expect(mapping.storePath == Self.repository.appendingPathComponent("mappings/demo.sqlite").path)
        #expect(mapping.directory.urls == ["ldap://127.0.0.1:3890"])
        #expect(mapping.directory.bindDN == "cn=sync,ou=services,dc=example,dc=com")
        #expect(mapping.directory.password == .environment("DIRBRIDGE_BIND_PASSWORD"))
        #expect(mapping.users.base == "ou=people,dc=example,dc=com")
        #expect(mapping.users.login == .invite)
        #expect(mapping.users.adoptExisting == .email)
        #expect(mapping.groups?.members == ["member"])
        #expect(mapping.rules.map(\.index) == [1, 2, 3, 4])
        #expect(mapping.rules[0].selector == .group(dn: "cn=portal-admins,ou=groups,dc=example,dc=com"))
        #expect(mapping.deprovision.protected == ["it-breakglass@example.com"])
        let sales = GroupMembership(groupDN: "cn=dept-sales,ou=groups,dc=example,dc=com", cn: "dept-sales")
        let user = EntryAttributes(dn: "uid=u,ou=people,dc=example,dc=com", strings: ["mail": ["u@example.com"]])
        #expect(mapping.evaluateRules(for: user, memberships: [sales]).userGroup == "sales")
        #expect(Set(mapping.attributesToRead) == Set([
            "entryuuid", "mail", "givenname", "sn", "title", "telephonenumber", "mobile", "l",
            "pwdaccountlockedtime", "departmentnumber",
        ]))
    }

    @Test("DIRBRIDGE_URL replaces the directory URLs")
    func urlOverride() throws {
        let mapping = try Self.load(Self.minimal, environment: ["DIRBRIDGE_URL": "ldap://127.0.0.1:3891 ldaps://b"])
        #expect(mapping.directory.urls == ["ldap://127.0.0.1:3891", "ldaps://b"])
        #expect(throws: MappingErrors.self) { try Self.load(Self.minimal, environment: ["DIRBRIDGE_URL": "http://x"]) }
    }

    @Test("omitted keys take the documented defaults")
    func defaults() throws {
        let mapping = try Self.load(Self.minimal + "\ngroups: { base: \"ou=groups,dc=acme,dc=example\" }")
        #expect(mapping.editor == "dirbridge")
        #expect(mapping.storePath == nil)
        #expect(mapping.directory == DirectoryConfiguration(urls: ["ldap://ldap.acme.example"]))
        #expect(mapping.directory.pageSize == 500)
        #expect(mapping.directory.timeout == 30)
        #expect(mapping.users.scope == .sub)
        #expect(mapping.users.filter == "(objectClass=person)")
        #expect(mapping.users.login == .none)
        #expect(mapping.users.adoptExisting == .none)
        #expect(mapping.users.disabled == nil)
        #expect(mapping.groups == GroupsSection(
            base: "ou=groups,dc=acme,dc=example", scope: .sub, filter: GroupsSection.defaultFilter,
            members: ["member"], nested: true, maxDepth: nil))
        #expect(mapping.deprovision == DeprovisionSettings(missing: .disable, maxDisable: .percent(5), maxDemote: 3, protected: []))
        #expect(mapping.rules.isEmpty)
    }

    @Test("durations accept seconds, ms, s, m and h", arguments: [
        ("30s", 30.0), ("2m", 120.0), ("500ms", 0.5), ("1h", 3600.0), ("45", 45.0), ("1.5", 1.5),
    ])
    func durations(text: String, seconds: Double) throws {
        let mapping = try Self.load(Self.minimal.replacingOccurrences(
            of: "  url: ldap://ldap.acme.example", with: "  url: ldap://ldap.acme.example\n  timeout: \(text)"))
        #expect(mapping.directory.timeout == seconds)
    }

    @Test("max_disable is a count or a share", arguments: [
        ("10", Threshold.count(10), 10), ("5%", .percent(5), 50), ("2.5%", .percent(2.5), 25), ("0", .count(0), 0),
        ("100%", .percent(100), 1000),
    ])
    func thresholds(text: String, expected: Threshold, limit: Int) throws {
        let mapping = try Self.load(Self.minimal + "\ndeprovision: { max_disable: \"\(text)\" }")
        #expect(mapping.deprovision.maxDisable == expected)
        #expect(mapping.deprovision.maxDisable.limit(of: 1000) == limit)
    }

    @Test("relative paths resolve against the mapping file's folder")
    func relativePaths() throws {
        let mapping = try Self.load(Self.minimal.replacingOccurrences(
            of: "  url: ldap://ldap.acme.example",
            with: "  url: ldap://a\n  ca_file: ../ca/acme.pem\n  bind_dn: cn=x,dc=y\n  bind_password_file: secret")
            + "\nstore: { sqlite: data/portal.sqlite }")
        #expect(mapping.storePath == "/srv/mappings/data/portal.sqlite")
        #expect(mapping.directory.caFile == "/srv/ca/acme.pem")
        #expect(mapping.directory.password == .file("/srv/mappings/secret"))
    }

    @Test("store: postgres with a password source; a password in the URL, both stores, or a password key on SQLite are errors")
    func postgresStoreKeys() throws {
        let mapping = try Self.load(Self.minimal + "\nstore:\n  postgres: postgresql://dirbridge@db.acme.example:5432/portal?sslmode=verify-full\n  password_file: db.password")
        #expect(mapping.storePath == "postgresql://dirbridge@db.acme.example:5432/portal?sslmode=verify-full")
        #expect(mapping.storePassword == StorePasswordSource(file: "/srv/mappings/db.password"))
        let withEnv = try Self.load(Self.minimal + "\nstore: { postgres: \"postgresql://dirbridge@db/portal\", password_env: DB_PASSWORD }")
        #expect(withEnv.storePassword == StorePasswordSource(environmentVariable: "DB_PASSWORD"))
        let cases = [
            ("store: { postgres: \"postgresql://dirbridge:hunter2@db/portal\" }", "must not hold the password"),
            ("store: { sqlite: portal.sqlite, postgres: \"postgresql://db/portal\" }", "sqlite or postgres, not both"),
            ("store: { sqlite: portal.sqlite, password_env: X }", "an SQLite file has no password"),
            ("store: { postgres: \"mysql://db/portal\" }", "takes a URL: postgresql://"),
            ("store: { postgres: \"postgresql://db/portal\", password_env: A, password_file: b }", "password_env or password_file, not both"),
        ]
        for (yaml, fragment) in cases {
            let errors = #expect(throws: MappingErrors.self) { try Self.load(Self.minimal + "\n" + yaml) }
            #expect(errors?.issues.contains { $0.message.contains(fragment) } == true, "\(yaml): \(errors?.issues.map(\.message) ?? [])")
            #expect(errors?.description.contains("hunter2") != true)
        }
    }

    /// Each broken mapping in `Fixtures/broken-mappings`, with where and what its error is.
    static let broken: [(file: String, line: Int, column: Int, fragment: String)] = [
        ("bad-indentation", 11, 9, "YAML syntax error: mapping values are not allowed"),
        ("unknown-key", 10, 3, "unknown key `bsae` in `users` (did you mean `base`?)"),
        ("wrong-type", 7, 14, "`page_size` must be a whole number, found a list"),
        ("literal-password", 6, 3, "the bind password must not be written in the mapping file (use `bind_password_env"),
        ("global-admin-custom-group", 23, 5, "Global Admin is only allowed in the Default User Group, but the rule names `Admins`"),
        ("group-manager-default-group", 26, 5, "a Group Manager manages a custom user group, and the rule names the Default User Group"),
        ("group-manager-without-group", 26, 5, "a Group Manager manages a custom user group, and the rule names none"),
        ("empty-template", 25, 17, "`user_group` `{description}` can be empty"),
        ("bad-filter", 17, 46, "`users.disabled` is not a valid LDAP filter: unescaped `(`"),
        ("bad-rule-filter", 24, 34, "`filter` is not a valid LDAP filter: missing `)`"),
        ("bad-dn-in-group", 22, 29, "`group` is not a valid DN: empty RDN"),
        ("negative-threshold", 28, 16, "`max_disable` must not be negative"),
        ("threshold-over-100", 28, 16, "`max_disable` cannot exceed 100%"),
        ("unknown-field", 17, 5, "unknown key `phone` in `users.fields`"),
        ("misspelt-field", 15, 5, "unknown key `frist_name` in `users.fields` (portal fields) (did you mean `first_name`?)"),
        ("missing-email-field", 13, 3, "`users.fields` needs `email`"),
        ("bad-scope", 11, 10, "`scope` must be one of `base`, `one`, `sub`, found `subtree` (did you mean `sub`?)"),
        ("bad-duration", 8, 12, "`timeout` must be a duration like 30s, 2m or 500ms, found `30 seconds`"),
        ("unknown-template-filter", 14, 21, "unknown template filter `lowercase` (did you mean `lower`?)"),
        ("rule-with-two-selectors", 23, 5, "rule 1 has both `group` and `filter`"),
        ("rule-without-selector", 22, 5, "rule 1 needs one of `group`, `groups` or `filter`"),
        ("groups-rule-without-groups-section", 19, 5, "rule 1 selects by group but the file has no `groups:` section"),
        ("filter-rule-with-group-template", 25, 17, "a `filter:` rule matches no group"),
        ("duplicate-key", 11, 3, "duplicate key `scope`"),
        ("bad-url", 4, 8, "`url` must start with ldap:// or ldaps://"),
        ("password-env-and-file", 7, 3, "set either `bind_password_env` or `bind_password_file`, not both"),
        ("in-chain-rule-filter", 24, 15, "1.2.840.113556.1.4.1941 (in chain) needs the server"),
        ("uuid-after-lower", 15, 40, "`uuid` reads the raw value"),
        ("bad-membership-date", 1, 49, "`membership_end_date` must be a date written YYYY-MM-DD"),
    ]

    @Test("each broken mapping reports its error at file:line:column", arguments: broken)
    func brokenMapping(file: String, line: Int, column: Int, fragment: String) throws {
        let path = Self.brokenMappings.appendingPathComponent("\(file).yaml").path
        let errors = #expect(throws: MappingErrors.self) { try MappingLoader.load(path: path, environment: [:]) }
        let issue = try #require(errors?.issues.first)
        #expect(errors?.issues.count == 1, "\(errors?.description ?? "")")
        #expect((issue.line, issue.column) == (line, column), "\(issue)")
        #expect(issue.description.contains(fragment), "\(issue)")
        #expect(issue.description.hasPrefix("\(path):\(line):\(column): error: "))
    }

    @Test("a file with several mistakes reports every one, in order")
    func severalErrors() throws {
        let path = Self.brokenMappings.appendingPathComponent("several-errors.yaml").path
        let errors = #expect(throws: MappingErrors.self) { try MappingLoader.load(path: path, environment: [:]) }
        let found = (errors?.issues ?? []).map { "\($0.line):\($0.column) \($0.message)" }
        #expect(found.count == 5, "\(found)")
        let expected = [
            "6:3 `bind_password`: the bind password must not be written",
            "10:3 unknown key `bsae` in `users`",
            "11:10 `scope` must be one of",
            "26:5 rule 2 can never take effect: a Group Manager",
            "28:16 `max_disable` cannot exceed 100%",
        ]
        for (line, prefix) in zip(found, expected) { #expect(line.hasPrefix(prefix)) }
        #expect(errors?.description.split(separator: "\n").count == 5)
    }

    @Test("every fixture in broken-mappings has an expectation")
    func corpusIsCovered() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.brokenMappings.path)
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }
        #expect(Set(files) == Set(Self.broken.map(\.file) + ["several-errors"]))
        #expect(files.count >= 16)
    }

    @Test("issues encode as JSON with sorted keys and an explicit null hint")
    func json() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let issue = MappingIssue(file: "a.yaml", line: 3, column: 5, message: "m")
        #expect(String(decoding: try encoder.encode([issue]), as: UTF8.self)
            == #"[{"column":5,"file":"a.yaml","hint":null,"line":3,"message":"m"}]"#)
        #expect(MappingErrors(issues: [issue]).kind.exitCode == 1)
    }

    @Test("an empty file or a missing section is reported, not crashed on")
    func emptyAndMissing() {
        let empty = #expect(throws: MappingErrors.self) { try Self.load("") }
        #expect(empty?.issues.first?.message == "the mapping file is empty")
        let noUsers = #expect(throws: MappingErrors.self) { try Self.load("client: A\ndirectory: { url: ldap://x }\n") }
        #expect(noUsers?.issues.map(\.message) == ["missing `users:` (where the users are and how to map them)"])
    }
}
