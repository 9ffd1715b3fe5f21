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
            guard let raw = entry[attribute], let first = raw.first else {
                return filters.isEmpty ? "" : Self.apply(filters, to: [])
            }
            if filters.isEmpty {
                return convertsUUID ? TemplateFilter.uuidText(first) : Self.text(first)
            }
            if raw.count == 1 {
                // One value (the usual case): the filters one after the other, no arrays.
                var value = convertsUUID ? TemplateFilter.uuidText(first) : Self.text(first)
                for filter in filters { value = filter.apply(one: value) }
                return value
            }
            let values = convertsUUID ? raw.map(TemplateFilter.uuidText) : raw.map(Self.text)
            return Self.apply(filters, to: values)
        }

        /// A value as text, without NUL characters: no portal field holds one, and PostgreSQL's
        /// text and jsonb refuse them (both stores get the same value).
        static func text(_ bytes: ArraySlice<UInt8>) -> String {
            bytes.contains(0) ? String(decoding: bytes.lazy.filter { $0 != 0 }, as: UTF8.self) : String(decoding: bytes, as: UTF8.self)
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
