import Foundation
import Yams

/// Reads a mapping file into a ``Mapping``, reporting every problem with its line and column.
///
/// The YAML is composed into Yams nodes, which keep their position in the file, and each
/// section (`client`, `editor`, `store`, `directory`, `users`, `groups`, `rules`,
/// `deprovision`) is checked for unknown keys (with a "did you mean"), wrong types, passwords
/// written in the file, bad DNs, filters and templates, and rules that can never take effect.
/// Loading goes on after a problem, so one run reports them all.
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
            throw MappingErrors(issues: [MappingIssue(file: path, line: 0, column: 0, message: FileReading.problem(path, error))])
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
    static let root = ["client", "editor", "store", "directory", "users", "groups", "rules", "deprovision", "guards", "notify"]
    static let client = ["name", "parent", "membership_end_date"]
    static let store = ["sqlite", "postgres", "password_env", "password_file"]
    static let directory = [
        "url", "start_tls", "ca_file", "tls_verify", "bind_dn", "bind_password_env", "bind_password_file",
        "page_size", "timeout",
    ]
    static let users = ["base", "scope", "filter", "id", "fields", "disabled", "login", "adopt_existing"]
    static let groups = ["base", "scope", "filter", "members", "nested", "max_depth", "range", "primary_group"]
    static let rule = ["group", "groups", "filter", "user_group", "role", "global_admin", "group_manager"]
    static let deprovision = ["missing", "max_disable", "max_demote", "protected"]
    static let guards = ["max_promote", "privileged_roles"]
    static let notify = ["webhook", "on", "secret_env", "timeout"]
    /// Keys that would put a secret into the file.
    static let literalPasswords = ["bind_password", "password", "bindpw", "bind_pw", "bind_secret", "secret"]
}

/// One pass over one file's nodes, collecting issues as it goes.
///
/// The node helpers are in `MappingReader+Nodes.swift`; each section of the file has an
/// extension of its own (`MappingReader+Users.swift` …), `client:` and `store:` below.
final class MappingReader {
    let file: String
    let baseDirectory: String
    let environment: [String: String]
    var issues: [MappingIssue] = []

    init(file: String, baseDirectory: String, environment: [String: String]) {
        self.file = file
        self.baseDirectory = baseDirectory
        self.environment = environment
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
        let store = sections["store"].flatMap { readStore($0.value) }
        let directory = readDirectory(sections["directory"], root: root)
        let users = sections["users"].flatMap { readUsers($0) }
        if sections["users"] == nil, !reportedMisspelling(of: "users", in: root) { issue(root, "missing `users:` (where the users are and how to map them)") }
        let groups = sections["groups"].flatMap { readGroups($0) }
        let rules = sections["rules"].map { readRules($0.value, hasGroups: sections["groups"] != nil) } ?? []
        let deprovision = sections["deprovision"].map { readDeprovision($0.value) } ?? DeprovisionSettings()
        let guards = sections["guards"].map { readGuards($0.value) } ?? GuardSettings()
        let notify = sections["notify"].flatMap { readNotify($0.value) }

        guard issues.isEmpty, let client, let directory, let users else { return nil }
        var mapping = Mapping(
            file: file, client: client, editor: editor, storePath: store?.location, directory: directory, users: users,
            groups: groups, rules: rules, deprovision: deprovision)
        mapping.storePassword = store?.password ?? StorePasswordSource()
        mapping.guards = guards
        mapping.notify = notify
        mapping.sourceHash = Digests.sha256Hex(Array(yaml.utf8))
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
}

/// `client:` and `store:`.
extension MappingReader {
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

    /// `store: {sqlite: PATH}` or `store: {postgres: URL, password_env: VAR | password_file: PATH}`.
    func readStore(_ node: Node) -> (location: String, password: StorePasswordSource)? {
        guard let keys = entries(node, "`store`", MappingKeys.store) else { return nil }
        switch (keys["sqlite"], keys["postgres"]) {
        case (let sqlite?, nil):
            for key in ["password_env", "password_file"] where keys[key] != nil {
                issue(keys[key]!.key, "`store.\(key)` is for a PostgreSQL store; an SQLite file has no password")
            }
            return nonEmptyString(sqlite.value, "store.sqlite").map { (path($0), StorePasswordSource()) }
        case (nil, let postgres?):
            guard let url = nonEmptyString(postgres.value, "store.postgres") else { return nil }
            guard isPostgresLocation(url), URLComponents(string: url)?.host != nil else {
                issue(postgres.value, "`store.postgres` takes a URL: postgresql://USER@HOST:PORT/DATABASE")
                return nil
            }
            if URLComponents(string: url)?.password != nil {
                issue(postgres.value, "`store.postgres` must not hold the password: use password_env, password_file, PGPASSWORD or ~/.pgpass")
                return nil
            }
            if keys["password_env"] != nil && keys["password_file"] != nil {
                issue(node, "`store` takes password_env or password_file, not both")
                return nil
            }
            let password = StorePasswordSource(
                environmentVariable: keys["password_env"].flatMap { nonEmptyString($0.value, "store.password_env") },
                file: keys["password_file"].flatMap { nonEmptyString($0.value, "store.password_file") }.map(path))
            return (url, password)
        case (_?, _?):
            issue(node, "`store` takes sqlite or postgres, not both")
            return nil
        case (nil, nil):
            issue(node, "`store` needs `sqlite: PATH` or `postgres: URL`")
            return nil
        }
    }
}
