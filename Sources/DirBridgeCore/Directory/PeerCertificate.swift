internal import CLDAP
import Foundation

extension DirectoryConnection {
    /// The server certificate's expiry (`notAfter`), on a TLS connection (ldaps or StartTLS);
    /// nil on a plain connection or when libldap cannot hand the certificate over.
    public func peerCertificateExpiry() -> Date? {
        var certificate = berval(bv_len: 0, bv_val: nil)
        guard ldap_get_option(handle, LDAP_OPT_X_TLS_PEERCERT, &certificate) == LDAP_OPT_SUCCESS, let bytes = certificate.bv_val else { return nil }
        defer { ber_memfree(bytes) }
        let der = Array(UnsafeRawBufferPointer(start: bytes, count: Int(certificate.bv_len)))
        return X509Validity.notAfter(der)
    }
}

/// Just enough DER (X.690) to find an X.509 certificate's `notAfter` (RFC 5280 4.1.2.5):
/// Certificate → TBSCertificate → [version] serial signature issuer **validity** ….
enum X509Validity {
    static func notAfter(_ der: [UInt8]) -> Date? {
        guard let certificate = element(der, at: 0), certificate.tag == 0x30,
              let tbs = element(der, at: certificate.contentStart), tbs.tag == 0x30 else { return nil }
        var position = tbs.contentStart
        var fields: [(tag: UInt8, contentStart: Int, end: Int)] = []
        while position < tbs.end, fields.count < 6, let field = element(der, at: position) {
            fields.append(field)
            position = field.end
        }
        // Skip the optional [0] version.
        if fields.first?.tag == 0xA0 { fields.removeFirst() }
        guard fields.count >= 4, fields[3].tag == 0x30,
              let notBefore = element(der, at: fields[3].contentStart),
              let notAfter = element(der, at: notBefore.end) else { return nil }
        let text = String(decoding: der[notAfter.contentStart..<notAfter.end], as: UTF8.self)
        return time(text, generalized: notAfter.tag == 0x18)
    }

    /// One TLV at `offset`: its tag, where its content starts, and where it ends.
    private static func element(_ der: [UInt8], at offset: Int) -> (tag: UInt8, contentStart: Int, end: Int)? {
        guard offset + 1 < der.count else { return nil }
        let tag = der[offset]
        var length = Int(der[offset + 1])
        var start = offset + 2
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count > 0, count <= 4, start + count <= der.count else { return nil }
            length = der[start..<start + count].reduce(0) { $0 << 8 | Int($1) }
            start += count
        }
        guard start + length <= der.count else { return nil }
        return (tag, start, start + length)
    }

    /// UTCTime `YYMMDDHHMMSSZ` (years 1950–2049) or GeneralizedTime `YYYYMMDDHHMMSSZ`.
    static func time(_ text: String, generalized: Bool) -> Date? {
        var digits = text.hasSuffix("Z") ? String(text.dropLast()) : text
        if !generalized {
            guard let year = Int(digits.prefix(2)) else { return nil }
            digits = (year < 50 ? "20" : "19") + digits
        }
        guard digits.count >= 14, digits.allSatisfy(\.isNumber) else { return nil }
        var components = DateComponents()
        components.timeZone = TimeZone(identifier: "UTC")
        let value = { (from: Int, length: Int) in Int(digits.dropFirst(from).prefix(length))! }
        (components.year, components.month, components.day) = (value(0, 4), value(4, 2), value(6, 2))
        (components.hour, components.minute, components.second) = (value(8, 2), value(10, 2), value(12, 2))
        return Calendar(identifier: .gregorian).date(from: components)
    }
}
