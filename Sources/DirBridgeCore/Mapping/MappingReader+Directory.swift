import Yams

/// `directory:`: the LDAP server, TLS, the bind and its password source, paging and timeout.
extension MappingReader {
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
        guard let seconds = DurationText(scalar.string)?.seconds else {
            issue(node, "`\(name)` must be a duration like 30s, 2m or 500ms, found `\(scalar.string)`")
            return nil
        }
        guard seconds > 0 else {
            issue(node, "`\(name)` must be longer than zero, found `\(scalar.string)`")
            return nil
        }
        return seconds
    }
}
