import Foundation

/// A compact, binary-safe encoding of an entry: length-prefixed DN, attribute names and values.
enum EntryCodec {
    static func encode(_ entry: EntryAttributes) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        func put(_ count: Int) { LEB128.append(count, to: &out) }
        func put(bytes: some Collection<UInt8>) { LEB128.append(bytes, to: &out) }
        put(bytes: entry.dn.utf8)
        put(entry.values.count)
        for (name, values) in entry.values.sorted(by: { $0.key < $1.key }) {
            put(bytes: name.utf8)
            put(values.count)
            for value in values { put(bytes: value) }
        }
        return out
    }

    static func decode(_ data: Data) -> EntryAttributes? {
        data.withUnsafeBytes { raw -> EntryAttributes? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var position = 0
            func count() -> Int? { LEB128.read(bytes, at: &position) }
            func chunk() -> UnsafeBufferPointer<UInt8>? { LEB128.chunk(bytes, at: &position) }
            guard let dn = chunk(), let attributes = count() else { return nil }
            var values: [String: [[UInt8]]] = [:]
            values.reserveCapacity(attributes)
            for _ in 0..<attributes {
                guard let name = chunk(), let valueCount = count() else { return nil }
                var list: [[UInt8]] = []
                list.reserveCapacity(valueCount)
                for _ in 0..<valueCount {
                    guard let value = chunk() else { return nil }
                    list.append(Array(value))
                }
                values[String(decoding: name, as: UTF8.self)] = list
            }
            guard position == bytes.count else { return nil }
            return EntryAttributes(dn: String(decoding: dn, as: UTF8.self), values: values)
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
