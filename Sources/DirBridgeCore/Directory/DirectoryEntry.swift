import Foundation

/// One directory entry as the mapping sees it: DN plus attributes keyed by lowercased name, values as raw bytes.
///
/// The directory reader stores attributes under lowercased names; the mapping's templates,
/// filters and rules look them up by those names. Values stay raw bytes so binary attributes
/// such as Active Directory's `objectGUID` survive intact.
///
/// All of an entry's attributes live in one byte buffer, each as its name, its number of
/// values, the byte length of its values and each value, all of them length-prefixed
/// (LEB128). Without the byte lengths, that is the directory cache's encoding (``EntryCodec``)
/// after the DN; with them, finding an attribute steps over the attributes before it, not over
/// their every value (a large group's members). A dictionary of arrays cost about twenty
/// allocations per entry, made on the reading thread and freed on the mapping thread, whose
/// frees then waited on the reading thread's arena lock: a 100k-user read took 1.37–1.46 s with
/// them and takes 0.91–1.07 s without (README, Performance). ``subscript(_:)`` reads values in place;
/// ``values`` gives the dictionary for code that is not on the per-entry path.
public struct EntryAttributes: Sendable {
    /// The entry's distinguished name as the server returned it.
    public var dn: String
    /// Per attribute: name, value count, byte length of the values, values (see the type's description).
    private(set) var storage: [UInt8]

    /// An entry without attributes.
    public init(dn: String) {
        self.dn = dn
        storage = []
    }

    /// An entry from values keyed by lowercased attribute name.
    public init(dn: String, values: [String: [[UInt8]]]) {
        self.init(dn: dn)
        self.values = values
    }

    /// An entry from text values, for tests and tools; names are lowercased here.
    public init(dn: String, strings: [String: [String]]) {
        var values: [String: [[UInt8]]] = [:]
        for (name, texts) in strings {
            values[name.lowercased(), default: []].append(contentsOf: texts.map { Array($0.utf8) })
        }
        self.init(dn: dn, values: values)
    }

    /// An entry whose attributes a ``Builder`` wrote.
    init(dn: String, storage: [UInt8]) {
        self.dn = dn
        self.storage = storage
    }

    /// The values of the attribute with lowercased name `name`, read in place; nil when absent.
    public subscript(_ name: String) -> AttributeValues? {
        storage.withUnsafeBufferPointer { bytes -> AttributeValues? in
            var found: AttributeValues?
            Self.walk(bytes) { nameBytes, count, valuesStart, valuesEnd in
                guard name.hasSameUTF8(asBytes: UnsafeRawBufferPointer(nameBytes)) else { return true }
                found = AttributeValues(storage: storage, start: valuesStart, end: valuesEnd, count: count)
                return false
            }
            return found
        }
    }

    /// Whether some attribute's name satisfies `predicate` (given the name's bytes).
    func containsName(where predicate: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        storage.withUnsafeBufferPointer { bytes in
            var found = false
            Self.walk(bytes) { name, _, _, _ in
                found = predicate(UnsafeRawBufferPointer(name))
                return !found
            }
            return found
        }
    }

    /// The number of attributes.
    public var attributeCount: Int {
        storage.withUnsafeBufferPointer { bytes in
            var count = 0
            Self.walk(bytes) { _, _, _, _ in count += 1; return true }
            return count
        }
    }

    /// Attribute values keyed by lowercased attribute name, as a dictionary: made on each read,
    /// and setting it encodes the attributes again (names in sorted order). The per-entry paths
    /// use ``subscript(_:)``.
    public var values: [String: [[UInt8]]] {
        get {
            var values: [String: [[UInt8]]] = [:]
            forEachAttribute { name, list in values[name, default: []] += list.map { Array($0) } }
            return values
        }
        set {
            var builder = Builder()
            for (name, list) in newValue.sorted(by: { $0.key < $1.key }) { builder.append(name: name, values: list) }
            storage = builder.bytes
        }
    }

    /// Sets the values of the attribute with lowercased name `name`, replacing any it had.
    public mutating func set(_ name: String, to list: [[UInt8]]) {
        guard self[name] != nil else {
            var builder = Builder(continuing: storage)
            builder.append(name: name, values: list)
            storage = builder.bytes
            return
        }
        var all = values
        all[name] = list
        values = all
    }

    /// Adds `list` after the values the attribute with lowercased name `name` has (if any).
    public mutating func append(_ name: String, values list: [[UInt8]]) {
        set(name, to: (self[name].map { $0.map { Array($0) } } ?? []) + list)
    }

    /// Calls `body` with each attribute's name and values, in stored order.
    func forEachAttribute(_ body: (String, AttributeValues) -> Void) {
        var found: [(String, Int, Range<Int>)] = []
        storage.withUnsafeBufferPointer { bytes in
            Self.walk(bytes) { name, count, valuesStart, valuesEnd in
                found.append((String(decoding: name, as: UTF8.self), count, valuesStart..<valuesEnd))
                return true
            }
        }
        for (name, count, range) in found {
            body(name, AttributeValues(storage: storage, start: range.lowerBound, end: range.upperBound, count: count))
        }
    }

    /// Every value of `attr` (any case) decoded as UTF-8; empty when the attribute is absent.
    public func strings(_ attr: String) -> [String] {
        (self[attr.lowercased()]).map { $0.map { String(decoding: $0, as: UTF8.self) } } ?? []
    }

    /// The first value of `attr` (any case) decoded as UTF-8, or nil when the attribute is absent.
    public func first(_ attr: String) -> String? {
        self[attr.lowercased()]?.first.map { String(decoding: $0, as: UTF8.self) }
    }

    /// All values of an attribute as raw bytes (empty when absent). Case-insensitive name.
    public func bytes(_ attribute: String) -> [[UInt8]] {
        self[attribute.lowercased()]?.map { Array($0) } ?? []
    }

    /// Walks the attributes of `bytes` (the storage): `visit` gets each one's name, value count,
    /// the offset of its first value's length and the offset after its last value, and returns
    /// whether to go on. Stops at the first malformed attribute (a ``Builder`` never writes one).
    static func walk(_ bytes: UnsafeBufferPointer<UInt8>, _ visit: (UnsafeBufferPointer<UInt8>, Int, Int, Int) -> Bool) {
        var position = 0
        while position < bytes.count {
            guard let name = LEB128.chunk(bytes, at: &position), let count = LEB128.read(bytes, at: &position),
                  let span = LEB128.read(bytes, at: &position), span <= bytes.count - position else { return }
            let start = position
            position += span
            guard visit(name, count, start, position) else { return }
        }
    }

    /// Writes attributes in the entry's encoding, one after another.
    struct Builder {
        private(set) var bytes: [UInt8]

        init(capacity: Int = 0) {
            bytes = []
            bytes.reserveCapacity(capacity)
        }

        init(continuing bytes: [UInt8]) { self.bytes = bytes }

        /// Appends an attribute: `name` as given (callers lowercase it), then its values.
        mutating func append(name: some Collection<UInt8>, values: some Collection<some Collection<UInt8>>) {
            LEB128.append(name, to: &bytes)
            LEB128.append(values.count, to: &bytes)
            LEB128.append(values.reduce(0) { $0 + LEB128.size($1.count) + $1.count }, to: &bytes)
            for value in values { LEB128.append(value, to: &bytes) }
        }

        /// Appends an attribute whose `count` values are already length-prefixed in `encodedValues`.
        mutating func append(name: UnsafeBufferPointer<UInt8>, count: Int, encodedValues: UnsafeBufferPointer<UInt8>) {
            LEB128.append(name, to: &bytes)
            LEB128.append(count, to: &bytes)
            LEB128.append(encodedValues, to: &bytes)
        }

        mutating func append(name: String, values: some Collection<some Collection<UInt8>>) {
            append(name: name.utf8, values: values)
        }

        /// Appends an attribute read from the server: `name` lowercased (ASCII), then `count`
        /// values, `value(i)` giving each. Returns false, appending nothing, when an attribute of
        /// that lowercased name is already here.
        mutating func append(lowercasing name: UnsafeRawBufferPointer, count: Int, value: (Int) -> UnsafeRawBufferPointer) -> Bool {
            let mark = bytes.count
            LEB128.append(name.count, to: &bytes)
            let nameStart = bytes.count
            for byte in name { bytes.append((byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte) }
            let repeated = bytes.withUnsafeBufferPointer { all in
                let lowered = UnsafeBufferPointer(rebasing: all[nameStart...])
                var seen = false
                EntryAttributes.walk(UnsafeBufferPointer(rebasing: all[..<mark])) { earlier, _, _, _ in
                    seen = earlier.count == lowered.count && memcmp(earlier.baseAddress!, lowered.baseAddress!, lowered.count) == 0
                    return !seen
                }
                return seen
            }
            if repeated {
                bytes.removeSubrange(mark...)
                return false
            }
            LEB128.append(count, to: &bytes)
            LEB128.append((0..<count).reduce(0) { total, index in total + LEB128.size(value(index).count) + value(index).count }, to: &bytes)
            for index in 0..<count { LEB128.append(value(index), to: &bytes) }
            return true
        }
    }
}

extension EntryAttributes: Equatable {
    /// The same DN and the same values under the same names, in whatever order the attributes
    /// were stored; compared in place (a changed group's members are not copied to compare them).
    public static func == (lhs: EntryAttributes, rhs: EntryAttributes) -> Bool {
        guard lhs.dn == rhs.dn else { return false }
        if lhs.storage == rhs.storage { return true }
        var same = true
        lhs.forEachAttribute { name, values in same = same && rhs[name] == values }
        return same && lhs.attributeCount == rhs.attributeCount
    }
}

/// The values of one attribute of an ``EntryAttributes``, read in place: each value is a slice
/// of the entry's buffer (no copy), read within the attribute's byte length. Equal when they are
/// the same values in the same order.
public struct AttributeValues: Sequence, Sendable, Equatable {
    fileprivate let storage: [UInt8]
    fileprivate let start: Int
    /// Where the attribute's values end in `storage`: no value is read past it.
    fileprivate let end: Int
    /// The number of values.
    public let count: Int

    public var isEmpty: Bool { count == 0 }

    public static func == (lhs: AttributeValues, rhs: AttributeValues) -> Bool {
        lhs.count == rhs.count && lhs.elementsEqual(rhs)
    }

    /// The first value; nil when there is none.
    public var first: ArraySlice<UInt8>? {
        var iterator = makeIterator()
        return iterator.next()
    }

    public func makeIterator() -> Iterator { Iterator(storage: storage, end: end, position: start, remaining: count) }

    /// Calls `body` with each value's bytes, in order, within one access to the entry's buffer:
    /// no slice (and so no retain and release of the buffer) per value. The bytes are valid
    /// only during the call.
    func forEachValue(_ body: (UnsafeBufferPointer<UInt8>) throws -> Void) rethrows {
        try storage.withUnsafeBufferPointer { all in
            let bytes = UnsafeBufferPointer(rebasing: all[..<end])
            var at = start
            for _ in 0..<count {
                guard let length = LEB128.read(bytes, at: &at), length <= bytes.count - at else { return }
                try body(UnsafeBufferPointer(rebasing: bytes[at..<at + length]))
                at += length
            }
        }
    }

    public struct Iterator: IteratorProtocol {
        fileprivate let storage: [UInt8]
        fileprivate let end: Int
        fileprivate var position: Int
        fileprivate var remaining: Int

        public mutating func next() -> ArraySlice<UInt8>? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let range: Range<Int>? = storage.withUnsafeBufferPointer { all in
                let bytes = UnsafeBufferPointer(rebasing: all[..<end])
                var at = position
                guard let length = LEB128.read(bytes, at: &at), length <= bytes.count - at else { return nil }
                position = at + length
                return at..<at + length
            }
            guard let range else { remaining = 0; return nil }
            return storage[range]
        }
    }
}

public typealias DirectoryEntry = EntryAttributes
