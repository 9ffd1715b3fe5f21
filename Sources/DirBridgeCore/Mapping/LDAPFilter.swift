/// An RFC 4515 LDAP search filter, parsed once and evaluated in memory on entries.
///
/// Used for `users.disabled` and for rules' `filter:`, so that one read of the directory
/// serves every rule. Example:
///
/// ```swift
/// let disabled = try LDAPFilter.parse("(userAccountControl:1.2.840.113556.1.4.803:=2)")
/// disabled.matches(entry)   // true for userAccountControl 514, false for 512
/// ```
///
/// Comparisons are case-insensitive. `>=` / `<=` compare numerically when both sides are
/// integers, otherwise as case-insensitive text. `~=` is treated as equality. Extensible
/// matches support the Active Directory bitwise rules `1.2.840.113556.1.4.803` (all bits set)
/// and `…804` (any bit set), and `(attr:=value)` as equality. Equality on a DN-valued
/// attribute also matches when both sides are the same DN spelled differently.
public indirect enum LDAPFilter: Sendable, Equatable, CustomStringConvertible {
    case and([LDAPFilter])
    case or([LDAPFilter])
    case not(LDAPFilter)
    /// `(attr=value)`; `value` is stored lowercased.
    case equality(attribute: String, value: String)
    /// `(attr=*)`.
    case present(attribute: String)
    /// `(attr=initial*any*…*final)`; pieces stored lowercased.
    case substrings(attribute: String, initial: String?, any: [String], final: String?)
    case greaterOrEqual(attribute: String, value: String)
    case lessOrEqual(attribute: String, value: String)
    /// `(attr~=value)`, evaluated as equality.
    case approx(attribute: String, value: String)
    /// `(attr:1.2.840.113556.1.4.803:=N)`: every bit of N is set in the value.
    case bitwiseAnd(attribute: String, mask: UInt64)
    /// `(attr:1.2.840.113556.1.4.804:=N)`: at least one bit of N is set in the value.
    case bitwiseOr(attribute: String, mask: UInt64)

    /// The matching rule OIDs of Active Directory's bitwise matches.
    public static let bitwiseAndRule = "1.2.840.113556.1.4.803"
    public static let bitwiseOrRule = "1.2.840.113556.1.4.804"

    /// Parses `text`; a filter without outer parentheses (`uid=jo`) is accepted as ldapsearch does.
    public static func parse(_ text: String) throws(LDAPFilterError) -> LDAPFilter {
        var parser = FilterParser(text: text)
        return try parser.parseWhole()
    }

    /// Checks the syntax of a filter the server evaluates (`users.filter`, `groups.filter`):
    /// any matching rule is accepted there, since the server, not dirbridge, applies it.
    static func checkServerSyntax(_ text: String) throws(LDAPFilterError) {
        var parser = FilterParser(text: text)
        parser.serverSide = true
        _ = try parser.parseWhole()
    }

    /// Whether `entry` satisfies the filter.
    public func matches(_ entry: EntryAttributes) -> Bool {
        switch self {
        case .and(let parts):
            return parts.allSatisfy { $0.matches(entry) }
        case .or(let parts):
            return parts.contains { $0.matches(entry) }
        case .not(let inner):
            return !inner.matches(entry)
        case .present(let attribute):
            return !(entry[attribute]?.isEmpty ?? true)
        case .equality(let attribute, let value), .approx(let attribute, let value):
            return Self.lowered(entry, attribute).contains { Self.equal($0, value) }
        case .substrings(let attribute, let initial, let any, let final):
            return Self.lowered(entry, attribute).contains {
                Self.substringsMatch($0, initial: initial, any: any, final: final)
            }
        case .greaterOrEqual(let attribute, let value):
            return Self.lowered(entry, attribute).contains { Self.compare($0, value) >= 0 }
        case .lessOrEqual(let attribute, let value):
            return Self.lowered(entry, attribute).contains { Self.compare($0, value) <= 0 }
        case .bitwiseAnd(let attribute, let mask):
            return Self.integers(entry, attribute).contains { $0 & mask == mask }
        case .bitwiseOr(let attribute, let mask):
            return Self.integers(entry, attribute).contains { $0 & mask != 0 }
        }
    }

    /// The lowercased attribute names the filter reads.
    public var attributes: [String] {
        var seen: [String] = []
        func visit(_ filter: LDAPFilter) {
            switch filter {
            case .and(let parts), .or(let parts): parts.forEach(visit)
            case .not(let inner): visit(inner)
            case .equality(let a, _), .present(let a), .substrings(let a, _, _, _), .greaterOrEqual(let a, _),
                 .lessOrEqual(let a, _), .approx(let a, _), .bitwiseAnd(let a, _), .bitwiseOr(let a, _):
                if !seen.contains(a) { seen.append(a) }
            }
        }
        visit(self)
        return seen
    }

    /// The filter in RFC 4515 text (lowercased values, escaped where needed).
    public var description: String {
        switch self {
        case .and(let parts): return "(&" + parts.map(\.description).joined() + ")"
        case .or(let parts): return "(|" + parts.map(\.description).joined() + ")"
        case .not(let inner): return "(!" + inner.description + ")"
        case .equality(let a, let v): return "(\(a)=\(LDAPFilterText.escape(v)))"
        case .present(let a): return "(\(a)=*)"
        case .substrings(let a, let initial, let any, let final):
            let middle = ([initial ?? ""] + any + [final ?? ""]).map(LDAPFilterText.escape).joined(separator: "*")
            return "(\(a)=\(middle))"
        case .greaterOrEqual(let a, let v): return "(\(a)>=\(LDAPFilterText.escape(v)))"
        case .lessOrEqual(let a, let v): return "(\(a)<=\(LDAPFilterText.escape(v)))"
        case .approx(let a, let v): return "(\(a)~=\(LDAPFilterText.escape(v)))"
        case .bitwiseAnd(let a, let m): return "(\(a):\(Self.bitwiseAndRule):=\(m))"
        case .bitwiseOr(let a, let m): return "(\(a):\(Self.bitwiseOrRule):=\(m))"
        }
    }

    // MARK: Evaluation helpers

    private static func lowered(_ entry: EntryAttributes, _ attribute: String) -> [String] {
        guard let raw = entry[attribute] else { return [] }
        return raw.map { String(decoding: $0, as: UTF8.self).lowercased() }
    }

    private static func integers(_ entry: EntryAttributes, _ attribute: String) -> [UInt64] {
        guard let raw = entry[attribute] else { return [] }
        return raw.compactMap { bytes in
            let text = String(decoding: bytes, as: UTF8.self).trimmingSpaces()
            if let unsigned = UInt64(text) { return unsigned }
            // AD stores some flag words as signed 32-bit integers.
            return Int64(text).map { UInt64(bitPattern: $0) }
        }
    }

    private static func equal(_ value: String, _ assertion: String) -> Bool {
        if value == assertion { return true }
        if value.contains("="), assertion.contains("="),
           let left = DistinguishedName.canonical(value), let right = DistinguishedName.canonical(assertion) {
            return left == right
        }
        return false
    }

    private static func compare(_ value: String, _ assertion: String) -> Int {
        if let left = Int64(value), let right = Int64(assertion) {
            return left < right ? -1 : (left == right ? 0 : 1)
        }
        return value < assertion ? -1 : (value == assertion ? 0 : 1)
    }

    private static func substringsMatch(_ value: String, initial: String?, any: [String], final: String?) -> Bool {
        var rest = Substring(value)
        if let initial {
            guard rest.hasPrefix(initial) else { return false }
            rest = rest.dropFirst(initial.count)
        }
        for piece in any {
            guard let range = rest.range(of: piece) else { return false }
            rest = rest[range.upperBound...]
        }
        if let final {
            return rest.hasSuffix(final)
        }
        return true
    }
}
