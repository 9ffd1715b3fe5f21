/// Builds LDAP filter text from values safely (RFC 4515 section 3).
///
/// Every value placed into a filter goes through ``escape(_:)``, so a value holding
/// `* ( ) \` or NUL matches itself literally instead of changing the filter.
public enum LDAPFilterText {
    /// Escapes a value for use inside a filter assertion: `*`→`\2a`, `(`→`\28`, `)`→`\29`, `\`→`\5c`, NUL→`\00`.
    public static func escape(_ value: String) -> String {
        escape(bytes: Array(value.utf8))
    }

    /// Escapes raw bytes (a binary value such as an `objectGUID`); bytes outside printable ASCII become `\xx` too.
    public static func escape(bytes: [UInt8], escapeNonASCII: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        let hex = Array("0123456789abcdef".utf8)
        for byte in bytes {
            let special = byte == 0x2A || byte == 0x28 || byte == 0x29 || byte == 0x5C || byte == 0x00
            if special || (escapeNonASCII && (byte < 0x20 || byte >= 0x7F)) {
                out += [0x5C, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `(attribute=value)` with the value escaped.
    public static func equality(_ attribute: String, _ value: String) -> String {
        "(\(attribute)=\(escape(value)))"
    }
}
