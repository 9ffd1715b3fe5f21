/// One copy of each distinct value: many users share the same rendered user group name and the
/// same rule decisions, and a copy per user cost a 100k-user first sync about 20 MB.
struct SharingPool<Value: Hashable> {
    private var values: Set<Value> = []

    /// The pool's copy of `value`, which it keeps from now on.
    mutating func shared(_ value: Value) -> Value {
        if let kept = values.firstIndex(of: value) { return values[kept] }
        values.insert(value)
        return value
    }
}

typealias StringPool = SharingPool<String>

extension String {
    /// `lowercased()`, but the string itself (its storage shared, not copied) when it has no
    /// letter to lower: emails and ids are mostly lowercase already, and 100k copies of them
    /// cost a first sync 7 MB in its plan and its directory cache each.
    var lowercasedSharingStorage: String {
        utf8.allSatisfy { $0 < 0x80 && !(65...90).contains($0) } ? self : lowercased()
    }
}
