/// One entry read from the directory: the same value the mapping evaluates.
///
/// Attribute names are lowercased keys; values are raw bytes (binary-safe: Active
/// Directory's `objectGUID` arrives as 16 bytes).
public typealias DirectoryEntry = EntryAttributes

extension EntryAttributes {
    /// All values of an attribute as raw bytes (empty when absent). Case-insensitive name.
    public func bytes(_ attribute: String) -> [[UInt8]] {
        values[attribute.lowercased()] ?? []
    }
}
