import Foundation

/// A compact, binary-safe encoding of an entry: length-prefixed DN, attribute names and values.
enum EntryCodec {
    /// One attribute found in a buffer: its name, its value count and where its values lie.
    private typealias Attribute = (name: UnsafeBufferPointer<UInt8>, count: Int, values: Range<Int>)

    /// Whether the names ascend strictly, byte by byte (the order ``encode(_:)`` writes, and for
    /// ASCII names the order of the dictionary keys earlier builds sorted).
    private static func inNameOrder(_ attributes: [Attribute]) -> Bool {
        !zip(attributes, attributes.dropFirst()).contains { !$0.name.lexicographicallyPrecedes($1.name) }
    }

    /// The DN, the number of attributes, then the attributes in name order, each as its name,
    /// its value count and its values (each length-prefixed, LEB128).
    static func encode(_ entry: EntryAttributes) -> [UInt8] {
        let storage = entry.storage
        var out: [UInt8] = []
        out.reserveCapacity(entry.dn.utf8.count + storage.count + 8)
        LEB128.append(entry.dn.utf8, to: &out)
        storage.withUnsafeBufferPointer { bytes in
            var attributes: [Attribute] = []
            EntryAttributes.walk(bytes) { name, count, start, end in
                attributes.append((name, count, start..<end))
                return true
            }
            if !inNameOrder(attributes) {
                attributes.sort { $0.name.lexicographicallyPrecedes($1.name) }
            }
            LEB128.append(attributes.count, to: &out)
            for attribute in attributes {
                LEB128.append(attribute.name, to: &out)
                LEB128.append(attribute.count, to: &out)
                out.append(contentsOf: bytes[attribute.values])
            }
        }
        return out
    }

    /// The entry ``encode(_:)`` wrote; nil when the bytes are cut short, run on, or hold another
    /// number of attributes than they say. Names out of order (none that dirbridge wrote) are
    /// taken as the dictionary of earlier builds took them: a repeated name's last values.
    static func decode(_ data: Data) -> EntryAttributes? {
        data.withUnsafeBytes { raw -> EntryAttributes? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var position = 0
            guard let dn = LEB128.chunk(bytes, at: &position), let count = LEB128.read(bytes, at: &position) else { return nil }
            var attributes: [Attribute] = []
            while position < bytes.count {
                guard attributes.count < count, let name = LEB128.chunk(bytes, at: &position),
                      let values = LEB128.read(bytes, at: &position) else { return nil }
                let start = position
                for _ in 0..<values { guard LEB128.chunk(bytes, at: &position) != nil else { return nil } }
                attributes.append((name, values, start..<position))
            }
            guard attributes.count == count else { return nil }
            let dnText = String(decoding: dn, as: UTF8.self)
            guard inNameOrder(attributes) else {
                var values: [String: [[UInt8]]] = [:]
                for attribute in attributes {
                    var list: [[UInt8]] = []
                    var at = attribute.values.lowerBound
                    while at < attribute.values.upperBound, let value = LEB128.chunk(bytes, at: &at) { list.append(Array(value)) }
                    values[String(decoding: attribute.name, as: UTF8.self)] = list
                }
                return EntryAttributes(dn: dnText, values: values)
            }
            var builder = EntryAttributes.Builder(capacity: bytes.count - position + 4 * count)
            for attribute in attributes { builder.append(name: attribute.name, count: attribute.count, encodedValues: UnsafeBufferPointer(rebasing: bytes[attribute.values])) }
            return EntryAttributes(dn: dnText, storage: builder.bytes)
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

    /// How many bytes ``append(_:to:)`` writes for `value`.
    static func size(_ value: Int) -> Int {
        var value = UInt64(value), size = 1
        while value >= 0x80 { value >>= 7; size += 1 }
        return size
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
