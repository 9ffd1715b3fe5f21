/// A template that could not be compiled: what is wrong, where, and maybe a suggestion.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// 0-based character offset in the template text.
    public var offset: Int
    public var hint: String?

    public var description: String { message + (hint.map { " (\($0))" } ?? "") }
}

/// Parses a template's text into literal parts and placeholders.
struct TemplateParser {
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
