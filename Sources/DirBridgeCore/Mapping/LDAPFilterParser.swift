/// A filter that could not be parsed: what is wrong and at which character.
public struct LDAPFilterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. "missing `)`".
    public var message: String
    /// 0-based character offset in the filter text.
    public var offset: Int

    public var description: String { "\(message) at character \(offset + 1) of the filter" }
}

/// Recursive-descent parser over the filter's UTF-8 bytes, for ``LDAPFilter/parse(_:)`` and
/// ``LDAPFilter/checkServerSyntax(_:)``.
struct FilterParser {
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
