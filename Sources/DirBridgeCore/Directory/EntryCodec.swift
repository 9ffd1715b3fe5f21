import Foundation

/// A compact, binary-safe encoding of an entry: length-prefixed DN, attribute names and values.
enum EntryCodec {
    /// The DN, the number of attributes, then the attributes in name order, each as
    /// ``EntryAttributes`` holds it (so decoding takes them as they are).
    static func encode(_ entry: EntryAttributes) -> [UInt8] {
        let attributes = entry.encodedAttributes
        var ranges: [(name: UnsafeBufferPointer<UInt8>, range: Range<Int>)] = []
        var out: [UInt8] = []
        out.reserveCapacity(entry.dn.utf8.count + attributes.count + 8)
        LEB128.append(entry.dn.utf8, to: &out)
        attributes.withUnsafeBufferPointer { bytes in
            var start = 0
            EntryAttributes.walk(bytes) { name, _, _, end in
                ranges.append((name, start..<end))
                start = end
                return true
            }
            LEB128.append(ranges.count, to: &out)
            if zip(ranges, ranges.dropFirst()).contains(where: { !$0.name.lexicographicallyPrecedes($1.name) }) {
                ranges.sort { $0.name.lexicographicallyPrecedes($1.name) }
            }
            for (_, range) in ranges { out.append(contentsOf: bytes[range]) }
        }
        return out
    }

    static func decode(_ data: Data) -> EntryAttributes? {
        data.withUnsafeBytes { raw -> EntryAttributes? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var position = 0
            guard let dn = LEB128.chunk(bytes, at: &position), let attributes = LEB128.read(bytes, at: &position) else { return nil }
            let rest = UnsafeBufferPointer(rebasing: bytes[position...])
            var count = 0, end = 0
            EntryAttributes.walk(rest) { _, _, _, after in
                count += 1
                end = after
                return true
            }
            guard count == attributes, end == rest.count else { return nil }
            return EntryAttributes(dn: String(decoding: dn, as: UTF8.self), encodedAttributes: Array(rest))
        }
    }
}

/// Lengths as LEB128 (seven bits a byte, the lowest first, the high bit saying more follow):
/// the directory cache's encoded entries and the spooled cache rows.
enum LEB128 {
    static func append(_ value: Int, to out: inout [UInt8]) {
        var value = UInt64(value)
        while value >= 0x80 { out.append(UInt8(value & 0x7F) | 0x80); value >>= 7 }
        out.append(UInt8(value))
    }

    /// `bytes`' count, then the bytes.
    static func append(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        append(bytes.count, to: &out)
        out.append(contentsOf: bytes)
    }

    /// The length at `position`, advancing past it; nil when `bytes` ends first or it does not fit an Int.
    static func read(_ bytes: UnsafeBufferPointer<UInt8>, at position: inout Int) -> Int? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return Int(exactly: value) }
            shift += 7
        }
        return nil
    }

    /// The length-prefixed bytes at `position`, advancing past them; nil when cut short.
    static func chunk(_ bytes: UnsafeBufferPointer<UInt8>, at position: inout Int) -> UnsafeBufferPointer<UInt8>? {
        guard let length = read(bytes, at: &position), length <= bytes.count - position else { return nil }
        defer { position += length }
        return UnsafeBufferPointer(rebasing: bytes[position..<position + length])
    }
}
