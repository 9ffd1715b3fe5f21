import Foundation
import Yams

/// Issues and the YAML node helpers every section shares: typed scalars, DNs, filters,
/// templates, paths, and the checks for misspelt keys and literal passwords.
extension MappingReader {
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
}
