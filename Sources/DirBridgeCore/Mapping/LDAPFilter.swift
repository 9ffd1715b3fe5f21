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
            return !(entry.values[attribute]?.isEmpty ?? true)
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
        guard let raw = entry.values[attribute] else { return [] }
        return raw.map { String(decoding: $0, as: UTF8.self).lowercased() }
    }

    private static func integers(_ entry: EntryAttributes, _ attribute: String) -> [UInt64] {
        guard let raw = entry.values[attribute] else { return [] }
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

/// A filter that could not be parsed: what is wrong and at which character.
public struct LDAPFilterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. "missing `)`".
    public var message: String
    /// 0-based character offset in the filter text.
    public var offset: Int

    public var description: String { "\(message) at character \(offset + 1) of the filter" }
}

/// Recursive-descent parser over the filter's UTF-8 bytes.
private struct FilterParser {
    let text: String
    let bytes: [UInt8]
    var i = 0
    /// Added to reported offsets when the parser wrapped a bare `attr=value` in parentheses.
    var shift = 0
    /// Accept every extensible matching rule (the server evaluates the filter, not dirbridge).
    var serverSide = false

    init(text: String) {
        self.text = text
        var bytes = Array(text.utf8)
        // Leading/trailing whitespace is tolerated.
        while bytes.last.map(Self.isSpace) == true { bytes.removeLast() }
        var lead = 0
        while lead < bytes.count, Self.isSpace(bytes[lead]) { lead += 1 }
        bytes.removeFirst(lead)
        shift = lead
        if !bytes.isEmpty, bytes[0] != UInt8(ascii: "(") {
            bytes = [UInt8(ascii: "(")] + bytes + [UInt8(ascii: ")")]
            shift -= 1
        }
        self.bytes = bytes
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    func fail(_ message: String, at position: Int? = nil) -> LDAPFilterError {
        let bytePosition = max(0, min((position ?? i), bytes.count))
        // Character offset in the original text: count non-continuation bytes.
        let prefix = bytes[0..<bytePosition]
        let chars = prefix.reduce(0) { $1 & 0xC0 == 0x80 ? $0 : $0 + 1 }
        return LDAPFilterError(message: message, offset: max(0, chars + shift))
    }

    mutating func parseWhole() throws(LDAPFilterError) -> LDAPFilter {
        guard !bytes.isEmpty else { throw fail("the filter is empty") }
        let filter = try parseFilter()
        guard i == bytes.count else { throw fail("unexpected text after the filter's closing `)`") }
        return filter
    }

    mutating func skipSpaces() {
        while i < bytes.count, Self.isSpace(bytes[i]) { i += 1 }
    }

    mutating func expect(_ c: Character) throws(LDAPFilterError) {
        guard i < bytes.count, bytes[i] == c.asciiValue! else {
            throw fail(i < bytes.count ? "expected `\(c)`" : "missing `\(c)` at the end of the filter")
        }
        i += 1
    }

    mutating func parseFilter() throws(LDAPFilterError) -> LDAPFilter {
        try expect("(")
        skipSpaces()
        guard i < bytes.count else { throw fail("missing `)` at the end of the filter") }
        let result: LDAPFilter
        switch bytes[i] {
        case UInt8(ascii: "&"):
            i += 1
            result = .and(try parseList("&"))
        case UInt8(ascii: "|"):
            i += 1
            result = .or(try parseList("|"))
        case UInt8(ascii: "!"):
            i += 1
            skipSpaces()
            result = .not(try parseFilter())
            skipSpaces()
        default:
            result = try parseItem()
        }
        try expect(")")
        return result
    }

    mutating func parseList(_ op: Character) throws(LDAPFilterError) -> [LDAPFilter] {
        var parts: [LDAPFilter] = []
        skipSpaces()
        while i < bytes.count, bytes[i] == UInt8(ascii: "(") {
            parts.append(try parseFilter())
            skipSpaces()
        }
        guard !parts.isEmpty else { throw fail("`\(op)` needs at least one filter in parentheses") }
        return parts
    }

    mutating func parseItem() throws(LDAPFilterError) -> LDAPFilter {
        let start = i
        while i < bytes.count, isAttributeByte(bytes[i]) { i += 1 }
        let attribute = String(decoding: bytes[start..<i], as: UTF8.self).lowercased()
        guard i < bytes.count else { throw fail("missing `)` at the end of the filter") }
        if bytes[i] == UInt8(ascii: ":") {
            return try parseExtensible(attribute: attribute, start: start)
        }
        guard !attribute.isEmpty, attribute.first!.isLetter || attribute.first!.isNumber else {
            throw fail("expected an attribute name", at: start)
        }
        let op: String
        switch bytes[i] {
        case UInt8(ascii: "="): op = "="; i += 1
        case UInt8(ascii: ">"), UInt8(ascii: "<"), UInt8(ascii: "~"):
            op = String(UnicodeScalar(bytes[i])) + "="
            guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "=") else {
                throw fail("`\(UnicodeScalar(bytes[i]))` must be followed by `=`")
            }
            i += 2
        default:
            throw fail("unexpected `\(UnicodeScalar(bytes[i]))` in attribute name `\(attribute)`; expected `=`, `>=`, `<=` or `~=`")
        }
        let pieces = try parseValue(allowStars: op == "=")
        if op != "=" {
            let value = pieces[0]
            switch op {
            case ">=": return .greaterOrEqual(attribute: attribute, value: value)
            case "<=": return .lessOrEqual(attribute: attribute, value: value)
            default: return .approx(attribute: attribute, value: value)
            }
        }
        if pieces.count == 1 { return .equality(attribute: attribute, value: pieces[0]) }
        if pieces.count == 2, pieces[0].isEmpty, pieces[1].isEmpty { return .present(attribute: attribute) }
        let middle = pieces.dropFirst().dropLast().map { $0 }
        if middle.contains(where: \.isEmpty) { throw fail("`**` in a substring filter") }
        return .substrings(
            attribute: attribute,
            initial: pieces.first!.isEmpty ? nil : pieces.first!,
            any: middle,
            final: pieces.last!.isEmpty ? nil : pieces.last!)
    }

    mutating func parseExtensible(attribute: String, start: Int) throws(LDAPFilterError) -> LDAPFilter {
        // attr[:dn][:rule]:=value
        guard !attribute.isEmpty else { throw fail("an extensible match needs an attribute name here", at: start) }
        var components: [String] = []
        while i < bytes.count, bytes[i] == UInt8(ascii: ":") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "=") { break }
            let componentStart = i
            while i < bytes.count, isAttributeByte(bytes[i]) { i += 1 }
            components.append(String(decoding: bytes[componentStart..<i], as: UTF8.self).lowercased())
        }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else { throw fail("expected `:=` in extensible match") }
        i += 1
        let ruleStart = start
        let value = try parseValue(allowStars: false)[0]
        if serverSide { return .equality(attribute: attribute, value: value) }
        if components.contains("dn") {
            throw fail("`:dn` extensible matches are not supported in memory", at: ruleStart)
        }
        switch components.last {
        case nil:
            return .equality(attribute: attribute, value: value)
        case LDAPFilter.bitwiseAndRule?, LDAPFilter.bitwiseOrRule?:
            guard let mask = UInt64(value.trimmingSpaces()) else {
                throw fail("the bitwise match needs a non-negative integer, found `\(value)`")
            }
            return components.last == LDAPFilter.bitwiseAndRule
                ? .bitwiseAnd(attribute: attribute, mask: mask) : .bitwiseOr(attribute: attribute, mask: mask)
        case "1.2.840.113556.1.4.1941"?:
            throw fail(
                "matching rule 1.2.840.113556.1.4.1941 (in chain) needs the server; use a `group:` rule with `groups.nested: true`",
                at: ruleStart)
        case let rule?:
            throw fail("unsupported matching rule `\(rule)`; supported: \(LDAPFilter.bitwiseAndRule), \(LDAPFilter.bitwiseOrRule)", at: ruleStart)
        }
    }

    func isAttributeByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: ";") || b == UInt8(ascii: "_")
    }

    /// The value up to the closing `)`, split at unescaped `*` when allowed, each piece unescaped and lowercased.
    mutating func parseValue(allowStars: Bool) throws(LDAPFilterError) -> [String] {
        var pieces: [[UInt8]] = [[]]
        while i < bytes.count, bytes[i] != UInt8(ascii: ")") {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "("):
                throw fail("unescaped `(` in a value; write it as `\\28`")
            case UInt8(ascii: "*"):
                guard allowStars else { throw fail("`*` is only allowed after `=`; write a literal `*` as `\\2a`") }
                pieces.append([])
                i += 1
            case UInt8(ascii: "\\"):
                guard i + 2 < bytes.count, let byte = Hex.byte(bytes[i + 1], bytes[i + 2]) else {
                    throw fail("`\\` must be followed by two hex digits, like `\\2a` or `\\29`")
                }
                pieces[pieces.count - 1].append(byte)
                i += 3
            default:
                pieces[pieces.count - 1].append(b)
                i += 1
            }
        }
        guard i < bytes.count else { throw fail("missing `)` at the end of the filter") }
        return pieces.map { String(decoding: $0, as: UTF8.self).lowercased() }
    }
}
