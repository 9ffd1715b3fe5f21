import Foundation

/// A compact, binary-safe encoding of an entry: length-prefixed DN, attribute names and values.
enum EntryCodec {
    static func encode(_ entry: EntryAttributes) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        func put(_ count: Int) {
            var value = UInt64(count)
            while value >= 0x80 { out.append(UInt8(value & 0x7F) | 0x80); value >>= 7 }
            out.append(UInt8(value))
        }
        func put(bytes: some Collection<UInt8>) { put(bytes.count); out.append(contentsOf: bytes) }
        put(bytes: Array(entry.dn.utf8))
        put(entry.values.count)
        for (name, values) in entry.values.sorted(by: { $0.key < $1.key }) {
            put(bytes: Array(name.utf8))
            put(values.count)
            for value in values { put(bytes: value) }
        }
        return out
    }

    static func decode(_ data: Data) -> EntryAttributes? {
        data.withUnsafeBytes { raw -> EntryAttributes? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var position = 0
            func count() -> Int? {
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
            func chunk() -> UnsafeBufferPointer<UInt8>? {
                guard let length = count(), length <= bytes.count - position else { return nil }
                defer { position += length }
                return UnsafeBufferPointer(rebasing: bytes[position..<position + length])
            }
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
