/// Hexadecimal digits as they appear in escaped text: `\2a` in a filter value, `\2C` or a
/// `#0403…` BER value in a DN.
///
/// ```swift
/// Hex.byte(UInt8(ascii: "2"), UInt8(ascii: "a"))  // 0x2A
/// Hex.value(UInt8(ascii: "g"))                     // nil
/// ```
enum Hex {
    /// The value of one ASCII hex digit (`0`–`9`, `a`–`f`, `A`–`F`); nil for any other byte.
    static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: digit - 0x30
        case 0x41...0x46: digit - 0x41 + 10
        case 0x61...0x66: digit - 0x61 + 10
        default: nil
        }
    }

    /// The byte that two hex digits stand for (`2`, `a` → 0x2A); nil unless both are hex digits.
    static func byte(_ high: UInt8, _ low: UInt8) -> UInt8? {
        guard let high = value(high), let low = value(low) else { return nil }
        return high << 4 | low
    }

    /// `bytes` as lowercase hex digits, two per byte.
    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
