/// One entry read from the directory: its DN and its attributes, values as raw bytes.
///
/// Attribute names are stored lowercased, so lookups are case-insensitive; values are
/// binary-safe (Active Directory's `objectGUID` arrives as 16 bytes).
public struct DirectoryEntry: Sendable, Equatable {
    /// The entry's DN as the server sent it.
    public var dn: String
    /// Values per attribute, keyed by the lowercased attribute name (with any options, e.g. `member;range=0-1499`).
    public var values: [String: [[UInt8]]]

    public init(dn: String, values: [String: [[UInt8]]]) {
        self.dn = dn
        self.values = values
    }

    /// All values of an attribute as raw bytes (empty when absent). Case-insensitive name.
    public func bytes(_ attribute: String) -> [[UInt8]] {
        values[attribute.lowercased()] ?? []
    }

    /// All values of an attribute decoded as UTF-8 text (empty when absent).
    public func strings(_ attribute: String) -> [String] {
        bytes(attribute).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The first value of an attribute as UTF-8 text, or nil when absent.
    public func first(_ attribute: String) -> String? {
        bytes(attribute).first.map { String(decoding: $0, as: UTF8.self) }
    }
}
