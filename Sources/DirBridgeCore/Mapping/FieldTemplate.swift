/// A field template compiled once at load time and rendered for every entry.
///
/// Written in a mapping as a bare attribute name (`givenName`) or as text with placeholders
/// (`"{givenName} {sn}"`, `"{mail | lower | trim}"`). Each placeholder reads one attribute and
/// pipes its values through filters; see ``TemplateFilter``. A multi-valued attribute yields its
/// first value unless `join` or `last` says otherwise; a missing attribute yields "".
/// `{{` and `}}` write literal braces. Rendering does no parsing and no regular expressions.
public struct FieldTemplate: Sendable, Equatable, CustomStringConvertible {
    /// The template as written in the mapping file.
    public let source: String
    let parts: [Part]

    enum Part: Sendable, Equatable {
        case literal(String)
        case placeholder(Placeholder)
    }

    struct Placeholder: Sendable, Equatable {
        /// Lowercased attribute name.
        var attribute: String
        /// Filters applied to the text values, in order (`uuid` removed, see `convertsUUID`).
        var filters: [TemplateFilter]
        /// Whether raw values are first turned into UUID text (the `uuid` filter).
        var convertsUUID: Bool

        func render(_ entry: EntryAttributes) -> String {
            guard let raw = entry.values[attribute], !raw.isEmpty else {
                return filters.isEmpty ? "" : Self.apply(filters, to: [])
            }
            if filters.isEmpty {
                return convertsUUID ? TemplateFilter.uuidText(raw[0]) : String(decoding: raw[0], as: UTF8.self)
            }
            let values = convertsUUID
                ? raw.map(TemplateFilter.uuidText)
                : raw.map { String(decoding: $0, as: UTF8.self) }
            return Self.apply(filters, to: values)
        }

        static func apply(_ filters: [TemplateFilter], to values: [String]) -> String {
            var values = values
            for filter in filters { values = filter.apply(values) }
            return values.first ?? ""
        }

        /// Whether this placeholder renders "" for some entry of a matched group
        /// (`cn` is always present on a group; `default("x")` fills a gap).
        var mayRenderEmpty: Bool {
            var nonEmpty = attribute == "cn"
            for filter in filters {
                switch filter {
                case .defaultValue(let text): if !text.allSatisfy(\.isWhitespace) { nonEmpty = true }
                case .lower, .upper, .first, .last, .join, .rdn, .trim, .replace, .trimPrefix: break
                case .extension, .e164, .uuid: nonEmpty = false
                }
            }
            return !nonEmpty
        }
    }

    /// Renders the template for `entry`.
    public func render(_ entry: EntryAttributes) -> String {
        if parts.count == 1 {
            switch parts[0] {
            case .placeholder(let placeholder): return placeholder.render(entry)
            case .literal(let text): return text
            }
        }
        var out = ""
        for part in parts {
            switch part {
            case .literal(let text): out += text
            case .placeholder(let placeholder): out += placeholder.render(entry)
            }
        }
        return out
    }

    /// The lowercased attributes the template reads, in order of appearance.
    public var attributes: [String] {
        var seen: [String] = []
        for case .placeholder(let placeholder) in parts where !seen.contains(placeholder.attribute) {
            seen.append(placeholder.attribute)
        }
        return seen
    }

    /// Whether the template has no placeholder at all.
    public var isConstant: Bool { attributes.isEmpty }

    /// Whether the template can render "" (all its text is blank and every placeholder may be empty).
    var mayRenderEmpty: Bool {
        var placeholders: [Placeholder] = []
        for part in parts {
            switch part {
            case .literal(let text): if !text.allSatisfy(\.isWhitespace) { return false }
            case .placeholder(let placeholder): placeholders.append(placeholder)
            }
        }
        return placeholders.allSatisfy(\.mayRenderEmpty)
    }

    public var description: String { source }

    /// Compiles `source`. With `bareNameIsAttribute` (portal fields), a lone word such as
    /// `givenName` reads that attribute; otherwise (a `user_group` name) it is literal text.
    public static func compile(_ source: String, bareNameIsAttribute: Bool) throws(TemplateError) -> FieldTemplate {
        if bareNameIsAttribute, isAttributeName(source.trimmingSpaces()) {
            let name = source.trimmingSpaces().lowercased()
            return FieldTemplate(
                source: source, parts: [.placeholder(Placeholder(attribute: name, filters: [], convertsUUID: false))])
        }
        var parser = TemplateParser(chars: Array(source))
        return FieldTemplate(source: source, parts: try parser.parse())
    }

    static func isAttributeName(_ text: String) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }
}

/// A template that could not be compiled: what is wrong, where, and maybe a suggestion.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// 0-based character offset in the template text.
    public var offset: Int
    public var hint: String?

    public var description: String { message + (hint.map { " (\($0))" } ?? "") }
}

/// The fixed set of template filters, applied left to right after `|`.
///
/// | filter | effect |
/// | --- | --- |
/// | `lower`, `upper` | case |
/// | `trim` | strip leading/trailing whitespace |
/// | `first`, `last` | pick one value of a multi-valued attribute |
/// | `join(", ")` | all values joined by the separator (`join` alone: `", "`) |
/// | `default("x")` | `x` when the value is empty or missing |
/// | `extension` | digits after `x`, `ext`, `ext.` or `extension` in a phone number |
/// | `e164` | `+` and digits only, without the extension |
/// | `rdn` | the value of a DN's first RDN (`cn=Sales,ou=g` → `Sales`) |
/// | `uuid` | 16 raw bytes (AD `objectGUID` byte order) → lowercase UUID text |
/// | `replace("a", "b")` | every `a` replaced by `b` |
/// | `trimprefix("p")` | drop a leading `p`, ignoring case |
public enum TemplateFilter: Sendable, Equatable {
    case lower, upper, trim, first, last
    case join(String)
    case defaultValue(String)
    case `extension`, e164, rdn, uuid
    case replace(String, String)
    case trimPrefix(String)

    /// The names a template may use.
    public static let names = [
        "lower", "upper", "trim", "first", "last", "join", "default", "extension", "e164", "rdn", "uuid",
        "replace", "trimprefix",
    ]

    func apply(_ values: [String]) -> [String] {
        switch self {
        case .lower: return values.map { $0.lowercased() }
        case .upper: return values.map { $0.uppercased() }
        case .trim: return values.map { Self.trimmed($0) }
        case .first: return values.first.map { [$0] } ?? []
        case .last: return values.last.map { [$0] } ?? []
        case .join(let separator): return [values.joined(separator: separator)]
        case .defaultValue(let text): return (values.first ?? "").isEmpty ? [text] : values
        case .extension: return values.map(Self.phoneExtension)
        case .e164: return values.map(Self.e164)
        case .rdn: return values.map(Self.firstRDNValue)
        case .uuid: return values.map { Self.uuidText(Array($0.utf8)) }
        case .replace(let target, let replacement):
            return target.isEmpty ? values : values.map { $0.replacing(target, with: replacement) }
        case .trimPrefix(let prefix):
            return values.map { $0.lowercased().hasPrefix(prefix.lowercased()) ? String($0.dropFirst(prefix.count)) : $0 }
        }
    }

    static func trimmed(_ text: String) -> String {
        var s = Substring(text)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }

    /// `+1 555 0100 x1234` → `1234`; "" when the number has no extension.
    static func phoneExtension(_ phone: String) -> String {
        let bytes = Array(phone.utf8).map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        var i = 0
        while i < bytes.count {
            var j: Int? = nil
            for marker in extensionMarkers where j == nil {
                if i + marker.count <= bytes.count, bytes[i..<(i + marker.count)].elementsEqual(marker) {
                    j = i + marker.count
                }
            }
            if var k = j {
                while k < bytes.count, bytes[k] == 0x20 || bytes[k] == 0x3A || bytes[k] == 0x2E { k += 1 }
                let digitsStart = k
                while k < bytes.count, bytes[k] >= 0x30, bytes[k] <= 0x39 { k += 1 }
                if k > digitsStart { return String(decoding: bytes[digitsStart..<k], as: UTF8.self) }
            }
            i += 1
        }
        return ""
    }

    private static let extensionMarkers: [[UInt8]] = ["extension", "ext.", "ext", "x"].map { Array($0.utf8) }

    /// `+1 (555) 010-0100 x12` → `+15550100100`: leading `+` kept, separators and extension dropped.
    static func e164(_ phone: String) -> String {
        let text = trimmed(phone)
        var out = text.hasPrefix("+") ? "+" : ""
        for c in text {
            if c.isLetter || c == "#" || c == ";" || c == "," { break }
            if c.isASCII, c.isNumber { out.append(c) }
        }
        return out == "+" ? "" : out
    }

    /// The value of the first RDN of a DN, unescaped: `cn=Sales\, EMEA,ou=g` → `Sales, EMEA`.
    static func firstRDNValue(_ dn: String) -> String {
        let chars = Array(dn)
        guard let equals = chars.firstIndex(of: "=") else { return dn }
        var bytes: [UInt8] = []
        var i = equals + 1
        while i < chars.count, chars[i] != ",", chars[i] != "+" {
            if chars[i] == "\\", i + 1 < chars.count {
                if i + 2 < chars.count, let high = chars[i + 1].asciiValue, let low = chars[i + 2].asciiValue,
                   let byte = Hex.byte(high, low) {
                    bytes.append(byte)
                    i += 3
                } else {
                    bytes.append(contentsOf: Array(String(chars[i + 1]).utf8))
                    i += 2
                }
                continue
            }
            bytes.append(contentsOf: Array(String(chars[i]).utf8))
            i += 1
        }
        return trimmed(String(decoding: bytes, as: UTF8.self))
    }

    /// 16 raw bytes in Active Directory `objectGUID` order (first three fields little-endian)
    /// → canonical lowercase UUID text; a value that already is 36-character UUID text is
    /// lowercased; anything else is returned as UTF-8 text.
    static func uuidText(_ bytes: [UInt8]) -> String {
        if bytes.count == 16 {
            let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
            var out = ""
            out.reserveCapacity(36)
            for (position, index) in order.enumerated() {
                if position == 4 || position == 6 || position == 8 || position == 10 { out.append("-") }
                let byte = bytes[index]
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
            return out
        }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.count == 36 ? text.lowercased() : text
    }

    private static let hexDigits = Array("0123456789abcdef")
}

/// Parses a template's text into literal parts and placeholders.
private struct TemplateParser {
    let chars: [Character]
    var i = 0

    func fail(_ message: String, at position: Int? = nil, hint: String? = nil) -> TemplateError {
        TemplateError(message: message, offset: position ?? i, hint: hint)
    }

    mutating func parse() throws(TemplateError) -> [FieldTemplate.Part] {
        var parts: [FieldTemplate.Part] = []
        var literal = ""
        while i < chars.count {
            let c = chars[i]
            if c == "{", i + 1 < chars.count, chars[i + 1] == "{" {
                literal.append("{")
                i += 2
            } else if c == "}", i + 1 < chars.count, chars[i + 1] == "}" {
                literal.append("}")
                i += 2
            } else if c == "{" {
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = ""
                i += 1
                parts.append(.placeholder(try parsePlaceholder(start: i - 1)))
            } else if c == "}" {
                throw fail("unmatched `}`; write `}}` for a literal brace")
            } else {
                literal.append(c)
                i += 1
            }
        }
        if !literal.isEmpty || parts.isEmpty { parts.append(.literal(literal)) }
        return parts
    }

    mutating func skipSpaces() {
        while i < chars.count, chars[i] == " " { i += 1 }
    }

    mutating func word() -> String {
        let start = i
        while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "-" || chars[i] == "_" || chars[i] == ";" {
            i += 1
        }
        return String(chars[start..<i])
    }

    mutating func parsePlaceholder(start: Int) throws(TemplateError) -> FieldTemplate.Placeholder {
        skipSpaces()
        let attributeStart = i
        let attribute = word()
        guard !attribute.isEmpty else {
            if i >= chars.count { throw fail("unclosed `{`", at: start) }
            throw fail(chars[i] == "}" ? "empty placeholder `{}`" : "expected an attribute name after `{`", at: attributeStart)
        }
        var filters: [TemplateFilter] = []
        var convertsUUID = false
        skipSpaces()
        while i < chars.count, chars[i] == "|" {
            i += 1
            skipSpaces()
            let nameStart = i
            let name = word().lowercased()
            let arguments = try parseArguments()
            let filter = try makeFilter(name, arguments, at: nameStart)
            if filter == .uuid {
                guard filters.allSatisfy({ $0 == .first || $0 == .last }) else {
                    throw fail("`uuid` reads the raw value: put it first, or after `first` / `last`", at: nameStart)
                }
                convertsUUID = true
            } else {
                filters.append(filter)
            }
            skipSpaces()
        }
        guard i < chars.count else { throw fail("unclosed `{`; add `}`", at: start) }
        guard chars[i] == "}" else {
            throw fail("unexpected `\(chars[i])` in placeholder; expected `|` or `}`")
        }
        i += 1
        return FieldTemplate.Placeholder(attribute: attribute.lowercased(), filters: filters, convertsUUID: convertsUUID)
    }

    mutating func parseArguments() throws(TemplateError) -> [String]? {
        skipSpaces()
        guard i < chars.count, chars[i] == "(" else { return nil }
        i += 1
        var arguments: [String] = []
        skipSpaces()
        if i < chars.count, chars[i] == ")" {
            i += 1
            return arguments
        }
        while true {
            skipSpaces()
            guard i < chars.count, chars[i] == "\"" else { throw fail("expected a quoted argument like \"text\"") }
            let quote = i
            i += 1
            var text = ""
            while i < chars.count, chars[i] != "\"" {
                if chars[i] == "\\", i + 1 < chars.count {
                    text.append(chars[i + 1])
                    i += 2
                } else {
                    text.append(chars[i])
                    i += 1
                }
            }
            guard i < chars.count else { throw fail("unclosed `\"`", at: quote) }
            i += 1
            arguments.append(text)
            skipSpaces()
            guard i < chars.count else { throw fail("missing `)`") }
            if chars[i] == ")" {
                i += 1
                return arguments
            }
            guard chars[i] == "," else { throw fail("expected `,` or `)` between arguments") }
            i += 1
        }
    }

    func makeFilter(_ name: String, _ arguments: [String]?, at position: Int) throws(TemplateError) -> TemplateFilter {
        func none(_ filter: TemplateFilter) throws(TemplateError) -> TemplateFilter {
            guard arguments == nil || arguments!.isEmpty else {
                throw fail("`\(name)` takes no argument", at: position)
            }
            return filter
        }
        func one(_ usage: String) throws(TemplateError) -> String {
            guard let arguments, arguments.count == 1 else {
                throw fail("`\(name)` takes one argument: \(usage)", at: position)
            }
            return arguments[0]
        }
        switch name {
        case "lower": return try none(.lower)
        case "upper": return try none(.upper)
        case "trim": return try none(.trim)
        case "first": return try none(.first)
        case "last": return try none(.last)
        case "extension": return try none(.extension)
        case "e164": return try none(.e164)
        case "rdn": return try none(.rdn)
        case "uuid": return try none(.uuid)
        case "join": return .join(arguments == nil ? ", " : try one(#"join(", ")"#))
        case "default": return .defaultValue(try one(#"default("none")"#))
        case "trimprefix": return .trimPrefix(try one(#"trimprefix("dept-")"#))
        case "replace":
            guard let arguments, arguments.count == 2 else {
                throw fail(#"`replace` takes two arguments: replace("from", "to")"#, at: position)
            }
            return .replace(arguments[0], arguments[1])
        case "":
            throw fail("expected a filter name after `|`", at: position)
        default:
            throw fail(
                "unknown template filter `\(name)`", at: position,
                hint: Suggestions.hint(for: name, in: TemplateFilter.names)
                    ?? "filters: " + TemplateFilter.names.joined(separator: ", "))
        }
    }
}
