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
        case .first: return values.first.map { [$0] } ?? []
        case .last: return values.last.map { [$0] } ?? []
        case .join(let separator): return [values.joined(separator: separator)]
        case .defaultValue(let text): return (values.first ?? "").isEmpty ? [text] : values
        case .lower, .upper, .trim, .extension, .e164, .rdn, .uuid, .replace, .trimPrefix: return values.map(apply(one:))
        }
    }

    /// ``apply(_:)`` of a single value, without arrays: the same result as `apply([value])`'s
    /// one element (`first`, `last` and `join` keep a lone value as it is).
    func apply(one value: String) -> String {
        switch self {
        // Itself (no copy) when it has no letter to lower: emails mostly are lowercase already.
        case .lower: value.lowercasedSharingStorage
        case .upper: value.uppercased()
        case .trim: Self.trimmed(value)
        case .first, .last, .join: value
        case .defaultValue(let text): value.isEmpty ? text : value
        case .extension: Self.phoneExtension(value)
        case .e164: Self.e164(value)
        case .rdn: Self.firstRDNValue(value)
        case .uuid: Self.uuidText(Array(value.utf8))
        case .replace(let target, let replacement): target.isEmpty ? value : value.replacing(target, with: replacement)
        case .trimPrefix(let prefix): value.lowercased().hasPrefix(prefix.lowercased()) ? String(value.dropFirst(prefix.count)) : value
        }
    }

    static func trimmed(_ text: String) -> String {
        // Most values have nothing to trim: a printable ASCII byte at each end ends the question.
        if let first = text.utf8.first, let last = text.utf8.last, (0x21...0x7E).contains(first), (0x21...0x7E).contains(last) {
            return text
        }
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
    static func uuidText(_ value: some Collection<UInt8>) -> String {
        if value.count == 16 {
            let bytes = Array(value)
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
        let text = String(decoding: value, as: UTF8.self)
        return text.count == 36 ? text.lowercased() : text
    }

    private static let hexDigits = Array("0123456789abcdef")
}
