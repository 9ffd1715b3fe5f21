import Foundation

extension String {
    /// The text without leading and trailing ASCII spaces.
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }

    /// The same UTF-8 bytes, as the stores compare text (Swift's `==` holds an NFC spelling
    /// equal to its NFD one). Compared with memcmp where both strings hold their UTF-8 in one
    /// piece (native strings do; iterating both views byte by byte was a fifth of a 100k
    /// no-op plan), else by iterating.
    func hasSameUTF8(as other: String) -> Bool {
        other.utf8.withContiguousStorageIfAvailable { hasSameUTF8(asBytes: UnsafeRawBufferPointer($0)) }
            ?? utf8.elementsEqual(other.utf8)
    }

    /// Whether `bytes` are this string's UTF-8 bytes (see ``hasSameUTF8(as:)``).
    func hasSameUTF8(asBytes bytes: UnsafeRawBufferPointer) -> Bool {
        guard utf8.count == bytes.count else { return false }
        let compared = utf8.withContiguousStorageIfAvailable { mine in
            mine.isEmpty || memcmp(mine.baseAddress!, bytes.baseAddress!, mine.count) == 0
        }
        return compared ?? utf8.elementsEqual(bytes)
    }

    /// Feeds the string's UTF-8 bytes to `hasher`: the hash that goes with ``hasSameUTF8(as:)``.
    func hashUTF8(into hasher: inout Hasher) {
        if utf8.withContiguousStorageIfAvailable({ hasher.combine(bytes: UnsafeRawBufferPointer($0)) }) == nil {
            Array(utf8).withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    /// The first sixteen UTF-8 bytes as two big-endian numbers (zero-padded), when the whole
    /// string is ASCII; nil otherwise. Two ASCII strings whose prefixes differ compare as their
    /// prefixes do (Swift compares ASCII text byte by byte); a string with any other character
    /// has none, as normalisation could change its bytes (a combining accent after a letter).
    var asciiOrderPrefix: (UInt64, UInt64)? {
        var copy = self
        return copy.withUTF8 { bytes -> (UInt64, UInt64)? in
            var high: UInt64 = 0, low: UInt64 = 0
            for (offset, byte) in bytes.enumerated() {
                guard byte < 0x80 else { return nil }
                if offset < 8 {
                    high |= UInt64(byte) << (56 - 8 * UInt64(offset))
                } else if offset < 16 {
                    low |= UInt64(byte) << (56 - 8 * UInt64(offset - 8))
                }
            }
            return (high, low)
        }
    }

    /// Sorts positions of `strings` as `strings[a] < strings[b]` would, comparing the ASCII
    /// prefixes first (``asciiOrderPrefix``): a million emails took a comparison sort of
    /// Strings 1.2–1.6 s on one thread, most comparisons decided by their first bytes.
    static func orderedPositions(_ strings: [String]) -> [Int] {
        let prefixes = strings.map(\.asciiOrderPrefix)
        return strings.indices.sorted { a, b in
            if let x = prefixes[a], let y = prefixes[b], x != y { return x < y }
            return strings[a] < strings[b]
        }
    }
}
