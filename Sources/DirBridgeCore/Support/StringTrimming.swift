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
        guard utf8.count == other.utf8.count else { return false }
        let compared = utf8.withContiguousStorageIfAvailable { x in
            other.utf8.withContiguousStorageIfAvailable { y in
                x.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0
            }
        }
        return (compared ?? nil) ?? utf8.elementsEqual(other.utf8)
    }

    /// Feeds the string's UTF-8 bytes to `hasher`: the hash that goes with ``hasSameUTF8(as:)``.
    func hashUTF8(into hasher: inout Hasher) {
        if utf8.withContiguousStorageIfAvailable({ hasher.combine(bytes: UnsafeRawBufferPointer($0)) }) == nil {
            Array(utf8).withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }
}
