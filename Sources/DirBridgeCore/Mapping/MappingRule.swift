/// One entry of `rules:`: which users it selects and what it gives them.
///
/// Exactly one selector (`group`, `groups` or `filter`); at least one effect. Rules are applied
/// in order by ``RuleEvaluator``; the loader has already rejected rules that can never take
/// effect (Global Admin with a custom group, Group Manager without one).
public struct MappingRule: Sendable {
    /// 1-based position in `rules:`.
    public var index: Int
    /// Line of the rule in the mapping file.
    public var line: Int
    /// Which users the rule selects.
    public var selector: RuleSelector
    /// The user group the rule names; placeholders read the matched group's attributes.
    public var userGroup: FieldTemplate?
    /// The role the rule names.
    public var role: String?
    /// `global_admin: true`.
    public var globalAdmin: Bool
    /// `group_manager: true`.
    public var groupManager: Bool

    public init(
        index: Int, line: Int, selector: RuleSelector, userGroup: FieldTemplate? = nil, role: String? = nil,
        globalAdmin: Bool = false, groupManager: Bool = false
    ) {
        self.index = index
        self.line = line
        self.selector = selector
        self.userGroup = userGroup
        self.role = role
        self.globalAdmin = globalAdmin
        self.groupManager = groupManager
    }
}

/// The name of every client's default user group.
public let defaultUserGroupName = "Default User Group"

/// How a rule selects users.
public enum RuleSelector: Sendable, Equatable {
    /// `group: DN`: members (direct or nested) of that group; `dn` is normalised.
    case group(dn: String)
    /// `groups: pattern`: members of every group whose DN or cn matches the wildcard pattern.
    case groups(GroupPattern)
    /// `filter: (…)`: users whose entry matches; `text` as written.
    case filter(LDAPFilter, text: String)
}

/// A case-insensitive wildcard over groups: `cn=dept-*` matches DNs RDN-prefix-wise,
/// `dept-*` (no `=`) matches the group's cn. `*` matches any run of characters.
public struct GroupPattern: Sendable, Equatable, CustomStringConvertible {
    /// The pattern as written.
    public let text: String
    private let pattern: [Character]
    private let rdnCount: Int?

    public init(_ text: String) {
        self.text = text
        if text.contains("=") {
            let pieces = Self.splitRDNs(text.lowercased()).map { rdn in
                rdn.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    .map { String($0).trimmingSpaces() }.joined(separator: "=")
            }
            pattern = Array(pieces.joined(separator: ","))
            rdnCount = pieces.count
        } else {
            pattern = Array(text.trimmingSpaces().lowercased())
            rdnCount = nil
        }
    }

    /// Whether a group with this normalised DN and cn matches.
    public func matches(groupDN: String, cn: String) -> Bool {
        guard let rdnCount else { return Self.glob(pattern, Array(cn.lowercased())) }
        let rdns = Self.splitRDNs(groupDN.lowercased())
        guard rdns.count >= rdnCount else { return false }
        return Self.glob(pattern, Array(rdns.prefix(rdnCount).joined(separator: ",")))
    }

    public var description: String { text }

    /// Splits at commas not escaped by `\`.
    static func splitRDNs(_ dn: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var escaped = false
        for c in dn {
            if escaped {
                current.append(c)
                escaped = false
            } else if c == "\\" {
                current.append(c)
                escaped = true
            } else if c == "," {
                parts.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        parts.append(current)
        return parts
    }

    /// Wildcard match where `*` matches any run of characters (iterative, with backtracking).
    static func glob(_ pattern: [Character], _ text: [Character]) -> Bool {
        var p = 0, t = 0
        var star: Int? = nil, mark = 0
        while t < text.count {
            if p < pattern.count, pattern[p] != "*", pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == "*" {
                star = p
                mark = t
                p += 1
            } else if let s = star {
                p = s + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
