/// One directory entry as the mapping sees it: DN plus attributes keyed by lowercased name, values as raw bytes.
///
/// The directory reader fills `values` with lowercased attribute names as keys; the mapping's
/// templates, filters and rules look attributes up by those keys. Values stay raw bytes so
/// binary attributes such as Active Directory's `objectGUID` survive intact.
public struct EntryAttributes: Sendable, Equatable {
    /// The entry's distinguished name as the server returned it.
    public var dn: String
    /// Attribute values keyed by lowercased attribute name.
    public var values: [String: [[UInt8]]]

    public init(dn: String, values: [String: [[UInt8]]]) {
        self.dn = dn
        self.values = values
    }

    /// An entry from text values, for tests and tools; names are lowercased here.
    public init(dn: String, strings: [String: [String]]) {
        self.dn = dn
        var values: [String: [[UInt8]]] = [:]
        for (name, texts) in strings {
            values[name.lowercased(), default: []].append(contentsOf: texts.map { Array($0.utf8) })
        }
        self.values = values
    }

    /// Every value of `attr` (any case) decoded as UTF-8; empty when the attribute is absent.
    public func strings(_ attr: String) -> [String] {
        (values[attr.lowercased()] ?? []).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The first value of `attr` (any case) decoded as UTF-8, or nil when the attribute is absent.
    public func first(_ attr: String) -> String? {
        values[attr.lowercased()]?.first.map { String(decoding: $0, as: UTF8.self) }
    }
}


extension EntryAttributes {
    /// All values of an attribute as raw bytes (empty when absent). Case-insensitive name.
    public func bytes(_ attribute: String) -> [[UInt8]] {
        values[attribute.lowercased()] ?? []
    }
}

public typealias DirectoryEntry = EntryAttributes
