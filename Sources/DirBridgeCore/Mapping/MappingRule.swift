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
    /// Lowercased UTF-8 pattern; for DN patterns, with spaces around `=` and `,` removed.
    private let pattern: [UInt8]
    /// How many leading RDNs of a group's DN the pattern covers; nil for a cn pattern.
    private let rdnCount: Int?

    public init(_ text: String) {
        self.text = text
        if text.contains("=") {
            let pieces = Self.splitRDNs(text.lowercased()).map { rdn in
                rdn.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    .map { String($0).trimmingSpaces() }.joined(separator: "=")
            }
            pattern = Array(pieces.joined(separator: ",").utf8)
            rdnCount = pieces.count
        } else {
            pattern = Array(text.trimmingSpaces().lowercased().utf8)
            rdnCount = nil
        }
    }

    /// Whether a group with this normalised DN and cn matches.
    public func matches(groupDN: String, cn: String) -> Bool {
        guard let rdnCount else { return Self.glob(pattern, Array(cn.lowercased().utf8)) }
        // The first `rdnCount` RDNs of the DN, ASCII-lowercased (a normalised DN already is).
        var prefix: [UInt8] = []
        prefix.reserveCapacity(groupDN.utf8.count)
        var commas = 0
        var escaped = false
        for byte in groupDN.utf8 {
            if !escaped, byte == 0x2C {
                commas += 1
                if commas == rdnCount { break }
            }
            escaped = !escaped && byte == 0x5C
            prefix.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte)
        }
        guard commas + 1 >= rdnCount else { return false }
        return Self.glob(pattern, prefix)
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
    static func glob(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        let star = UInt8(ascii: "*")
        var p = 0, t = 0
        var lastStar: Int? = nil, mark = 0
        while t < text.count {
            if p < pattern.count, pattern[p] != star, pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == star {
                lastStar = p
                mark = t
                p += 1
            } else if let s = lastStar {
                p = s + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == star { p += 1 }
        return p == pattern.count
    }
}
