/// An RFC 4514 distinguished name that could not be parsed: what is wrong and where.
struct MappingDNError: Error, Equatable {
    /// What is wrong with the DN.
    var message: String
    /// 0-based character offset in the DN text.
    var offset: Int
}

/// DN normalisation for the mapping layer: the one place mapping code compares DNs.
///
/// `normalize` parses an RFC 4514 string and re-serialises it canonically so that two
/// spellings of the same DN compare equal: `CN=Sales Leads+uid=x, OU=Groups,DC=Acme`
/// becomes `cn=sales leads+uid=x,ou=groups,dc=acme`. Kept in this one file so it can later
/// be replaced by the directory layer's shared DN type.
enum MappingDN {
    /// Attribute types lowercased; values unescaped, lowercased, inner whitespace collapsed,
    /// then re-escaped; AVAs of a multi-valued RDN sorted; RDNs joined with `,`.
    /// The empty string is the root DN and normalises to itself.
    static func normalize(_ dn: String) throws(MappingDNError) -> String {
        let rdns = try parse(dn)
        return rdns.map { rdn in
            rdn.sorted { ($0.type, $0.value) < ($1.type, $1.value) }
                .map { "\($0.type)=\($0.isHex ? $0.value : escape($0.value))" }
                .joined(separator: "+")
        }.joined(separator: ",")
    }

    /// A cheap test that `dn` may already be normalised: no ASCII capitals and no space next to
    /// `,` `=` `+` or at either end. When false, `normalize` is needed before comparing.
    static func mayBeNormalized(_ dn: String) -> Bool {
        var previous: UInt8 = 0x2C
        for byte in dn.utf8 {
            if byte >= 0x41 && byte <= 0x5A { return false }
            if byte == 0x20, previous == 0x2C || previous == 0x3D || previous == 0x2B || previous == 0x20 { return false }
            if previous == 0x20, byte == 0x2C || byte == 0x3D || byte == 0x2B { return false }
            previous = byte
        }
        return previous != 0x20
    }

    private struct AVA {
        var type: String
        var value: String
        /// A `#hex` BER value, kept verbatim (lowercased) and never re-escaped.
        var isHex = false
    }

    private static func parse(_ dn: String) throws(MappingDNError) -> [[AVA]] {
        let chars = Array(dn)
        if chars.allSatisfy(\.isWhitespace) { return [] }
        var rdns: [[AVA]] = []
        var current: [AVA] = []
        var i = 0
        while true {
            // Attribute type.
            while i < chars.count, chars[i] == " " { i += 1 }
            let typeStart = i
            while i < chars.count, chars[i] != "=", chars[i] != ",", chars[i] != "+" { i += 1 }
            let type = String(chars[typeStart..<i]).trimmingSpaces().lowercased()
            guard i < chars.count, chars[i] == "=" else {
                if type.isEmpty {
                    throw MappingDNError(message: "empty RDN", offset: typeStart)
                }
                throw MappingDNError(message: "`\(type)` has no `=value`", offset: typeStart)
            }
            guard isValidType(type) else {
                throw MappingDNError(
                    message: type.isEmpty ? "missing attribute type before `=`" : "invalid attribute type `\(type)`",
                    offset: typeStart)
            }
            i += 1
            // Attribute value: bytes, with escapes resolved.
            while i < chars.count, chars[i] == " " { i += 1 }
            var bytes: [UInt8] = []
            var trailingUnescapedSpaces = 0
            var isHex = false
            if i < chars.count, chars[i] == "#" {
                let start = i
                i += 1
                while i < chars.count, chars[i] != ",", chars[i] != "+", chars[i] != " " { i += 1 }
                let hex = String(chars[start..<i])
                guard hex.count > 1, hex.count % 2 == 1, hex.dropFirst().allSatisfy(\.isHexDigit) else {
                    throw MappingDNError(message: "invalid hex value `\(hex)`", offset: start)
                }
                bytes = Array(hex.lowercased().utf8)
                isHex = true
                while i < chars.count, chars[i] == " " { i += 1 }
            } else {
                while i < chars.count, chars[i] != ",", chars[i] != "+" {
                    let c = chars[i]
                    if c == "\\" {
                        trailingUnescapedSpaces = 0
                        guard i + 1 < chars.count else {
                            throw MappingDNError(message: "a `\\` ends the DN", offset: i)
                        }
                        let next = chars[i + 1]
                        if next.isHexDigit {
                            guard i + 2 < chars.count, chars[i + 2].isHexDigit,
                                  let byte = UInt8(String([next, chars[i + 2]]), radix: 16)
                            else {
                                throw MappingDNError(message: "`\\` must be followed by two hex digits or a special character", offset: i)
                            }
                            bytes.append(byte)
                            i += 3
                        } else if "\\\"+,;<>#= ".contains(next) {
                            bytes.append(contentsOf: Array(String(next).utf8))
                            i += 2
                        } else {
                            throw MappingDNError(message: "invalid escape `\\\(next)`", offset: i)
                        }
                        continue
                    }
                    if c == " " { trailingUnescapedSpaces += 1 } else { trailingUnescapedSpaces = 0 }
                    bytes.append(contentsOf: Array(String(c).utf8))
                    i += 1
                }
                bytes.removeLast(trailingUnescapedSpaces)
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw MappingDNError(message: "the value of `\(type)` is not valid UTF-8", offset: typeStart)
            }
            current.append(AVA(type: type, value: collapse(text.lowercased()), isHex: isHex))
            if i >= chars.count {
                rdns.append(current)
                return rdns
            }
            if chars[i] == "," {
                rdns.append(current)
                current = []
            }
            i += 1
            if i >= chars.count {
                throw MappingDNError(message: "the DN ends with `\(chars[i - 1])`", offset: i - 1)
            }
        }
    }

    private static func isValidType(_ type: String) -> Bool {
        func isDigit(_ c: Character) -> Bool { ("0"..."9").contains(c) }
        func isNumericOID(_ text: Substring) -> Bool {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            return parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(isDigit) }
        }
        guard let first = type.first else { return false }
        if isDigit(first) { return isNumericOID(Substring(type)) }
        if type.hasPrefix("oid.") { return isNumericOID(type.dropFirst(4)) }
        return ("a"..."z").contains(first)
            && type.allSatisfy { ("a"..."z").contains($0) || isDigit($0) || $0 == "-" }
    }

    private static func collapse(_ text: String) -> String {
        text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// RFC 4514 section 2.4 escaping of a value.
    static func escape(_ value: String) -> String {
        var out = ""
        let chars = Array(value)
        for (index, c) in chars.enumerated() {
            switch c {
            case "\\", "\"", "+", ",", ";", "<", ">":
                out.append("\\")
                out.append(c)
            case "#" where index == 0:
                out.append("\\#")
            case " " where index == 0 || index == chars.count - 1:
                out.append("\\ ")
            case "\u{0}":
                out.append("\\00")
            default:
                out.append(c)
            }
        }
        return out
    }
}

extension String {
    /// The text without leading and trailing ASCII spaces.
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
