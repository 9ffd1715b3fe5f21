import Foundation
import Yams

/// Reads a mapping file into a ``Mapping``, reporting every problem with its line and column.
///
/// The YAML is composed into Yams nodes, which keep their position in the file, and each
/// section is checked against SPEC section 3: unknown keys (with a "did you mean"), wrong
/// types, passwords written in the file, bad DNs, filters and templates, and rules that can
/// never take effect. Loading goes on after a problem, so one run reports them all.
///
/// ```swift
/// do {
///     let mapping = try MappingLoader.load(path: "mappings/acme.yaml")
/// } catch {
///     print(error)   // mappings/acme.yaml:12:5: error: unknown key `bsae` in `users` (did you mean `base`?)
/// }
/// ```
public enum MappingLoader {
    /// An environment variable that, when set, replaces `directory.url` (space- or
    /// comma-separated URLs), so that a demo or a test can point a shipped mapping elsewhere.
    public static let urlOverrideVariable = "DIRBRIDGE_URL"

    /// Loads and validates the mapping file at `path`; relative paths inside it (store,
    /// `ca_file`, `bind_password_file`) are resolved against the file's folder.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(MappingErrors) -> Mapping {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw MappingErrors(issues: [MappingIssue(
                file: path, line: 1, column: 1, message: "cannot read the mapping file: \(error.localizedDescription)")])
        }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL
        return try load(
            yaml: text, file: path, baseDirectory: absolute.deletingLastPathComponent().path, environment: environment)
    }

    /// Loads and validates mapping text; `file` names it in messages, `baseDirectory` anchors relative paths.
    public static func load(
        yaml: String, file: String, baseDirectory: String, environment: [String: String] = [:]
    ) throws(MappingErrors) -> Mapping {
        let reader = MappingReader(file: file, baseDirectory: baseDirectory, environment: environment)
        let mapping = reader.read(yaml)
        guard reader.issues.isEmpty, let mapping else {
            throw MappingErrors(issues: reader.issues)
        }
        return mapping
    }
}

/// The keys each section accepts, for unknown-key checks and suggestions.
enum MappingKeys {
    static let root = ["client", "editor", "store", "directory", "users", "groups", "rules", "deprovision"]
    static let client = ["name", "parent", "membership_end_date"]
    static let store = ["sqlite"]
    static let directory = [
        "url", "start_tls", "ca_file", "tls_verify", "bind_dn", "bind_password_env", "bind_password_file",
        "page_size", "timeout",
    ]
    static let users = ["base", "scope", "filter", "id", "fields", "disabled", "login", "adopt_existing"]
    static let groups = ["base", "scope", "filter", "members", "nested", "max_depth", "range", "primary_group"]
    static let rule = ["group", "groups", "filter", "user_group", "role", "global_admin", "group_manager"]
    static let deprovision = ["missing", "max_disable", "max_demote", "protected"]
    /// Keys that would put a secret into the file.
    static let literalPasswords = ["bind_password", "password", "bindpw", "bind_pw", "bind_secret", "secret"]
}

/// One pass over one file's nodes, collecting issues as it goes.
private final class MappingReader {
    let file: String
    let baseDirectory: String
    let environment: [String: String]
    var issues: [MappingIssue] = []

    init(file: String, baseDirectory: String, environment: [String: String]) {
        self.file = file
        self.baseDirectory = baseDirectory
        self.environment = environment
    }

    // MARK: Issues

    func issue(_ node: Node?, _ message: String, hint: String? = nil, offset: Int? = nil) {
        let mark = node?.mark
        var column = mark?.column ?? 1
        if let offset, let node {
            column += offset + (Self.isQuoted(node) ? 1 : 0)
        }
        issues.append(MappingIssue(file: file, line: mark?.line ?? 1, column: column, message: message, hint: hint))
    }

    func issue(line: Int, column: Int, _ message: String, hint: String? = nil) {
        issues.append(MappingIssue(file: file, line: line, column: column, message: message, hint: hint))
    }

    static func isQuoted(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node else { return false }
        return scalar.style == .singleQuoted || scalar.style == .doubleQuoted
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if scalar.style == .plain, node.null != nil { return "nothing" }
            if scalar.style == .plain, node.bool != nil { return "`\(scalar.string)` (a boolean)" }
            if scalar.style == .plain, node.int != nil || node.float != nil { return "`\(scalar.string)` (a number)" }
            return "the text `\(scalar.string)`"
        }
    }

    // MARK: Reading the document

    func read(_ yaml: String) -> Mapping? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            report(error)
            return nil
        } catch {
            issue(line: 1, column: 1, "cannot parse the YAML: \(error)")
            return nil
        }
        guard let root, root.null == nil || root.mapping != nil else {
            issue(line: 1, column: 1, "the mapping file is empty", hint: "see docs/mapping-reference.md")
            return nil
        }
        guard let sections = entries(root, "the mapping file", MappingKeys.root) else { return nil }

        let client = sections["client"].flatMap { readClient($0.value) }
        if sections["client"] == nil, !reportedMisspelling(of: "client", in: root) { issue(root, "missing `client:` (the portal client this file feeds)") }
        let editor = sections["editor"].flatMap { nonEmptyString($0.value, "editor") } ?? "dirbridge"
        let storePath = sections["store"].flatMap { readStore($0.value) }
        let directory = readDirectory(sections["directory"], root: root)
        let users = sections["users"].flatMap { readUsers($0) }
        if sections["users"] == nil, !reportedMisspelling(of: "users", in: root) { issue(root, "missing `users:` (where the users are and how to map them)") }
        let groups = sections["groups"].flatMap { readGroups($0) }
        let rules = sections["rules"].map { readRules($0.value, hasGroups: sections["groups"] != nil) } ?? []
        let deprovision = sections["deprovision"].map { readDeprovision($0.value) } ?? DeprovisionSettings()

        guard issues.isEmpty, let client, let directory, let users else { return nil }
        var mapping = Mapping(
            file: file, client: client, editor: editor, storePath: storePath, directory: directory, users: users,
            groups: groups, rules: rules, deprovision: deprovision)
        mapping.sourceHash = SHA256.hex(Array(yaml.utf8))
        return mapping
    }

    func report(_ error: YamlError) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            var message = "YAML syntax error: \(problem)"
            if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
            issue(line: mark.line, column: mark.column, message,
                  hint: "check the indentation of this line and of the lines above it; keys of one section line up")
        case .duplicatedKeysInMapping(let duplicates, let context):
            issue(line: context.mark.line, column: context.mark.column,
                  "duplicate key " + duplicates.map { "`\($0)`" }.joined(separator: ", "),
                  hint: "each key may appear once per section")
        case .reader(let problem, _, _, _):
            issue(line: 1, column: 1, "cannot read the YAML: \(problem)", hint: "the file must be UTF-8 text")
        default:
            issue(line: 1, column: 1, "cannot parse the YAML: \(error)")
        }
    }

    // MARK: Node helpers

    typealias Entry = (key: Node, value: Node)

    /// The key/value pairs of a mapping node, after checking every key is known.
    func entries(_ node: Node, _ section: String, _ known: [String]) -> [String: Entry]? {
        guard case .mapping(let mapping) = node else {
            issue(node, "\(section) must be a mapping of `key: value` lines, found \(Self.describe(node))")
            return nil
        }
        var result: [String: Entry] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                issue(key, "keys in \(section) must be plain names, found \(Self.describe(key))")
                continue
            }
            let name = scalar.string
            if MappingKeys.literalPasswords.contains(name.lowercased()) {
                issue(key, "`\(name)`: the bind password must not be written in the mapping file",
                      hint: "use `bind_password_env: VARIABLE` or `bind_password_file: PATH` in `directory:`")
                continue
            }
            guard known.contains(name) else {
                issue(key, "unknown key `\(name)` in \(section)",
                      hint: Suggestions.hint(for: name, in: known)
                          ?? "known keys: " + known.map { "`\($0)`" }.joined(separator: ", "))
                continue
            }
            result[name] = (key, value)
        }
        return result
    }

    func string(_ node: Node, _ name: String) -> String? {
        guard case .scalar(let scalar) = node, !(scalar.style == .plain && node.null != nil) else {
            issue(node, "`\(name)` must be text, found \(Self.describe(node))")
            return nil
        }
        return scalar.string
    }

    func nonEmptyString(_ node: Node, _ name: String) -> String? {
        guard let text = string(node, name) else { return nil }
        guard !text.allSatisfy(\.isWhitespace) else {
            issue(node, "`\(name)` is empty")
            return nil
        }
        return text
    }

    func bool(_ node: Node, _ name: String) -> Bool? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = node.bool else {
            issue(node, "`\(name)` must be true or false, found \(Self.describe(node))")
            return nil
        }
        return value
    }

    /// `nested: true | false | client | server`: `true` is `client`, the walk dirbridge has always done.
    func nestedSetting(_ node: Node) -> (Bool, NestedResolution)? {
        if case .scalar(let scalar) = node, scalar.style == .plain, let value = node.bool { return (value, .client) }
        if case .scalar(let scalar) = node, let value = NestedResolution(rawValue: scalar.string.lowercased()) { return (true, value) }
        issue(node, "`nested` must be true, false, `client` or `server`, found \(Self.describe(node))",
              hint: "`server` asks the directory (Active Directory's in-chain rule); `true` or `client` walks the groups read")
        return nil
    }

    func integer(_ node: Node, _ name: String, minimum: Int) -> Int? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = node.int else {
            issue(node, "`\(name)` must be a whole number, found \(Self.describe(node))")
            return nil
        }
        guard value >= minimum else {
            issue(node, minimum == 0 ? "`\(name)` must not be negative, found \(value)"
                : "`\(name)` must be at least \(minimum), found \(value)")
            return nil
        }
        return value
    }

    func choice<Choice: RawRepresentable & CaseIterable>(_ node: Node, _ name: String, _ type: Choice.Type) -> Choice?
    where Choice.RawValue == String {
        guard let text = string(node, name) else { return nil }
        if let value = Choice(rawValue: text.lowercased()) { return value }
        let names = Choice.allCases.map(\.rawValue)
        issue(node, "`\(name)` must be one of " + names.map { "`\($0)`" }.joined(separator: ", ") + ", found `\(text)`",
              hint: Suggestions.hint(for: text, in: names))
        return nil
    }

    func dn(_ node: Node, _ name: String) -> String? {
        guard let text = nonEmptyString(node, name) else { return nil }
        do {
            return try MappingDN.normalize(text)
        } catch {
            issue(node, "`\(name)` is not a valid DN: \(error.message)",
                  hint: "write it as in LDIF, e.g. `cn=sales,ou=groups,dc=acme,dc=example`", offset: error.offset)
            return nil
        }
    }

    func attributeName(_ node: Node, _ name: String) -> String? {
        guard let text = nonEmptyString(node, name) else { return nil }
        let trimmed = text.trimmingSpaces()
        guard FieldTemplate.isAttributeName(trimmed) else {
            issue(node, "`\(name)` must be an attribute name such as `entryUUID`, found `\(text)`")
            return nil
        }
        return trimmed.lowercased()
    }

    func inMemoryFilter(_ node: Node, _ name: String) -> FilterSetting? {
        guard let text = nonEmptyString(node, name) else { return nil }
        do {
            return try FilterSetting(text)
        } catch {
            issue(node, "`\(name)` is not a valid LDAP filter: \(error.message)", offset: error.offset)
            return nil
        }
    }

    func serverFilter(_ node: Node, _ name: String) -> String? {
        guard let text = nonEmptyString(node, name) else { return nil }
        do {
            try LDAPFilter.checkServerSyntax(text)
            return text
        } catch {
            issue(node, "`\(name)` is not a valid LDAP filter: \(error.message)", offset: error.offset)
            return nil
        }
    }

    func path(_ text: String) -> String {
        if text.hasPrefix("/") { return URL(fileURLWithPath: text).standardizedFileURL.path }
        return URL(fileURLWithPath: baseDirectory, isDirectory: true).appendingPathComponent(text)
            .standardizedFileURL.path
    }

    func template(_ node: Node, _ name: String, bareNameIsAttribute: Bool) -> FieldTemplate? {
        guard let text = nonEmptyString(node, name) else { return nil }
        do {
            return try FieldTemplate.compile(text, bareNameIsAttribute: bareNameIsAttribute)
        } catch {
            issue(node, "`\(name)`: \(error.message)", hint: error.hint, offset: error.offset)
            return nil
        }
    }

    // MARK: Sections

    func readClient(_ node: Node) -> ClientSettings? {
        if case .scalar = node {
            return nonEmptyString(node, "client").map { ClientSettings(name: $0) }
        }
        if case .sequence = node {
            issue(node, "`client` must be a name or a mapping {name, parent, membership_end_date}, found a list")
            return nil
        }
        guard let keys = entries(node, "`client`", MappingKeys.client) else { return nil }
        guard let nameEntry = keys["name"] else {
            issue(node, "`client` needs a `name`")
            return nil
        }
        let name = nonEmptyString(nameEntry.value, "client.name")
        let parent = keys["parent"].flatMap { nonEmptyString($0.value, "client.parent") }
        var endDate: String?
        if let entry = keys["membership_end_date"], let text = string(entry.value, "membership_end_date") {
            if Self.isDate(text) {
                endDate = text
            } else {
                issue(entry.value, "`membership_end_date` must be a date written YYYY-MM-DD, found `\(text)`")
            }
        }
        return name.map { ClientSettings(name: $0, parent: parent, membershipEndDate: endDate) }
    }

    static func isDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
        else { return false }
        return year > 1900 && (1...12).contains(month) && (1...31).contains(day)
    }

    func readStore(_ node: Node) -> String? {
        guard let keys = entries(node, "`store`", MappingKeys.store) else { return nil }
        guard let sqlite = keys["sqlite"] else {
            issue(node, "`store` needs `sqlite: PATH`")
            return nil
        }
        return nonEmptyString(sqlite.value, "store.sqlite").map(path)
    }

    func readDirectory(_ entry: Entry?, root: Node) -> DirectoryConfiguration? {
        guard let entry else {
            if !reportedMisspelling(of: "directory", in: root) {
                issue(root, "missing `directory:` (the LDAP server to read)")
            }
            return nil
        }
        guard let keys = entries(entry.value, "`directory`", MappingKeys.directory) else { return nil }
        var configuration = DirectoryConfiguration(urls: [])
        var valid = true

        if let override = environment[MappingLoader.urlOverrideVariable], !override.allSatisfy(\.isWhitespace) {
            let urls = override.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
            for url in urls where !Self.isLDAPURL(url) {
                issue(entry.key, "\(MappingLoader.urlOverrideVariable) holds `\(url)`, not an ldap:// or ldaps:// URL")
                valid = false
            }
            configuration.urls = urls
        } else if let url = keys["url"] {
            var nodes: [Node] = []
            if case .sequence(let sequence) = url.value { nodes = Array(sequence) } else { nodes = [url.value] }
            if nodes.isEmpty {
                issue(url.value, "`url` lists no URL")
                valid = false
            }
            for node in nodes {
                guard let text = nonEmptyString(node, "url") else {
                    valid = false
                    continue
                }
                if Self.isLDAPURL(text) {
                    configuration.urls.append(text)
                } else {
                    issue(node, "`url` must start with ldap:// or ldaps://, found `\(text)`")
                    valid = false
                }
            }
        } else if !reportedMisspelling(of: "url", in: entry.value) {
            issue(entry.key, "`directory` needs a `url` (ldap:// or ldaps://)")
            valid = false
        }
        if let node = keys["start_tls"]?.value {
            if let value = bool(node, "start_tls") { configuration.startTLS = value } else { valid = false }
        }
        if let node = keys["tls_verify"]?.value {
            if let value = bool(node, "tls_verify") { configuration.tlsVerify = value } else { valid = false }
        }
        if let node = keys["ca_file"]?.value {
            if let value = nonEmptyString(node, "ca_file") { configuration.caFile = path(value) } else { valid = false }
        }
        if let node = keys["bind_dn"]?.value {
            if let value = nonEmptyString(node, "bind_dn"), dn(node, "bind_dn") != nil {
                configuration.bindDN = value
            } else { valid = false }
        }
        let env = keys["bind_password_env"]
        let passwordFile = keys["bind_password_file"]
        if let env {
            if let name = nonEmptyString(env.value, "bind_password_env") {
                if Self.isEnvironmentName(name) {
                    configuration.password = .environment(name)
                } else {
                    issue(env.value, "`bind_password_env` names an environment variable, found `\(name)`",
                          hint: "write the variable's name, e.g. DIRBRIDGE_BIND_PASSWORD, not the password")
                    valid = false
                }
            } else { valid = false }
        }
        if let passwordFile {
            if env != nil {
                issue(passwordFile.key, "set either `bind_password_env` or `bind_password_file`, not both")
                valid = false
            } else if let value = nonEmptyString(passwordFile.value, "bind_password_file") {
                configuration.password = .file(path(value))
            } else { valid = false }
        }
        if let bindDN = keys["bind_dn"], env == nil, passwordFile == nil, !hasLiteralPassword(entry.value) {
            issue(bindDN.key, "`bind_dn` is set but no password source",
                  hint: "add `bind_password_env: VARIABLE` or `bind_password_file: PATH`")
            valid = false
        }
        if keys["bind_dn"] == nil, let source = env ?? passwordFile {
            issue(source.key, "a bind password is set but no `bind_dn` to bind as")
            valid = false
        }
        if let node = keys["page_size"]?.value {
            if let value = integer(node, "page_size", minimum: 1) { configuration.pageSize = value } else { valid = false }
        }
        if let node = keys["timeout"]?.value {
            if let value = duration(node, "timeout") { configuration.timeout = value } else { valid = false }
        }
        return valid ? configuration : nil
    }

    static func isLDAPURL(_ text: String) -> Bool {
        let lowered = text.lowercased()
        return ["ldap://", "ldaps://", "ldapi://"].contains { lowered.hasPrefix($0) && lowered.count > $0.count }
    }

    static func isEnvironmentName(_ text: String) -> Bool {
        guard let first = text.first, first == "_" || (first.isASCII && first.isLetter) else { return false }
        return text.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
    }

    /// `30s`, `2m`, `500ms`, `1h` (see ``DurationText``) or a number of seconds.
    func duration(_ node: Node, _ name: String) -> Double? {
        guard case .scalar(let scalar) = node else {
            issue(node, "`\(name)` must be a duration like 30s, 2m or 500ms, found \(Self.describe(node))")
            return nil
        }
        let seconds = DurationText.seconds(scalar.string)
        guard let seconds else {
            issue(node, "`\(name)` must be a duration like 30s, 2m or 500ms, found `\(scalar.string)`")
            return nil
        }
        guard seconds > 0 else {
            issue(node, "`\(name)` must be longer than zero, found `\(scalar.string)`")
            return nil
        }
        return seconds
    }

    func readUsers(_ entry: Entry) -> UsersSection? {
        guard let keys = entries(entry.value, "`users`", MappingKeys.users) else { return nil }
        var valid = true
        var base = ""
        if let node = keys["base"]?.value {
            if let text = nonEmptyString(node, "users.base"), dn(node, "users.base") != nil { base = text } else { valid = false }
        } else if !reportedMisspelling(of: "base", in: entry.value) {
            issue(entry.key, "`users` needs a `base` (the DN under which users are searched)")
            valid = false
        }
        var scope = SearchScope.sub
        if let node = keys["scope"]?.value {
            if let value = choice(node, "scope", SearchScope.self) { scope = value } else { valid = false }
        }
        var filter = "(objectClass=person)"
        if let node = keys["filter"]?.value {
            if let value = serverFilter(node, "users.filter") { filter = value } else { valid = false }
        }
        var id = ""
        if let node = keys["id"]?.value {
            if let value = attributeName(node, "users.id") { id = value } else { valid = false }
        } else if !reportedMisspelling(of: "id", in: entry.value) {
            issue(entry.key, "`users` needs an `id`: the immutable key attribute",
                  hint: "entryUUID (OpenLDAP), objectGUID (Active Directory), ipaUniqueID (FreeIPA), nsUniqueId (389 DS)")
            valid = false
        }
        var fields: [PortalField: FieldTemplate] = [:]
        if let fieldsEntry = keys["fields"] {
            let names = PortalField.allCases.map(\.rawValue)
            if let fieldKeys = entries(fieldsEntry.value, "`users.fields` (portal fields)", names) {
                for (name, field) in fieldKeys {
                    guard let portalField = PortalField(rawValue: name) else { continue }
                    if let template = template(field.value, "fields.\(name)", bareNameIsAttribute: true) {
                        fields[portalField] = template
                    } else { valid = false }
                }
                if fieldKeys["email"] == nil, !reportedMisspelling(of: "email", in: fieldsEntry.value) {
                    issue(fieldsEntry.key, "`users.fields` needs `email`: the portal's login name",
                          hint: #"e.g. email: "{mail | lower | trim}""#)
                    valid = false
                }
            } else { valid = false }
        } else if !reportedMisspelling(of: "fields", in: entry.value) {
            issue(entry.key, "`users` needs `fields`, at least `email`", hint: #"e.g. fields: { email: "{mail | lower}" }"#)
            valid = false
        }
        var disabled: FilterSetting?
        if let node = keys["disabled"]?.value {
            if let value = inMemoryFilter(node, "users.disabled") { disabled = value } else { valid = false }
        }
        var login = LoginMode.none
        if let node = keys["login"]?.value {
            if let value = choice(node, "login", LoginMode.self) { login = value } else { valid = false }
        }
        var adopt = AdoptMode.none
        if let node = keys["adopt_existing"]?.value {
            if let value = choice(node, "adopt_existing", AdoptMode.self) { adopt = value } else { valid = false }
        }
        guard valid else { return nil }
        return UsersSection(
            base: base, scope: scope, filter: filter, id: id, fields: fields, disabled: disabled, login: login,
            adoptExisting: adopt)
    }

    /// Whether a misspelling of `key` was already reported inside `node` ("did you mean `key`?"):
    /// the reader then gets that one error, not a second "missing `key`".
    func reportedMisspelling(of key: String, in node: Node) -> Bool {
        guard case .mapping(let mapping) = node else { return false }
        let lines = Set(mapping.keys.compactMap { $0.mark?.line })
        return issues.contains { lines.contains($0.line) && $0.hint == "did you mean `\(key)`?" }
    }

    /// Whether the mapping node has a key that writes a password literally (already reported).
    func hasLiteralPassword(_ node: Node) -> Bool {
        guard case .mapping(let mapping) = node else { return false }
        return mapping.keys.contains { MappingKeys.literalPasswords.contains(($0.string ?? "").lowercased()) }
    }

    func readGroups(_ entry: Entry) -> GroupsSection? {
        guard let keys = entries(entry.value, "`groups`", MappingKeys.groups) else { return nil }
        var valid = true
        var section = GroupsSection(
            base: "", scope: .sub, filter: GroupsSection.defaultFilter, members: ["member"], nested: true, maxDepth: nil)
        if let node = keys["base"]?.value {
            if let text = nonEmptyString(node, "groups.base"), dn(node, "groups.base") != nil {
                section.base = text
            } else { valid = false }
        } else if !reportedMisspelling(of: "base", in: entry.value) {
            issue(entry.key, "`groups` needs a `base` (the DN under which groups are searched)")
            valid = false
        }
        if let node = keys["scope"]?.value {
            if let value = choice(node, "scope", SearchScope.self) { section.scope = value } else { valid = false }
        }
        if let node = keys["filter"]?.value {
            if let value = serverFilter(node, "groups.filter") { section.filter = value } else { valid = false }
        }
        if let node = keys["members"]?.value {
            var nodes: [Node] = []
            if case .sequence(let sequence) = node { nodes = Array(sequence) } else { nodes = [node] }
            let names = nodes.compactMap { attributeName($0, "members") }
            if names.count != nodes.count || names.isEmpty {
                if nodes.isEmpty { issue(node, "`members` lists no attribute") }
                valid = false
            } else {
                section.members = names
            }
        }
        if let node = keys["nested"]?.value {
            if let (nested, resolution) = nestedSetting(node) {
                section.nested = nested
                section.nestedResolution = resolution
            } else { valid = false }
        }
        if let node = keys["max_depth"]?.value {
            if let value = integer(node, "max_depth", minimum: 1) { section.maxDepth = value } else { valid = false }
        }
        if let node = keys["range"]?.value {
            if let value = integer(node, "range", minimum: 1) { section.rangeSize = value } else { valid = false }
        }
        if let node = keys["primary_group"]?.value {
            if let value = bool(node, "primary_group") { section.primaryGroup = value } else { valid = false }
        }
        return valid ? section : nil
    }

    func readRules(_ node: Node, hasGroups: Bool) -> [MappingRule] {
        guard case .sequence(let sequence) = node else {
            if node.null == nil { issue(node, "`rules` must be a list of rules (lines starting with `- `), found \(Self.describe(node))") }
            return []
        }
        var rules: [MappingRule] = []
        for (offset, ruleNode) in sequence.enumerated() {
            if let rule = readRule(ruleNode, index: offset + 1, hasGroups: hasGroups) { rules.append(rule) }
        }
        return rules
    }

    func readRule(_ node: Node, index: Int, hasGroups: Bool) -> MappingRule? {
        let name = "rule \(index)"
        guard let keys = entries(node, "`\(name)`", MappingKeys.rule) else { return nil }
        var valid = true
        let selectorKeys = ["group", "groups", "filter"].filter { keys[$0] != nil }
        var selector: RuleSelector?
        if selectorKeys.count != 1 {
            if selectorKeys.isEmpty {
                issue(node, "\(name) needs one of `group`, `groups` or `filter` to say which users it selects")
            } else {
                let second = keys[selectorKeys[1]]!.key
                issue(second, "\(name) has both " + selectorKeys.map { "`\($0)`" }.joined(separator: " and ")
                      + "; a rule selects users one way", hint: "split it into one rule per selector")
            }
            valid = false
        } else if let entry = keys["group"] {
            if let dn = dn(entry.value, "group") { selector = .group(dn: dn) } else { valid = false }
        } else if let entry = keys["groups"] {
            if let text = nonEmptyString(entry.value, "groups") { selector = .groups(GroupPattern(text)) } else { valid = false }
        } else if let entry = keys["filter"] {
            if let setting = inMemoryFilter(entry.value, "filter") {
                selector = .filter(setting.filter, text: setting.text)
            } else { valid = false }
        }
        if let selectorKey = selectorKeys.first, selectorKey != "filter", !hasGroups {
            issue(keys[selectorKey]!.key, "\(name) selects by group but the file has no `groups:` section",
                  hint: "add `groups: { base: …, members: [member] }`")
            valid = false
        }

        var userGroup: FieldTemplate?
        if let entry = keys["user_group"] {
            if let template = template(entry.value, "user_group", bareNameIsAttribute: false) {
                userGroup = template
                if !template.isConstant, selectorKeys == ["filter"] {
                    issue(entry.value, "`user_group` placeholders read the matched group's attributes; a `filter:` rule matches no group",
                          hint: "name the user group literally, e.g. `user_group: Engineering`")
                    valid = false
                } else if !template.isConstant, template.mayRenderEmpty {
                    let attributes = template.attributes.map { "`\($0)`" }.joined(separator: ", ")
                    issue(entry.value, "`user_group` `\(template.source)` can be empty: \(attributes) may be missing on a group",
                          hint: #"use `{cn}` or add a default, e.g. "{description | default(\"Staff\")}""#)
                    valid = false
                }
            } else { valid = false }
        }
        var role: String?
        if let entry = keys["role"] {
            if let text = nonEmptyString(entry.value, "role") { role = text.trimmingSpaces() } else { valid = false }
        }
        var globalAdmin = false
        if let entry = keys["global_admin"] {
            if let value = bool(entry.value, "global_admin") { globalAdmin = value } else { valid = false }
        }
        var groupManager = false
        if let entry = keys["group_manager"] {
            if let value = bool(entry.value, "group_manager") { groupManager = value } else { valid = false }
        }
        let namesDefault = userGroup.map {
            $0.isConstant && TemplateFilter.trimmed($0.source).lowercased() == defaultUserGroupName.lowercased()
        }
        if globalAdmin, let userGroup, namesDefault == false {
            issue(keys["global_admin"]!.key,
                  "\(name) can never take effect: Global Admin is only allowed in the \(defaultUserGroupName), but the rule names `\(userGroup.source)`",
                  hint: "drop `user_group` from this rule, or make it a separate rule")
            valid = false
        }
        if groupManager, userGroup == nil || namesDefault == true {
            issue(keys["group_manager"]!.key,
                  "\(name) can never take effect: a Group Manager manages a custom user group, and the rule "
                      + (userGroup == nil ? "names none" : "names the \(defaultUserGroupName)"),
                  hint: "add `user_group: NAME` naming the group this user manages")
            valid = false
        }
        if valid, userGroup == nil, role == nil, !globalAdmin, !groupManager {
            issue(node, "\(name) sets nothing", hint: "add `user_group`, `role`, `global_admin` or `group_manager`")
            valid = false
        }
        guard valid, let selector else { return nil }
        return MappingRule(
            index: index, line: node.mark?.line ?? 1, selector: selector, userGroup: userGroup, role: role,
            globalAdmin: globalAdmin, groupManager: groupManager)
    }

    func readDeprovision(_ node: Node) -> DeprovisionSettings {
        var settings = DeprovisionSettings()
        guard let keys = entries(node, "`deprovision`", MappingKeys.deprovision) else { return settings }
        if let node = keys["missing"]?.value, let value = choice(node, "missing", MissingAction.self) {
            settings.missing = value
        }
        if let node = keys["max_disable"]?.value, let value = threshold(node, "max_disable") {
            settings.maxDisable = value
        }
        if let node = keys["max_demote"]?.value, let value = integer(node, "max_demote", minimum: 0) {
            settings.maxDemote = value
        }
        if let entry = keys["protected"] {
            var nodes: [Node] = []
            if case .sequence(let sequence) = entry.value { nodes = Array(sequence) } else { nodes = [entry.value] }
            for node in nodes {
                guard let email = nonEmptyString(node, "protected") else { continue }
                if email.contains("@") {
                    settings.protected.append(email.trimmingSpaces().lowercased())
                } else {
                    issue(node, "`protected` lists client users by email, found `\(email)`")
                }
            }
        }
        return settings
    }

    /// A count (`10`) or a share (`5%`, 0…100%).
    func threshold(_ node: Node, _ name: String) -> Threshold? {
        guard case .scalar(let scalar) = node else {
            issue(node, "`\(name)` must be a count like 10 or a share like 5%, found \(Self.describe(node))")
            return nil
        }
        let text = scalar.string.trimmingSpaces()
        if text.hasSuffix("%") {
            guard let percent = Double(text.dropLast().trimmingCharacters(in: .whitespaces)), percent.isFinite else {
                issue(node, "`\(name)` must be a count like 10 or a share like 5%, found `\(text)`")
                return nil
            }
            guard percent >= 0 else {
                issue(node, "`\(name)` must not be negative, found `\(text)`")
                return nil
            }
            guard percent <= 100 else {
                issue(node, "`\(name)` cannot exceed 100%, found `\(text)`")
                return nil
            }
            return .percent(percent)
        }
        guard let count = Int(text) else {
            issue(node, "`\(name)` must be a count like 10 or a share like 5%, found `\(text)`")
            return nil
        }
        guard count >= 0 else {
            issue(node, "`\(name)` must not be negative, found `\(text)`")
            return nil
        }
        return .count(count)
    }
}
