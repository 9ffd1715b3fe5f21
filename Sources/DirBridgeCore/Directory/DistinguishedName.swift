/// A distinguished name parsed per RFC 4514, comparable in normalised form.
///
/// Attribute types compare case-insensitively; values are unescaped (`\,` `\2c` `\+` …),
/// then compared case-insensitively with inner whitespace collapsed — what the schema says
/// for the naming attributes directories use (cn, ou, dc, o, l, uid …). So
/// `CN=A\,B,OU=X` and `cn=a\2cb,ou=x` are equal. Multi-valued RDNs (`cn=a+uid=b`) compare
/// regardless of the order of their parts.
public struct DistinguishedName: Sendable, Hashable, CustomStringConvertible {
    /// One `type=value` assertion of an RDN, value unescaped.
    public struct Assertion: Sendable, Hashable {
        /// The attribute type, lowercased (`cn`, `ou`, or an OID).
        public var type: String
        /// The value with escapes resolved, as written (case kept); for a BER value, `#` and its hex.
        public var value: String
        /// True when the value was written as `#` followed by hex (a BER encoding), kept verbatim.
        public var isBER: Bool = false
    }

    /// The RDNs, most specific first (`cn=…` before `dc=…`).
    public let rdns: [[Assertion]]
    /// The canonical text: lowercased, whitespace-collapsed values, RDN parts sorted, re-escaped.
    public let normalized: String

    /// Parses `text`; an empty string is the root DN (no RDNs).
    public init(_ text: String) throws(DistinguishedNameError) {
        var parser = DNParser(text)
        rdns = try parser.parse()
        normalized = Self.canonicalText(rdns)
    }

    private static func canonicalText(_ rdns: [[Assertion]]) -> String {
        var parts: [String] = []
        parts.reserveCapacity(rdns.count)
        for rdn in rdns {
            var pieces: [String] = rdn.map { (assertion: Assertion) -> String in
                assertion.type + "=" + (assertion.isBER ? assertion.value : escapeValue(foldValue(assertion.value)))
            }
            pieces.sort()
            parts.append(pieces.joined(separator: "+"))
        }
        return parts.joined(separator: ",")
    }

    /// Normalises DN text without keeping the parsed form.
    public static func normalize(_ text: String) throws(DistinguishedNameError) -> String {
        try DistinguishedName(text).normalized
    }

    public var description: String { normalized }

    /// A fast test that `text` is already in canonical form, so parsing can be skipped:
    /// plain ASCII, no capitals, no escapes, quotes, `+` or `;`, every RDN `type=value` with
    /// no space next to `,` or `=` and no double spaces. False means "parse to be sure".
    public static func isCanonical(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { isCanonical(utf8: $0) }
    }

    /// ``isCanonical(_:)`` of UTF-8 bytes; false for bytes that are not ASCII.
    static func isCanonical(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var previous: UInt8 = 0x2C
        var sawEquals = false
        let canonical: Bool = byteClasses.withUnsafeBufferPointer { classes in
            for byte in bytes {
                switch classes[Int(byte)] {
                case ByteClass.plain: break
                case ByteClass.space:
                    if previous == 0x2C || previous == 0x3D || previous == 0x20 { return false }
                case ByteClass.comma:
                    if previous == 0x20 || previous == 0x2C || !sawEquals { return false }
                    sawEquals = false
                case ByteClass.equals:
                    if previous == 0x20 || sawEquals { return false }
                    sawEquals = true
                default:
                    return false
                }
                previous = byte
            }
            return true
        }
        return canonical && !bytes.isEmpty && previous != 0x20 && sawEquals && previous != 0x3D
    }

    /// What a byte is to ``isCanonical(utf8:)``, looked up rather than tested against each
    /// range (a `switch` over the ranges compared every plain byte a dozen times).
    private enum ByteClass {
        static let plain: UInt8 = 0, space: UInt8 = 1, comma: UInt8 = 2, equals: UInt8 = 3, never: UInt8 = 4
    }

    private static let byteClasses: [UInt8] = (0...255).map { (value: Int) -> UInt8 in
        switch UInt8(value) {
        case 0x41...0x5A, 0x80...0xFF, 0x5C, 0x22, 0x2B, 0x3B, 0x23, 0x3C, 0x3E, 0x00...0x1F, 0x7F: ByteClass.never
        case 0x20: ByteClass.space
        case 0x2C: ByteClass.comma
        case 0x3D: ByteClass.equals
        default: ByteClass.plain
        }
    }

    /// The ``fingerprint(_:)`` of `bytes` when they are a DN in canonical form
    /// (``isCanonical(utf8:)``), nil otherwise.
    static func canonicalFingerprint(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64? {
        isCanonical(utf8: bytes) ? fingerprint(bytes) : nil
    }

    /// A 64-bit hash of `bytes`, eight at a time (a byte-at-a-time hash waits on a multiply per
    /// byte): to rule out a DN cheaply, never to tell two apart.
    static func fingerprint(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let multiplier: UInt64 = 0xff51_afd7_ed55_8ccd
        var hash: UInt64 = 0x9e37_79b9_7f4a_7c15 ^ UInt64(bytes.count)
        guard let base = bytes.baseAddress else { return hash }
        var offset = 0
        while offset + 8 <= bytes.count {
            hash = (hash ^ UnsafeRawPointer(base + offset).loadUnaligned(as: UInt64.self)) &* multiplier
            hash ^= hash >> 32
            offset += 8
        }
        if offset < bytes.count {
            var tail: UInt64 = 0
            for index in offset..<bytes.count { tail |= UInt64(base[index]) << UInt64(8 * (index - offset)) }
            hash = (hash ^ tail) &* multiplier
            hash ^= hash >> 32
        }
        return hash
    }

    /// ``fingerprint(_:)`` of a String's UTF-8 bytes.
    static func fingerprint(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { fingerprint($0) }
    }

    /// `text` in canonical form without parsing it when ``isCanonical(_:)`` says it already
    /// is; otherwise normalised; nil when it is not a DN.
    public static func canonical(_ text: String) -> String? {
        isCanonical(text) ? text : try? normalize(text)
    }

    public static func == (lhs: DistinguishedName, rhs: DistinguishedName) -> Bool { lhs.normalized == rhs.normalized }
    public func hash(into hasher: inout Hasher) { hasher.combine(normalized) }

    /// The value of the first (most specific) RDN's first part, e.g. `Sales` for `cn=Sales,ou=groups,…`.
    public var rdnValue: String? { rdns.first?.first?.value }

    /// The DN without its first RDN, or nil for the root.
    public var parent: DistinguishedName? {
        guard !rdns.isEmpty else { return nil }
        return DistinguishedName(rdns: Array(rdns.dropFirst()))
    }

    /// True when this DN equals `ancestor` or lies below it.
    public func isWithin(_ ancestor: DistinguishedName) -> Bool {
        if ancestor.normalized.isEmpty { return true }
        return normalized == ancestor.normalized || normalized.hasSuffix("," + ancestor.normalized)
    }

    private init(rdns: [[Assertion]]) {
        self.rdns = rdns
        normalized = Self.canonicalText(rdns)
    }

    /// Case-folds a value and collapses runs of whitespace (caseIgnoreMatch, RFC 4518 in short).
    static func foldValue(_ value: String) -> String {
        value.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    /// Escapes a value for DN text (RFC 4514 section 2.4). Works on Unicode scalars, as the
    /// parser reads bytes: a `,` followed by a combining mark is still a `,` to escape.
    public static func escapeValue(_ value: String) -> String {
        var out = String.UnicodeScalarView()
        let characters = Array(value.unicodeScalars)
        for (index, character) in characters.enumerated() {
            switch character {
            case ",", "+", "\"", "\\", "<", ">", ";", "=":
                out.append("\\"); out.append(character)
            case "\0":
                out.append(contentsOf: "\\00".unicodeScalars)
            case "#" where index == 0:
                out.append(contentsOf: "\\#".unicodeScalars)
            case " " where index == 0 || index == characters.count - 1:
                out.append(contentsOf: "\\ ".unicodeScalars)
            default:
                out.append(character)
            }
        }
        return String(out)
    }
}

/// A DN that does not follow RFC 4514, with the position of the problem.
public struct DistinguishedNameError: DirBridgeFailure, Equatable {
    public var text: String
    /// 1-based character offset in `text` where parsing stopped.
    public var offset: Int
    public var reason: String
    public var kind: FailureKind { .usage }
    public var description: String {
        "invalid DN \"\(text)\" at character \(offset): \(reason) (RFC 4514: type=value pairs joined by commas; escape , + \" \\ < > ; with a backslash)"
    }
}

private struct DNParser {
    let text: String
    let bytes: [UInt8]
    var position = 0

    init(_ text: String) {
        self.text = text
        bytes = Array(text.utf8)
    }

    mutating func parse() throws(DistinguishedNameError) -> [[DistinguishedName.Assertion]] {
        skipSpaces()
        if position == bytes.count { return [] }
        var rdns: [[DistinguishedName.Assertion]] = []
        var rdn: [DistinguishedName.Assertion] = []
        while true {
            rdn.append(try assertion())
            skipSpaces()
            if position == bytes.count {
                rdns.append(rdn)
                return rdns
            }
            switch bytes[position] {
            case UInt8(ascii: "+"):
                position += 1
            case UInt8(ascii: ","), UInt8(ascii: ";"):
                position += 1
                rdns.append(rdn)
                rdn = []
            default:
                throw fail("expected , or + after a value")
            }
        }
    }

    private mutating func assertion() throws(DistinguishedNameError) -> DistinguishedName.Assertion {
        skipSpaces()
        if position == bytes.count || [UInt8(ascii: ","), UInt8(ascii: "+"), UInt8(ascii: ";")].contains(bytes[position]) {
            throw fail("empty RDN")
        }
        let start = position
        while position < bytes.count, bytes[position] != UInt8(ascii: "=") {
            let byte = bytes[position]
            let isTypeChar = (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
            if !isTypeChar {
                if byte == UInt8(ascii: " ") { break }
                throw fail("unexpected character in attribute type")
            }
            position += 1
        }
        let type = String(decoding: bytes[start..<position], as: UTF8.self).lowercased()
        skipSpaces()
        guard !type.isEmpty else { throw fail("missing attribute type") }
        guard position < bytes.count, bytes[position] == UInt8(ascii: "=") else { throw fail("missing = after \(type)") }
        position += 1
        skipSpaces()
        let typeName = type.hasPrefix("oid.") ? String(type.dropFirst(4)) : type
        let isBER = position < bytes.count && bytes[position] == UInt8(ascii: "#")
        return DistinguishedName.Assertion(type: typeName, value: try value(), isBER: isBER)
    }

    private mutating func value() throws(DistinguishedNameError) -> String {
        if position < bytes.count, bytes[position] == UInt8(ascii: "#") {
            // A hex-encoded BER value: keep its text form, lowercased.
            let start = position
            position += 1
            while position < bytes.count, Hex.value(bytes[position]) != nil { position += 1 }
            if (position - start - 1) % 2 != 0 || position - start == 1 { throw fail("odd or empty hex string after #") }
            return String(decoding: bytes[start..<position], as: UTF8.self).lowercased()
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "\"") {
            position += 1
            var out: [UInt8] = []
            while position < bytes.count, bytes[position] != UInt8(ascii: "\"") {
                if bytes[position] == UInt8(ascii: "\\") { out += try escaped() } else { out.append(bytes[position]); position += 1 }
            }
            guard position < bytes.count else { throw fail("unterminated quoted value") }
            position += 1
            return String(decoding: out, as: UTF8.self)
        }
        var out: [UInt8] = []
        var trailingSpaces = 0
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ";") { break }
            if byte == UInt8(ascii: "\\") {
                out += try escaped()
                trailingSpaces = 0
                continue
            }
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">") || byte == 0 {
                throw fail("character \(Character(UnicodeScalar(byte))) must be escaped with a backslash")
            }
            trailingSpaces = byte == UInt8(ascii: " ") ? trailingSpaces + 1 : 0
            out.append(byte)
            position += 1
        }
        out.removeLast(trailingSpaces)
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func escaped() throws(DistinguishedNameError) -> [UInt8] {
        position += 1
        guard position < bytes.count else { throw fail("backslash at the end") }
        if position + 1 < bytes.count, let byte = Hex.byte(bytes[position], bytes[position + 1]) {
            position += 2
            return [byte]
        }
        let byte = bytes[position]
        let escapable = Array(" \"#+,;<=>\\".utf8)
        guard escapable.contains(byte) else { throw fail("\\ must be followed by two hex digits or one of , + \" \\ < > ; = # space") }
        position += 1
        return [byte]
    }

    private mutating func skipSpaces() {
        while position < bytes.count, bytes[position] == UInt8(ascii: " ") { position += 1 }
    }

    private func fail(_ reason: String) -> DistinguishedNameError {
        DistinguishedNameError(text: text, offset: min(position, bytes.count) + 1, reason: reason)
    }
}
